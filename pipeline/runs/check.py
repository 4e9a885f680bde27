"""`cai check`: is this constitution (and run config) valid, and what will it do?

No model is loaded and nothing is written: the constitution is validated as a run would load it
(limits, the judge's context), and for a user editing it the output shows each principle's tags,
weight and the share of records it would be judged on, and which principles changed since the
last finished run in the run directory (principle versions hash the texts a judge reads).
"""

from pathlib import Path

from cai.constitution import rank_principles
from cai.errors import CaiError
from cai.inputs.checks import check_tags, fixed_tokens, load_for_judge
from cai.store.core import DB_NAME, ReadOnlyStore


def check(cfg, path: str | None = None) -> dict:
    """Everything `cai check` reports, as data (`--json` prints it)."""
    path = path or cfg.constitution
    c = load_for_judge(path, cfg.judge.context_tokens)
    check_tags(cfg, c)  # the same rule as the run's preflight
    critique = _shares(c, cfg.critique.tags, 1)
    label = _shares(c, cfg.label.tags, cfg.label.ensemble)
    sizes = fixed_tokens(c)
    return {
        "file": str(path), "name": c.name, "version": c.version,
        "content_version": c.content_version, "examples": len(c.examples),
        "judge_context_tokens": cfg.judge.context_tokens, "label_ensemble": cfg.label.ensemble,
        "principles": [{"id": p.id, "tags": p.tags, "weight": p.weight, "version": p.version,
                        "critique_share": critique.get(p.id, 0.0),
                        "label_share": label.get(p.id, 0.0), "prompt_tokens": sizes[p.id]}
                       for p in c.principles],
        "since_last_run": _changes(cfg.run_dir, {p.id: p.version for p in c.principles}),
    }


def _shares(c, tags, k: int) -> dict[str, float]:
    """Expected share of records each principle is judged on (its weight among those a stage
    selects; `k` per record for an ensemble), by sampling 2,000 record keys the way stages do."""
    try:
        chosen = c.select(tags)
    except ValueError as exc:  # a tag no principle has
        raise CaiError(f"{c.path}: {exc}") from None
    if not chosen or all(p.weight == 0 for p in chosen):
        return {}
    counts = dict.fromkeys((p.id for p in chosen), 0)
    n = 2000
    for i in range(n):
        for p in rank_principles(chosen, f"check-{i}", seed=0)[:k]:
            counts[p.id] += 1
    return {pid: round(v / n, 3) for pid, v in counts.items()}


def _changes(run_dir: str, now: dict[str, str]) -> dict | None:
    """Principles changed, added and removed since the last finished run that recorded them."""
    if not (Path(run_dir) / DB_NAME).exists():
        return None
    with ReadOnlyStore(run_dir) as store:
        runs = [r for r in store.list_runs() if r["status"] == "finished"
                and r["summary"].get("principles")]
    if not runs:
        return None
    last = runs[-1]
    before = last["summary"]["principles"]
    return {"run": last["id"],
            "changed": sorted(p for p in now if p in before and before[p] != now[p]),
            "added": sorted(p for p in now if p not in before),
            "removed": sorted(p for p in before if p not in now)}


def format_check(r: dict) -> str:
    lines = [f"{r['file']}: valid: '{r['name']}' {r['version']}, {len(r['principles'])} principles, "
             f"{r['examples']} examples (content version {r['content_version']})",
             f"longest judge prompt before any request or reply: ~"
             f"{max(p['prompt_tokens'] for p in r['principles']):,} tokens of "
             f"{r['judge_context_tokens'] // 2:,} allowed (half of judge.context_tokens)", ""]
    changes = r["since_last_run"] or {}
    mark = {**{p: "changed" for p in changes.get("changed", [])},
            **{p: "new" for p in changes.get("added", [])}}
    width = max(len(p["id"]) for p in r["principles"]) + 2
    lines.append(f"{'principle':<{width}}{'weight':>7}  {'critique':>8}  {'label':>6}  "
                 f"{'since last run':<14}  tags")
    for p in r["principles"]:
        lines.append(f"{p['id']:<{width}}{p['weight']:>7g}  {p['critique_share']:>8.1%}  "
                     f"{p['label_share']:>6.1%}  {mark.get(p['id'], ''):<14}  {', '.join(p['tags'])}")
    lines += ["", f"critique: share of responses critiqued under each principle (critique.tags, "
                  f"weights); label: share of comparisons asking it ({r['label_ensemble']} principles "
                  "each: label.ensemble, label.tags); estimated over 2,000 record keys"]
    if r["since_last_run"] is None:
        lines.append("since last run: no finished run in this run directory to compare with")
    else:
        c = changes
        lines.append(f"since run {c['run']}: {len(c['changed'])} changed, {len(c['added'])} new, "
                     f"{len(c['removed'])} removed" + (f" ({', '.join(c['removed'])})"
                                                        if c["removed"] else "")
                     + ": records judged under them are redone on the next run")
    return "\n".join(lines)
