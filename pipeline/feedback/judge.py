"""The judge: verdicts and pairwise comparisons as probabilities.

The judge answers multiple-choice questions ("Yes"/"No", "A"/"B"). By default the answer is the
next-token log-probabilities of the choices, normalised (it always "parses"); with a backend that
gives no log-probabilities (`judge.scoring: vote`) it is the share of `judge.votes` sampled
answers, parsed through `cai.feedback.structured` and asked again where they do not parse. Every
outcome says which method made it, so a voted label is never mistaken for a scored one.
"""

from dataclasses import dataclass, field

from cai.backends import SamplingParams
from cai.constitution import render_comparison, render_verdict
from cai.constitution.render import after_reasoning
from cai.feedback.probability import both_orders, clamp, from_votes, normalise
from cai.feedback.structured import generate_parsed, parse_choice, parse_text
from cai.hashing import calls_key

VOTE_TOKENS = 8  # enough for "Answer: B" or "(B)." without reasoning


@dataclass
class Outcome:
    """The judge's answer to one multiple-choice question."""
    probs: list[float] | None        # over the choices; None when it failed
    method: str                      # "logprobs" or "vote"
    calls: list[str] = field(default_factory=list)
    error: str | None = None
    votes: list[int] | None = None   # per choice, when voted

    @property
    def key(self) -> str:
        return calls_key(self.calls)

    def provenance(self) -> dict:
        out = {"method": self.method}
        if self.votes is not None:
            out["votes"] = self.votes
        return out


def scoring_method(client, judge_cfg) -> str:
    if judge_cfg.scoring != "auto":
        return judge_cfg.scoring
    return "logprobs" if getattr(client, "logprobs", True) else "vote"


def scoring_settings(client, judge_cfg) -> dict:
    """The judge settings its probabilities depend on: the method, and how votes are taken."""
    method = scoring_method(client, judge_cfg)
    if method == "logprobs":
        return {"method": method}
    return {"method": method, **judge_cfg.model_dump(exclude={"scoring"})}


def choice_probs(client, messages: list, choices: tuple, judge_cfg, seed: int, desc: str,
                 max_new_tokens: int = VOTE_TOKENS) -> list[Outcome]:
    """Probabilities over `choices` for each conversation (None entries fail as 'no_input')."""
    idx = [i for i, m in enumerate(messages) if m is not None]
    out = [Outcome(None, "-", error="no_input") for _ in messages]
    if not idx:
        return out
    if scoring_method(client, judge_cfg) == "logprobs":
        results = client.choices([messages[i] for i in idx], choices, desc=desc)
        for i, r in zip(idx, results):
            probs = None if r.error else normalise(r.logprobs)
            out[i] = Outcome(probs, "logprobs", [r.key], "call_failed" if r.error else None)
        return out
    for i, o in zip(idx, _vote(client, [messages[i] for i in idx], choices, judge_cfg, seed,
                               desc, max_new_tokens)):
        out[i] = o
    return out


def _vote(client, messages, choices, judge_cfg, seed, desc, max_new_tokens) -> list[Outcome]:
    n = judge_cfg.votes
    asks = [m for m in messages for _ in range(n)]
    params = SamplingParams(max_new_tokens, judge_cfg.vote_temperature, 1.0)
    picks, failures, keys = generate_parsed(
        client, asks, params, lambda text: parse_choice(text, choices), judge_cfg.parse_retries,
        seed, f"{desc} (vote)", samples=[s for _ in messages for s in range(n)], planned=0)
    out = []
    for q in range(len(messages)):
        mine = range(q * n, (q + 1) * n)
        counts = [sum(picks[j] == c for j in mine) for c in range(len(choices))]
        probs = from_votes(counts)
        reasons = [failures[j] for j in mine if failures[j]]
        reason = "call_failed" if reasons and set(reasons) == {"call_failed"} \
            else next((r for r in reasons if r != "call_failed"), "no vote")
        out.append(Outcome(probs, "vote", [k for j in mine for k in keys[j]],
                           None if probs else reason, counts))
    return out


