"""Run history and `cai diff`: what each `cai run` produced, and what changed between two runs.

Every run records a snapshot at its end (`cai.store.summaries`): the id lists of the records each
data stage produced, the dataset hash and the headline metrics. Records are named by their inputs
and never rewritten, so two snapshots are enough to say which preference pairs a run added,
removed or changed.
"""

import time

from cai.errors import CaiError
from cai.stages.pairs import principles_of
from cai.store.summaries import listed


def history_lines(store) -> list[str]:
    lines = [f"{'run':>4}  {'started':<19}  {'status':<11}  {'constitution':<16}  {'config':<8}  "
             f"{'pairs':>5}  {'calls':>6}  {'seconds':>8}"]
    for r in store.list_runs():
        s = r["summary"]
        ref = s.get("manifests", {}).get("pairs", [])
        pairs = (store.list_count(ref) if isinstance(ref, str) else len(ref)) \
            if s.get("manifests") else "-"
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["started"]))
        lines.append(f"{r['id']:>4}  {started:<19}  {r['status']:<11}  "
                     f"{(r['constitution_version'] or '-'):<16}  {(r['config_hash'] or '-')[:8]:<8}  "
                     f"{pairs:>5}  {s.get('calls', '-'):>6}  {round(s.get('seconds', 0), 1):>8}")
    return lines


def _pick(store, old: int | None, new: int | None):
    finished = {r["id"]: r for r in store.list_runs()
                if r["status"] == "finished" and r["summary"].get("manifests")}
    ids = sorted(finished)
    if new is None:
        if not ids:
            raise CaiError(f"{store.run_dir}: no finished run to compare; run `cai run` first")
        new = ids[-1]
    if old is None:
        earlier = [i for i in ids if i < new]
        if not earlier:
            raise CaiError(f"{store.run_dir}: run {new} has no earlier finished run to compare with")
        old = earlier[-1]
    for i in (old, new):
        if i not in finished:
            raise CaiError(f"{store.run_dir}: no finished run {i}; see `cai history`")
    return finished[old], finished[new]


def diff(store, old: int | None = None, new: int | None = None, examples: int = 3) -> dict:
    """Pairs added, removed and changed between two runs, per principle. A critique-revision
    pair is identified by the original response it improves on, a comparison pair by the two
    responses compared (so a comparison whose winner changed is 'changed', and 'flipped')."""
    a, b = _pick(store, old, new)
    (pa, lost_a), (pb, lost_b) = (_pairs(store, r) for r in (a, b))
    added, removed, changed, flipped, relabelled = compare_pairs(pa, pb)
    per = {}
    for kind, rows in (("added", added), ("removed", removed), ("changed", [y for _, y in changed])):
        for p in rows:
            for pid in principles_of(p):
                per.setdefault(pid, {"added": 0, "removed": 0, "changed": 0})[kind] += 1
    agree = [(r["summary"].get("judge_agreement") or {}).get("accuracy") for r in (a, b)]
    return {
        "old_run": a["id"], "new_run": b["id"],
        "constitution": [a["constitution_version"], b["constitution_version"]],
        "pairs": [len(pa), len(pb)], "collected": [lost_a, lost_b],
        "added": len(added), "removed": len(removed),
        "changed": len(changed), "flipped": len(flipped), "relabelled": len(relabelled),
        "per_principle": per,
        "judge_accuracy": agree,
        "judge_accuracy_change": None if None in agree else agree[1] - agree[0],
        "examples": {"added": [_short(p) for p in added[:examples]],
                     "removed": [_short(p) for p in removed[:examples]],
                     "changed": [{"prompt": y["prompt"], "old_chosen": x["chosen"],
                                  "new_chosen": y["chosen"]} for x, y in changed[:examples]]},
    }


