"""Which pair a person labels next: the one whose label is worth most (`review.order: routed`).

A decided review pair joins the human slice and is judged under the principles the rendezvous
hash gives its id (`calibration.ensemble` of them, exactly as the label stage will ask), so cai
knows before anyone labels it which principles' trust the label will inform. An item is worth,
in AI pairs made surer,

    Σ over the principles with AI pairs waiting  (AI pairs waiting on that principle's trust)
                                   × (how much the label is expected to narrow its trust interval)

so principles whose trust interval is wide and that many AI pairs ride on (trust multiplies
their weight) are asked first; among pairs that inform the same principles, the one the judge is
least sure of (calibrated P nearest 0.5) goes first. "Narrows" is the expected shrinking, over
the label agreeing with the judge or not, of the 90 % interval of the principle's agreement rate
(on trust's scale, 2·rate − 1; not clipped at 0, since a clipped interval can widen as evidence
comes in), computed as the calibrate stage computes it: a label narrows the principles it
informs, and, while the stage's pooling (`calibration.shrinkage` pairs of the others) is not
yet full, every other principle's interval by one pooled pair more; a greedy choice that saw
only the first part did worse than random order in `bench/review.py`. Labels given since the
last calibration count as evidence on its way, at the principle's measured rate. Items already
being labelled are finished first (`items.next_item`). The reward-model ensemble's disagreement
is not used: the queue is scored when a page is served, and scoring every pair with k reward
models there would take minutes on a CPU.
"""

from collections import Counter

from cai.constitution import rank_principles
from cai.feedback.trust import LEVEL, lower_bound, pooled_pairs, trust_interval
from cai.review.items import latest, reviewed_id
from cai.stages.calibrate import stored_report
from cai.stages.label import human_key

# The judge's doubt breaks ties between pairs that inform the same principles; it is not traded
# against trust (a pair the judge is unsure of counts once, a principle's trust for every pair
# it weighs).
DOUBT = 1e-3


def informs(item_id: str, principles: list, k: int, seed: int) -> list[str]:
    """The principles a decided label of this item is judged under (the label stage's key of
    a reviewed pair: `human/review-…`)."""
    return [p.id for p in rank_principles(principles, human_key(reviewed_id(item_id)), seed)[:k]]


class Evidence:
    """What the human slice has shown of each principle: labels, agreement, the pooled prior."""

    def __init__(self, report: dict | None, pending: Counter, pending_pairs: int = 0):
        report = report if report and report.get("n") else {}
        per = (report.get("calibrated") or {}).get("per_principle") or {}
        self.prior = report.get("trust_prior", 0.5)
        self.shrinkage = report.get("shrinkage", 0)
        self.total = (report.get("calibrated") or {}).get("n", 0) + pending_pairs  # human pairs
        self.n = Counter({pid: row["n"] for pid, row in per.items()}) + pending
        # labels on their way are expected to agree at the principle's measured rate
        self.agree = {pid: self.n[pid] * self._rate(per.get(pid, {}).get("accuracy"))
                      for pid in self.n}
        self._intervals: dict[str, list[float]] = {}

    def _rate(self, accuracy) -> float:
        return self.prior if accuracy is None else accuracy

    def _pooled(self, pid: str, n_extra: int = 0, total_extra: int = 0) -> float:
        return pooled_pairs(self.shrinkage, self.total + total_extra, self.n[pid] + n_extra)

    def interval(self, pid: str) -> list[float]:
        """Trust's 90 % interval, as the report shows it (clipped at 0)."""
        if pid not in self._intervals:
            n = self.n[pid]
            self._intervals[pid] = trust_interval(self.agree.get(pid, 0.0) / n if n else None, n,
                                                  self.prior, self._pooled(pid))
        return self._intervals[pid]

    def spread(self, pid: str, agree_extra: float = 0.0, n_extra: int = 0,
               total_extra: int = 0) -> float:
        """The width of the principle's agreement interval on trust's scale (2·rate − 1), not
        clipped at 0 (a clipped interval can widen as evidence comes in); the extras: labels
        more of it, agreeing ones among them, and human pairs more in all."""
        n = self.n[pid] + n_extra
        acc = (self.agree.get(pid, 0.0) + agree_extra) / n if n else 0.0
        pooled = self._pooled(pid, n_extra, total_extra)
        lo, hi = (lower_bound(acc, n, self.prior, pooled, q) for q in (LEVEL, 1 - LEVEL))
        return 2 * (hi - lo)

    def after_label(self, pid: str) -> float:
        """Its expected spread after one more label of it, over the label agreeing with the
        judge or not, at the posterior agreement rate."""
        n, pooled = self.n[pid], self._pooled(pid)
        q = (self.agree.get(pid, 0.0) + pooled * self.prior + 0.5) / (n + pooled + 1)
        return q * self.spread(pid, 1, 1, 1) + (1 - q) * self.spread(pid, 0, 1, 1)

    def gains(self, informed: set, waiting: Counter) -> dict:
        """principles a label informs -> {principle: the expected narrowing of its interval ×
        the AI pairs waiting on it}, over every principle with pairs waiting: the label narrows
        its own principles' intervals and, while the calibrate stage's pooling is not yet full,
        every other one's by one more pooled pair."""
        now = {q: self.spread(q) for q in waiting}
        own = {q: self.after_label(q) for q in waiting}
        grown = {q: self.spread(q, total_extra=1) for q in waiting}
        return {pids: {q: waiting[q] * (now[q] - (own[q] if q in pids else grown[q])) for q in waiting}
                for pids in informed}