def verdicts(client, constitution, items: list[dict], judge_cfg, seed: int = 0,
             calibrate: bool = True, desc="verdict"):
    """P(violates) for items {principle, prompt, response, critique}.

    Returns (probabilities, raw probabilities, outcomes); a probability is None where the
    question failed. With `calibrate` (log-probabilities only), each principle's odds are
    divided by its odds on a content-free input ("N/A" everywhere: contextual calibration,
    Zhao et al. 2021), so a judge that leans "Yes" to every question is measured against its
    own lean instead of against 0.5.
    """
    rendered = [render_verdict(constitution, it["principle"], it["prompt"], it["response"],
                               it["critique"]) for it in items]
    if not rendered:
        return [], [], []
    outcomes = choice_probs(client, [m for m, _ in rendered], rendered[0][1], judge_cfg, seed, desc)
    calibrate = calibrate and scoring_method(client, judge_cfg) == "logprobs"
    baseline = _content_free(client, constitution, items) if calibrate else {}
    probs, raw = [], []
    for it, o in zip(items, outcomes):
        raw.append(o.probs[0] if o.probs else None)
        if not calibrate or not o.probs:
            probs.append(raw[-1])
            continue
        base, key = baseline[it["principle"].id]
        o.calls.append(key)  # the verdict depends on the content-free answer: it names it too
        if base is None:  # a failed content-free call fails the verdict, never silently skips
            o.probs, o.error = None, "call_failed"
            probs.append(None)
            continue
        odds = (o.probs[0] / max(o.probs[1], 1e-12)) / (base[0] / max(base[1], 1e-12))
        probs.append(odds / (1 + odds))
    return probs, raw, outcomes


def _content_free(client, constitution, items) -> dict:
    """principle id -> (the judge's answer probabilities on a content-free verdict prompt, or
    None where that call failed; the call's key). A dry run's placeholder leaves the verdict
    uncalibrated: (1, 1) odds."""
    principles = {it["principle"].id: it["principle"] for it in items}
    rendered = [render_verdict(constitution, p, "N/A", "N/A", "N/A") for p in principles.values()]
    results = client.choices([m for m, _ in rendered], rendered[0][1], desc="calibrate")
    return {pid: ([0.5, 0.5] if r.planned else None if r.error else normalise(r.logprobs), r.key)
            for pid, r in zip(principles, results)}


def compare(client, constitution, items: list[dict], judge_cfg, seed: int = 0, cot: bool = False,
            cot_tokens: int = 96, cot_clamp=(0.4, 0.6), average: str = "logit",
            desc="compare") -> list[dict]:
    """P(first ≻ second) for items {principle, prompt, first, second}, judged in both orders.

    Order 1 shows `first` as A, order 2 as B. Per item: p_order1, p_order2 (both already
    P(first ≻ second)), p (their mean, in log-odds by default: see `probability.both_orders`),
    gap (|p_order1 − p_order2|: position bias), method,
    calls, and error (None, or why the comparison failed). With `cot` the judge reasons first
    (recorded) and each order's probability is clamped to `cot_clamp`.
    """
    asks = []
    for it in items:
        for a, b in ((it["first"], it["second"]), (it["second"], it["first"])):
            asks.append(render_comparison(constitution, it["principle"], it["prompt"], a, b, cot)[0])
    if not asks:
        return []
    reasons, failures, pre_calls = [None] * len(asks), [None] * len(asks), [[] for _ in asks]
    voting = scoring_method(client, judge_cfg) == "vote"
    if cot and not voting:  # votes parse the final letter out of the reasoning itself
        reasons, failures, pre_calls = generate_parsed(
            client, asks, SamplingParams(cot_tokens, 0.0, 1.0), parse_text,
            judge_cfg.parse_retries, seed, f"{desc} (reasoning)", planned="(planned)",
            schema="judge_text")
        asks = [after_reasoning(m, r) if r else None for m, r in zip(asks, reasons)]
    outcomes = choice_probs(client, asks, ("A", "B"), judge_cfg, seed, desc,
                            cot_tokens if cot else VOTE_TOKENS)
    for i, failure in enumerate(failures):
        if failure:  # the reasoning failed, so its order was never asked
            outcomes[i].error = failure
    return [_item_result(outcomes[2 * i], outcomes[2 * i + 1], reasons[2 * i:2 * i + 2],
                         pre_calls[2 * i] + pre_calls[2 * i + 1], cot, cot_clamp, average)
            for i in range(len(items))]


def _item_result(o1: Outcome, o2: Outcome, reasons, pre_calls, cot, band, average) -> dict:
    calls = pre_calls + o1.calls + o2.calls
    error = o1.error or o2.error
    out = {"method": o1.method if o1.method != "-" else o2.method, "calls": calls,
           "error": error, "p_order1": None, "p_order2": None, "p": None, "gap": None}
    if cot:
        out["reasoning"] = reasons
    if o1.votes is not None or o2.votes is not None:
        out["votes"] = [o1.votes, o2.votes]
    if error:
        return out
    p1, p2 = o1.probs[0], o2.probs[1]  # P(first ≻ second) in each order
    if cot:
        p1, p2 = clamp(p1, band), clamp(p2, band)
    p, gap = both_orders(p1, p2, average)
    out.update(p_order1=p1, p_order2=p2, p=p, gap=gap)
    return out