def compare_pairs(pa: dict, pb: dict) -> tuple[list, list, list, list, list]:
    """(added, removed, changed (old, new), flipped (old, new), relabelled identities) between
    two sets of pairs by identity (`pair_identity`)."""
    added = [pb[k] for k in pb.keys() - pa.keys()]
    removed = [pa[k] for k in pa.keys() - pb.keys()]
    changed = [(pa[k], pb[k]) for k in pa.keys() & pb.keys() if pa[k]["chosen"] != pb[k]["chosen"]]
    flipped = [(x, y) for x, y in changed if y["chosen"] == x["rejected"]]
    # Same pair, same winner, a different probability (a principle in its ensemble was edited).
    relabelled = [k for k in pa.keys() & pb.keys() if pa[k]["chosen"] == pb[k]["chosen"]
                  and pa[k].get("p_chosen") != pb[k].get("p_chosen")]
    return added, removed, changed, flipped, relabelled


def _pairs(store, run) -> tuple[dict, int]:
    """(identity -> pair, how many of the run's pairs `cai gc` has collected since)."""
    ids = listed(store, run["summary"]["manifests"]["pairs"])
    found = store.get_records(ids)
    return {pair_identity(p): p for p in found.values()}, len(set(ids) - set(found))


def pair_identity(pair: dict) -> tuple:
    """A critique-revision pair by the response it improves on, a comparison by the two
    responses compared."""
    if pair["kind"] == "comparison":
        return ("comparison",) + tuple(sorted((pair["chosen_id"], pair["rejected_id"])))
    return (pair["kind"], pair["rejected_id"])


def _short(p: dict) -> dict:
    return {"prompt": p["prompt"], "chosen": p["chosen"], "rejected": p["rejected"]}


def format_diff(d: dict, width: int = 60) -> str:
    lines = [f"run {d['old_run']} -> run {d['new_run']}  (constitution {d['constitution'][0]} -> "
             f"{d['constitution'][1]})",
             f"pairs {d['pairs'][0]} -> {d['pairs'][1]}: {d['added']} added, {d['removed']} removed, "
             f"{d['changed']} changed ({d['flipped']} flipped); {d['relabelled']} relabelled "
             "(same winner, new probability)"]
    for run, lost in zip((d["old_run"], d["new_run"]), d.get("collected") or (0, 0)):
        if lost:
            lines.append(f"run {run}: {lost} of its pairs were collected by `cai gc`; they are "
                         "left out, so this diff is incomplete (keep runs with --keep-runs)")
    acc = d["judge_accuracy"]
    if None not in acc:
        lines.append(f"judge-human accuracy {acc[0]:.3f} -> {acc[1]:.3f} "
                     f"({d['judge_accuracy_change']:+.3f})")
    if d["per_principle"]:
        lines += ["", f"{'principle':<24} {'added':>6} {'removed':>8} {'changed':>8}"]
        for pid, c in sorted(d["per_principle"].items()):
            lines.append(f"{pid:<24} {c['added']:>6} {c['removed']:>8} {c['changed']:>8}")

    def clip(t):
        t = " ".join(t.split())
        return (t[:width - 1] + "…") if len(t) > width else t.ljust(width)
    for kind in ("added", "removed"):
        for e in d["examples"][kind]:
            lines += ["", f"[{kind}] {clip(e['prompt'])}",
                      f"  {'chosen':<{width}} | rejected", f"  {clip(e['chosen'])} | {clip(e['rejected'])}"]
    for e in d["examples"]["changed"]:
        lines += ["", f"[changed] {clip(e['prompt'])}",
                  f"  chosen, [-old-] {{+new+}}: {where_differ(e['old_chosen'], e['new_chosen'])}"]
    return "\n".join(lines)


def where_differ(old: str, new: str, context: int = 6) -> str:
    """A word diff of two texts, [-removed-] {+added+}, with `context` words around each change
    and the unchanged stretches between shortened to '…'."""
    import difflib
    a, b = old.split(), new.split()
    out, ops = [], difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
    for k, (op, i1, i2, j1, j2) in enumerate(ops):
        if op == "equal":
            same, first, last = a[i1:i2], k == 0, k == len(ops) - 1
            head = [] if first else same[:context]
            tail = [] if last else same[-context:]
            short = len(head) + len(tail) >= len(same) or (first and last)
            out += same if short else head + ["…"] + tail
        else:
            out += ([f"[-{' '.join(a[i1:i2])}-]"] if i2 > i1 else []) + (
                [f"{{+{' '.join(b[j1:j2])}+}}"] if j2 > j1 else [])
    return " ".join(out)
