"""generate: the policy answers every prompt, `generate.samples` times.

prompts (builtin, JSONL, CSV or datasets dir) -> response records
    cai generate --set generate.samples=4

A prompt that is an evaluation prompt (any row of the evaluate sets, or a held-out human pair's
prompt) is dropped and counted: nothing made from it could enter training.

A response id is H(prompt id, prompt text, the model call's key), and the call key covers the
policy's identity, sampling parameters, seed and sample index: change any and the id changes.
"""

from cai.backends import SamplingParams
from cai.hashing import content_hash
from cai.inputs.heldout import evaluation_prompts, norm
from cai.inputs.human_slice import default_prompts
from cai.inputs.sources import BadRows, iter_prompts
from cai.stages import common
from cai.stages.common import batched, save_records
from cai.stages.context import StageStats, timed
from cai.stages.reads import Reads


def training_prompts(ctx, stats):
    """`prompts.limit` prompts of `prompts.source` that are no evaluation prompt, after the
    first `prompts.offset` of them, one at a time."""
    p, bad = ctx.config.prompts, BadRows.of(ctx.config)
    source = default_prompts(ctx.config, bad) if p.source == "builtin:default" else \
        iter_prompts(p.source, p.field, p.id_field, bad=bad)
    banned, taken = evaluation_prompts(ctx.config), 0
    for prompt in source:
        if taken == p.offset + p.limit:
            break
        if norm(prompt["prompt"]) in banned:
            stats.drop("prompt_is_evaluation")
            continue
        taken += 1
        if taken > p.offset:
            yield prompt
    bad.report(stats)


# What this stage reads (cai.stages.reads): its fingerprint and `cai plan` follow it.
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
    g, client = cfg.generate, ctx.policy()
    params = SamplingParams(g.max_new_tokens, g.temperature, g.top_p)
    out, prompts = ctx.store.manifest_writer("generate"), 0
    for chunk in batched(training_prompts(ctx, stats), max(1, common.CHUNK // g.samples)):
        prompts += len(chunk)
        save_records(ctx, stats, _responses(ctx, stats, client, params, chunk), out)
    out.finish({"prompts": prompts})
    stats.metrics = {"prompts": prompts, "responses": out.count}
    return stats


def _responses(ctx, stats, client, params, prompts: list[dict]) -> list[tuple]:
    cfg = ctx.config
    todo = [(p, s) for p in prompts for s in range(cfg.generate.samples)]
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
    return records
