"""label: the judge compares candidate responses (RL-CAI AI feedback) and labels the human slice.

response + chain records -> comparison records; the human slice's training pairs -> the judge's
labels of them (what the calibrate stage fits and measures the judge on)
    cai label --set label.ensemble=5 --set label.cot=true

Candidates of a prompt are its policy samples and final revisions; every response with a kept
revision is compared with it (that comparison is what a critique-revision pair's confidence
comes from), and at most `label.max_comparisons_per_prompt` pairs of samples. Each comparison
is asked under
K principles (`label.ensemble`, ranked by the same rendezvous hash as critique assignment, so
edits move only what they must), each in both answer orders; the label is the mean of the
order-averaged probabilities (averaged in log-odds by default, so a judge's constant lean towards
a position cancels), and the gap between orders is kept as the position-bias measure.
With `label.mode: pointwise` each reply is instead scored alone under each principle and the
label comes from the two scores (`cai.feedback.pointwise`); `auto` asks both ways and leaves the
choice, per principle, to the calibrate stage (`cai.feedback.modes`).
The human training pairs (`calibration.judge_pairs` of them) are labelled by exactly the same
code, under `calibration.ensemble` principles each; the held-out human pairs are never shown to
the judge.
"""

from collections import Counter
from itertools import combinations, zip_longest

from cai.constitution import rank_principles
from cai.errors import CaiError
from cai.feedback.judge import compare
from cai.feedback.modes import label_modes
from cai.feedback.pointwise import score_pairs
from cai.feedback.probability import ensemble, margin
from cai.feedback.trust import mode_of
from cai.hashing import content_hash
from cai.inputs.human_slice import judged_pairs
from cai.inputs.sources import BadRows
from cai.stages.common import grouped, manifest_records, save_records
from cai.stages.context import StageStats, timed
from cai.stages.reads import Reads

# What this stage reads (cai.stages.reads): its fingerprint and `cai plan` follow it.
READS = Reads(
    config=("seed", "label", "judge", "calibration.source", "calibration.limit", "calibration.heldout",
            "calibration.ensemble", "calibration.judge_pairs", "inputs", "review.use_labels",
            "review.annotators_per_item", "models.judge"),
    models=("judge",), files=("calibration.source",), stages=("generate", "critique"),
    constitution=True, review=True)


@timed("label")
def run(ctx) -> StageStats:
    cfg, stats = ctx.config, StageStats("label")
    if not cfg.label.enabled:
        stats.drop("disabled")
        ctx.store.put_manifest("label-calibration", [], {})
        ctx.store.put_manifest("label", [], {"calibration_ids": []})
        return stats
    principles = ctx.constitution.select(cfg.label.tags)
    if not principles:
        raise CaiError(f"{cfg.constitution}: no principle has any of the tags {cfg.label.tags} "
                       "(label.tags)")
    out, sums = ctx.store.manifest_writer("label"), Counter()
    for group in candidates(ctx):
        comparisons = label_pairs(ctx, stats, principles, candidate_pairs(ctx, group),
                                  cfg.label.ensemble, "compare")
        save_records(ctx, stats, comparisons, out)
        labelled = [r for _, _, r in comparisons if r["p"] is not None]
        sums.update(labelled=len(labelled), margin=sum(r["margin"] for r in labelled),
                    gap=sum(r["gap"] for r in labelled))
    bad = BadRows.of(cfg)
    humans = judged_pairs(ctx, bad)
    bad.report(stats)
    judged = label_pairs(ctx, stats, principles, [_human_item(h) for h in humans],
                         cfg.calibration.ensemble, "judge vs humans")
    save_records(ctx, stats, judged)
    # The judge's labels of human pairs on their own as well: what calibrate reads, so a change
    # of the AI comparisons alone leaves the calibration's fingerprint as it is.
    ctx.store.put_manifest("label-calibration", [r[0] for r in judged], {})
    out.finish({"calibration_ids": [r[0] for r in judged]})
    stats.metrics = {"comparisons": out.count, "labelled": sums["labelled"],
                     "human_pairs_judged": sum(r["p"] is not None for _, _, r in judged),
                     "mean_margin": _mean(sums["margin"], sums["labelled"]),
                     "mean_order_gap": _mean(sums["gap"], sums["labelled"]), "mode": cfg.label.mode}
    return stats


def candidates(ctx):
    """The policy's responses with their critique chains (None where revisions are not
    compared), a prompt's together, a chunk of prompts at a time: the two manifests list a
    response and its chain at the same place."""
    responses = manifest_records(ctx, "generate")
    if "revision" not in ctx.config.label.compare:
        rows = ([(rid, r, None) for rid, r in chunk] for chunk in responses)
    else:
        rows = (_with_chains(ctx, a, b) for a, b in
                zip_longest(responses, manifest_records(ctx, "critique")))
    return grouped(rows, key=lambda row: row[1]["prompt_id"])


def _with_chains(ctx, responses, chains) -> list[tuple]:
    if responses is None or chains is None or len(responses) != len(chains) or any(
            rid != chain["response_id"] for (rid, _), (_, chain) in zip(responses, chains)):
        raise CaiError(f"{ctx.run_dir}: the critique stage's chains are not those of the current "
                       "responses; run `cai critique` (or `cai run`) first")
    return [(rid, r, chain) for (rid, r), (_, chain) in zip(responses, chains)]


