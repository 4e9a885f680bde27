"""pairs: critique outcomes become preference pairs (final revision ≻ original response).

chain records -> preference pair records
    cai pairs --set pairs.min_change=0.3

A chain makes a pair when the judge found a violation in some round and the final revision
differs materially from the original. Every pair carries its provenance: prompt id, principle
ids and versions per round, critiques, models and seed. No model calls.
"""

from ..context import StageStats, timed
from ..filters import similarity
from ..hashing import content_hash
from .common import load_records, require_manifest, save_records


@timed("pairs")
def run(ctx) -> StageStats:
    cfg, stats = ctx.config, StageStats("pairs")
    chains = load_records(ctx, require_manifest(ctx, "critique")["ids"])
    records = []
    for chain in chains:
        reason = _why_no_pair(chain, cfg.pairs.min_change)
        if reason:
            stats.drop(reason)
            continue
        records.append(make_pair(chain, cfg))
    save_records(ctx, stats, records)
    ctx.store.put_manifest("pairs", [r[0] for r in records], {})
    stats.metrics = {"pairs": len(records)}
    return stats


def _why_no_pair(chain, min_change) -> str | None:
    if chain.get("failed") and not chain["rounds"]:
        return chain["failed"]
    if not any(r["violates"] for r in chain["rounds"]):
        return "no_violation_found"
    if chain["final_id"] == chain["response_id"]:
        return "no_usable_revision"
    if 1 - similarity(chain["final"], chain["original"]) < min_change:
        return "revision_too_close"
    return None


def make_pair(chain, cfg) -> tuple:
    pid = "pair-" + content_hash("critique-revision", chain["final_id"], chain["response_id"])
    return (pid, "pair", {
        "kind": "critique-revision", "source": "ai",
        "prompt_id": chain["prompt_id"], "prompt": chain["prompt"],
        "chosen": chain["final"], "rejected": chain["original"],
        "chosen_id": chain["final_id"], "rejected_id": chain["response_id"],
        "provenance": {
            "rounds": [{k: r.get(k) for k in ("round", "principle", "principle_version",
                                               "critique", "p_violates", "violates",
                                               "revision_status")} for r in chain["rounds"]],
            "policy": cfg.models.policy, "judge": cfg.models.judge, "seed": cfg.seed}})