def worth(items: dict, informed: dict, evidence: Evidence, waiting: Counter) -> dict:
    """item -> (worth, why) for label items: the formula of this module."""
    waiting = Counter({q: w for q, w in waiting.items() if w})
    gains = evidence.gains({tuple(pids) for pids in informed.values()}, waiting)
    out = {}
    for i, item in items.items():
        parts = gains[tuple(informed[i])]
        p = item.get("judge_p_first")
        doubt = 1 - abs(2 * p - 1) if p is not None else 0.5
        own = {q: parts.get(q, 0.0) for q in informed[i]}
        out[i] = (max(0.0, sum(parts.values())) + DOUBT * doubt,
                  _why(own, doubt, p, evidence, waiting))
    return out


def _why(parts: dict, doubt: float, p, evidence: Evidence, waiting: Counter) -> str:
    top = max(parts, key=parts.get) if parts else None
    unsure = f"the judge is unsure of this pair (P {p:.2f})" if p is not None and doubt >= 0.5 \
        else "the judge did not compare this pair" if p is None else ""
    if top is None or not parts[top]:
        return "asked because " + (unsure or "no pair is worth more now")
    lo, hi = evidence.interval(top)
    n, w = evidence.n[top], waiting[top]
    return (f"asked because principle {top} has {n} human label{'s' * (n != 1)}, trust "
            f"[{lo:.2f}, {hi:.2f}], and {w} AI pair{'s' * (w != 1)} wait{'s' * (w == 1)} on it"
            + (f"; {unsure}" if unsure else ""))


def waiting_pairs(items: dict) -> Counter:
    """principle -> AI pairs of the run whose weight its trust multiplies."""
    return Counter(pid for item in items.values() if item.get("source") != "loaded"
                   for pid in item.get("principles") or [])


def route(store, items: dict, labels: list[dict], principles: list, k: int, seed: int) -> dict:
    """item -> (worth, why) of the queued label items, from the run's last calibration and the
    labels given since."""
    informed = {i: informs(i, principles, k, seed) for i in items}
    report, judged = _calibration(store)
    pending = [i for i, votes in latest(labels).items()
               if i in informed and reviewed_id(i) not in judged
               and any(v != "skip" for v in votes.values())]
    evidence = Evidence(report, Counter(pid for i in pending for pid in informed[i]), len(pending))
    return worth(items, informed, evidence, waiting_pairs(items))


def _calibration(store) -> tuple[dict, set]:
    """(the last calibration report, the human pair ids it was measured on)."""
    cal = store.get_manifest("label-calibration")
    judged = {r.get("human_id") for r in store.get_records(cal["ids"]).values()} if cal else set()
    return stored_report(store), judged


def routing_principles(config) -> list:
    """The principles the label stage asks (`label.tags`), whose trust review labels inform."""
    from cai.inputs.checks import load_for_judge
    constitution = load_for_judge(config.constitution, config.judge.context_tokens)
    return constitution.select(config.label.tags) or constitution.principles
