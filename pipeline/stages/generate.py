"""generate: the policy answers every prompt, `generate.samples` times.

prompts (builtin, JSONL, CSV or datasets dir) -> response records
    cai generate --set generate.samples=4

A prompt that is an evaluation prompt (any row of the evaluate sets, or a held-out human pair's
prompt) is dropped and counted: nothing made from it could enter training.

A response id is H(prompt id, prompt text, the model call's key), and the call key covers the
policy's identity, sampling parameters, seed and sample index: change any and the id changes.
"""

from ..backends import SamplingParams
from ..context import StageStats, timed
from ..stage_inputs import Reads
from ..hashing import content_hash
from ..heldout import evaluation_prompts, norm
from ..human_slice import default_prompts
from ..sources import BadRows, load_prompts
from .common import save_records


def training_prompts(ctx, stats) -> list[dict]:
    """`prompts.limit` prompts of `prompts.source` that are no evaluation prompt, after the
    first `prompts.offset` of them."""
    p, bad = ctx.config.prompts, BadRows.of(ctx.config)
    source = default_prompts(ctx.config, bad) if p.source == "builtin:default" else \
        load_prompts(p.source, p.field, p.id_field, bad=bad)
    bad.report(stats)
    banned, prompts = evaluation_prompts(ctx.config), []
    for prompt in source:
        if len(prompts) == p.offset + p.limit:
            break
        if norm(prompt["prompt"]) in banned:
            stats.drop("prompt_is_evaluation")
        else:
            prompts.append(prompt)
    return prompts[p.offset:]


# What this stage reads (pipeline.stage_inputs): its fingerprint and `cai plan` follow it.
READS = Reads(
    config=("seed", "prompts", "inputs", "generate", "models.policy", "calibration.source",
            "calibration.limit", "calibration.heldout", "evaluate.harmful", "evaluate.unsafe",
            "evaluate.safe", "evaluate.redteam", "evaluate.refusal_labels"),
    models=("policy",),
    files=("prompts.source", "calibration.source", "evaluate.harmful", "evaluate.unsafe",
           "evaluate.safe", "evaluate.redteam", "evaluate.refusal_labels"))


@timed("generate")
def run(ctx) -> StageStats:
    cfg, stats = ctx.config, StageStats("generate")
    prompts = training_prompts(ctx, stats)
    g = cfg.generate
    params = SamplingParams(g.max_new_tokens, g.temperature, g.top_p)
    todo = [(p, s) for p in prompts for s in range(g.samples)]
    client = ctx.policy()
    results = client.generate([[{"role": "user", "content": p["prompt"]}] for p, _ in todo],
                              params, seed=cfg.seed, samples=[s for _, s in todo], desc="generate")
    records = []
    for (prompt, sample), res in zip(todo, results):
        if res.error or not res.text:
            stats.drop("call_failed" if res.error else "empty_response")
            continue
        rid = "resp-" + content_hash(prompt["id"], prompt["prompt"], res.key)
        records.append((rid, "response", {
            "prompt_id": prompt["id"], "prompt": prompt["prompt"], "sample": sample,
            "kind": prompt.get("kind"),
            "text": res.text, "model": cfg.models.policy, "params": params.as_dict(),
            "seed": cfg.seed, "call": res.key}))
    save_records(ctx, stats, records)
    ctx.store.put_manifest("generate", [r[0] for r in records], {"prompts": len(prompts)})
    stats.metrics = {"prompts": len(prompts), "responses": len(records)}
    return stats
