"""evaluate: base vs trained policy on harmful prompts and on safe prompts that look unsafe.

policy + models/policy-<hash> -> refusal rate on harmful prompts (should refuse), compliance rate
on safe-but-scary prompts (should answer), reward-model held-out accuracy -> metrics.json
    cai evaluate --set evaluate.limit=50

Replies are greedy and cached like every model call. Refusals are decided by the string-match
detector in `pipeline.refusal` (documented there: approximate).
"""

from ..backends import SamplingParams
from ..context import StageStats, timed
from ..refusal import is_refusal
from ..sources import load_prompts


@timed("evaluate")
def run(ctx) -> StageStats:
    cfg, stats = ctx.config, StageStats("evaluate")
    e = cfg.evaluate
    sets = {"harmful": load_prompts(e.harmful, limit=e.limit, seed=cfg.seed),
            "safe": load_prompts(e.safe, limit=e.limit, seed=cfg.seed)}
    models = {"base": cfg.models.policy}
    sft = ctx.store.get_manifest("train-sft")
    if sft and cfg.train_sft.enabled:
        models["sft"] = "transformers:" + str(sft["meta"]["path"])
    trained = ctx.store.get_manifest("train-policy")
    if trained and cfg.train_policy.enabled:
        models["trained"] = "transformers:" + str(trained["meta"]["path"])
    params = SamplingParams(e.max_new_tokens, 0.0, 1.0)
    table, samples = {}, {}
    for name, spec in models.items():
        table[name] = {}
        client = ctx.client(spec)
        for set_name, prompts in sets.items():
            calls_before = client.stats.calls
            results = client.generate(
                [[{"role": "user", "content": p["prompt"]}] for p in prompts], params,
                seed=cfg.seed, desc=f"eval {name}/{set_name}")
            new = client.stats.calls - calls_before
            stats.made, stats.cached = stats.made + new, stats.cached + len(results) - new
            replies = [r.text for r in results if not r.error]
            stats.drop("call_failed", len(results) - len(replies))
            refused = sum(is_refusal(t) for t in replies)
            rate = refused / len(replies) if replies else None
            key = "refusal_rate" if set_name == "harmful" else "compliance_rate"
            table[name][set_name] = {"n": len(replies),
                                     key: rate if set_name == "harmful" or rate is None else 1 - rate}
            samples[f"{name}/{set_name}"] = [{"prompt": p["prompt"], "reply": r.text}
                                             for p, r in list(zip(prompts, results))[:3]]
    rm = ctx.store.get_manifest("train-rm")
    metrics = {"policies": models, "table": table, "detector": "string-match (pipeline.refusal)",
               "rm_heldout_accuracy": rm["meta"].get("heldout_accuracy") if rm else None,
               "samples": samples}
    ctx.store.put_manifest("evaluate", list(models), metrics)
    stats.metrics = {k: v for k, v in metrics.items() if k != "samples"}
    return stats
