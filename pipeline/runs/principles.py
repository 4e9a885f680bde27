"""`cai principles score`: each principle of the constitution beside what it did in the run —
its strength on the human slice (`cai.feedback.strength`), the trust it earned, and the AI pairs
it produced with what they counted for in training (their summed weight)."""

from cai.errors import CaiError
from cai.stages.calibrate import stored_report
from cai.stages.pairs import principles_of
from cai.store.core import ReadOnlyStore


def principle_scores(run_dir) -> list[dict]:
    """One row per principle judged on the human slice or behind an AI pair, strongest first."""
    with ReadOnlyStore(run_dir) as store:
        if store.get_manifest("calibrate") is None:
            raise CaiError(f"{run_dir}: stage 'calibrate' has not run yet; run `cai run` first")
        report = stored_report(store)
        produced: dict[str, list[float]] = {}
        for pair in ai_pairs(store):
            for pid in principles_of(pair):
                produced.setdefault(pid, []).append(pair.get("weight") or 0.0)
    strength, trust = report.get("strength") or {}, report.get("trust") or {}
    rows = [{"principle": pid, **strength.get(pid, {}), "trust": trust.get(pid),
             "ai_pairs": len(produced.get(pid, [])),
             "ai_weight": round(sum(produced.get(pid, [])), 4)}
            for pid in sorted(set(strength) | set(produced))]
    return sorted(rows, key=lambda r: (-(r.get("strength") or 0.0), r["principle"]))


def ai_pairs(store):
    """The run's AI preference pairs (the pairs manifest), a page at a time."""
    if store.manifest_meta("pairs") is None:
        return
    for page in store.manifest_pages("pairs", 2000):
        yield from (p for p in store.get_records(page).values() if p.get("source") == "ai")


def format_scores(rows: list[dict]) -> str:
    head = (f"{'principle':<22} {'pairs':>5} {'relev.':>6} {'acc.':>5} {'strength':>8} "
            f"{'95% interval':>16} {'p':>6} {'trust':>6} {'AI pairs':>8} {'counted':>7}")
    lines = [head]
    for r in rows:
        ci = r.get("ci95")
        acc = "–" if r.get("accuracy") is None else f"{r['accuracy']:.2f}"
        lines.append(
            f"{r['principle']:<22} {r.get('pairs', 0):>5} {r.get('relevance', 0):>6.2f} {acc:>5} "
            f"{r.get('strength', 0):>8.3f} {f'[{ci[0]:.2f}, {ci[1]:.2f}]' if ci else '–':>16} "
            f"{r.get('p_value', 1):>6.3f} {r.get('trust') or 0:>6.2f} {r['ai_pairs']:>8} "
            f"{r['ai_weight']:>7.2f}")
    lines.append("strength = relevance × 2(accuracy − 0.5), accuracy with a Beta(1, 1) prior, on the "
                 "human training pairs the judge labelled under each principle (held-out labels); "
                 "p: binomial, votes vs chance; counted: the AI pairs' summed weight")
    return "\n".join(lines)