def candidate_pairs(ctx, group: list[tuple]) -> list[dict]:
    """Per prompt, the pairs of candidates to compare: each response with its final revision
    (all of them), and samples with each other (at most `label.max_comparisons_per_prompt`,
    a seeded choice). `group`: (response id, response, chain) of whole prompts."""
    cfg = ctx.config
    by_prompt, texts = {}, {}
    for rid, r, _ in group:
        entry = by_prompt.setdefault(r["prompt_id"], {"prompt": r["prompt"], "ids": [], "pairs": []})
        entry["ids"].append(rid)
        texts[rid] = (r["prompt_id"], r["text"])
    if "samples" in cfg.label.compare:
        for entry in by_prompt.values():
            entry["pairs"] += [("samples", a, b) for a, b in combinations(sorted(entry["ids"]), 2)
                               if texts[a][1] != texts[b][1]]
    for _, _, chain in group:
        if chain is not None and chain["final_id"] != chain["response_id"]:
            texts[chain["final_id"]] = (chain["prompt_id"], chain["final"])
            by_prompt[chain["prompt_id"]]["pairs"].append(
                ("revision", chain["response_id"], chain["final_id"]))
    items = []
    for pid, entry in by_prompt.items():
        samples = sorted((t for t in entry["pairs"] if t[0] == "samples"),
                         key=lambda t: content_hash(cfg.seed, "compare", t[1], t[2]))
        revisions = [t for t in entry["pairs"] if t[0] == "revision"]
        for kind, a, b in revisions + samples[:cfg.label.max_comparisons_per_prompt]:
            items.append({"key": f"cmp/{a}/{b}", "kind": kind, "prompt_id": pid,
                          "prompt": entry["prompt"], "first_id": a, "second_id": b,
                          "first": texts[a][1], "second": texts[b][1]})
    return items


def human_key(pair_id: str) -> str:
    """What a human pair's principles are ranked by (`cai review` routes by it too)."""
    return f"human/{pair_id}"


def _human_item(h: dict) -> dict:
    return {"key": human_key(h["id"]), "kind": "human", "prompt_id": h["id"], "human_id": h["id"],
            "prompt": h["prompt"], "first_id": "chosen", "second_id": "rejected",
            "first": h["chosen"], "second": h["rejected"]}


def label_pairs(ctx, stats, principles, items: list[dict], k: int, desc: str) -> list[tuple]:
    """Each item judged under its top-k principles, in each mode of `label.mode` -> (id, kind,
    record)."""
    cfg = ctx.config
    asks = [(it, p) for it in items for p in rank_principles(principles, it["key"], cfg.seed)[:k]]
    questions = [{"principle": p, "prompt": it["prompt"], "first": it["first"],
                  "second": it["second"]} for it, p in asks]
    modes, per_item = label_modes(cfg.label.mode), {it["key"]: [] for it in items}
    for mode in modes:
        for (it, p), res in zip(asks, _ask(ctx, mode, questions, desc)):
            per_item[it["key"]].append(
                {"id": p.id, "version": p.version, **{x: v for x, v in res.items() if x != "calls"},
                 "calls": res["calls"]})
    # Named by the calls and by how their answers were combined into the label.
    settings = {"average": cfg.label.average, "clamp": cfg.label.cot_clamp if cfg.label.cot else None}
    if modes != ("pairwise",):  # a pairwise label keeps the name it had before modes existed
        settings["mode"] = cfg.label.mode
    records = []
    for it in items:
        record = _aggregate(it, per_item[it["key"]], ctx.config.models.judge, modes[0])
        if record["failed"]:
            stats.drop(("human_" if it["kind"] == "human" else "") + record["failed"])
        prefix = "cal-" if it["kind"] == "human" else "cmp-"
        rid = prefix + content_hash(it["first_id"], it["second_id"],
                                    [c for p in record["principles"] for c in p["calls"]], settings)
        records.append((rid, "comparison", record))
    return records


def _ask(ctx, mode: str, questions: list[dict], desc: str) -> list[dict]:
    cfg = ctx.config
    if mode == "pointwise":
        return score_pairs(ctx.judge(), ctx.constitution, questions, cfg.judge, cfg.seed,
                           desc=f"{desc} (pointwise)")
    return compare(ctx.judge(), ctx.constitution, questions, cfg.judge, cfg.seed, cfg.label.cot,
                   cfg.label.cot_max_new_tokens, cfg.label.cot_clamp, cfg.label.average, desc=desc)


def _aggregate(item: dict, principles: list[dict], judge: str, mode: str) -> dict:
    """The record of a comparison; its raw label is from the labels asked in `mode` (the first
    of `label.mode`'s), all of them kept under `principles`."""
    mine = [p for p in principles if mode_of(p) == mode]
    ok = [p for p in mine if p["error"] is None]
    p = ensemble([x["p"] for x in ok])
    failed = None
    if p is None:
        errors = {x["error"] for x in mine}
        failed = "comparison_failed" if errors == {"call_failed"} else "comparison_unparseable"
    return {**{k: v for k, v in item.items() if k != "key"}, "judge": judge,
            "p": p, "margin": None if p is None else margin(p),
            "p_order1": ensemble([x["p_order1"] for x in ok]),
            "p_order2": ensemble([x["p_order2"] for x in ok]),
            "gap": ensemble([x["gap"] for x in ok]),
            "method": mine[0]["method"], "principles": principles, "failed": failed}


def _mean(total: float, n: int):
    return round(total / n, 4) if n else None
