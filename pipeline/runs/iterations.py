"""Iterations: each round's tuned policy generates the next round's data (`iterations.count`).

Iteration 1 is the run directory itself, so a run of one iteration is the plain run. Iteration
k >= 2 is a run directory of its own, `<run_dir>/iterations/<k>/`, whose config is derived:

    models.policy        the tuned policy of iteration k-1 (its weights hash is part of every
                         call's identity, so nothing made with another policy is reused)
    prompts.offset       (k-1) * prompts.limit with `iterations.fresh_prompts`
    train_sft.enabled    false: SL-CAI happens once; the policy trains on from iteration k-1's
    train_policy.init    base, i.e. iteration k-1's policy, which is also the DPO reference
                         (`iterations.reference: base`: the original base is)
    blend                earlier iterations' AI pairs join, weighed decay ** (iterations ago)

Every iteration keeps the run invariants: its records and models are named by their inputs, so
a rerun recomputes in each iteration exactly what changed, and a run killed in iteration 3
resumes in iteration 3 (iterations 1 and 2 are all cached). After each iteration the first run
directory's metrics.json, summary.md and report.html get the per-iteration table and plot
(`runner.run_iterations`).
"""

from cai.store.iterations import iteration_dir

METRICS = ("refusal", "compliance", "win_rate", "kl", "rm_score", "reply_chars")




def iteration_config(config, k: int, previous_policy: str | None):
    """The config of iteration k (k = 1: the config itself, marked as iteration 1)."""
    root = config.iterations.root or config.run_dir
    its = config.iterations.model_copy(update={"current": k, "root": root})
    if k == 1:
        return config.model_copy(update={"iterations": its})
    if previous_policy is None:
        from cai.errors import ConfigError
        raise ConfigError("iterations need a tuned policy per iteration: train_policy.enabled is "
                          "false, so iteration 2 has no policy to generate with")
    p = config.prompts
    return config.model_copy(update={
        "run_dir": str(iteration_dir(root, k)), "iterations": its,
        "models": config.models.model_copy(update={"policy": "transformers:" + previous_policy}),
        # both reward models start from the original policy: the human-only one stays human-only
        "train_rm": config.train_rm.model_copy(update={
            "base": config.train_rm.base or config.models.policy}),
        "prompts": p.model_copy(update={"offset": p.offset + (k - 1) * p.limit
                                        if config.iterations.fresh_prompts else p.offset}),
        "train_sft": config.train_sft.model_copy(update={"enabled": False}),
        "train_policy": config.train_policy.model_copy(update={
            "init": "base", "reference": config.models.policy
            if config.iterations.reference == "base" else config.train_policy.reference})})



def _evaluated(metrics: dict, name: str) -> dict:
    """What evaluate measured of policy `name` ('base', 'trained'): refusal, compliance and the
    reward model's view of its replies (score, length)."""
    ev = metrics.get("evaluation") or {}
    row = (ev.get("table") or {}).get(name) or {}
    reward = (ev.get("reward") or {}).get(name) or {}
    lengths = reward.get("lengths") or []
    safe = (row.get("safe") or {}).get("rate")
    return {"refusal": (row.get("harmful") or {}).get("rate"),
            "compliance": None if safe is None else round(1 - safe, 4),
            "rm_score": reward.get("mean"),
            "reply_chars": round(sum(lengths) / len(lengths), 1) if lengths else None}


def iteration_row(k: int, metrics: dict) -> dict:
    """One iteration's numbers: its tuned policy vs the policy it started from."""
    ev = metrics.get("evaluation") or {}
    return {"iteration": k, "policy": (metrics.get("policy") or {}).get("path"),
            **_evaluated(metrics, "trained"),
            "win_rate": ((ev.get("win_rate") or {}).get("trained") or {}).get("win_rate"),
            "kl": ((ev.get("kl") or {}).get("trained") or {}).get("per_token"),
            "judge_pairs": (metrics.get("judge_agreement") or {}).get("n") or 0,
            "pairs": (metrics.get("counts") or {}).get("ai_pairs")}


def base_row(metrics: dict) -> dict:
    """Iteration 0: the original base policy, as iteration 1 evaluated it."""
    return {"iteration": 0, "policy": "base", **_evaluated(metrics, "base"), "win_rate": None,
            "kl": None, "judge_pairs": None, "pairs": None}


def stop_reason(config, rows: list[dict]) -> str | None:
    """Why to stop after the last row, or None to go on."""
    its, last = config.iterations, rows[-1]
    if not last["judge_pairs"]:
        return ("the judge's agreement with humans cannot be checked (no human pair was "
                "judged): its labels on the new policy's replies are unmeasured")
    if its.max_kl is not None and last["kl"] is not None and last["kl"] > its.max_kl:
        return f"KL/token to the previous policy {last['kl']:.4f} exceeds iterations.max_kl {its.max_kl}"
    if its.stop_metric != "none" and len(rows) > 1:
        now, before = last[its.stop_metric], rows[-2][its.stop_metric]
        if now is not None and before is not None and now - before <= its.min_gain:
            return (f"{its.stop_metric} went {before:.3f} -> {now:.3f}: not more than "
                    f"iterations.min_gain {its.min_gain} better")
    return None
