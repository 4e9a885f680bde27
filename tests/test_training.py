"""Online RL on a tiny model: GRPO with the constitution judge as the reward (d-RLAIF)."""

import json
from pathlib import Path

from pipeline.runner import run_stages
from pipeline.store import Store
from conftest import small_config

DATA_STAGES = ["generate", "critique", "label", "pairs", "blend", "export"]


def test_grpo_with_the_judge_as_reward_runs_a_few_steps(tmp_path, tiny_model_dir, fake_backend):
    run_stages(small_config(tmp_path), DATA_STAGES, echo=lambda s: None)
    spec = f"transformers:{tiny_model_dir}"
    cfg = small_config(tmp_path, policy=spec, judge=spec, **{
        "train_policy.method": "grpo", "train_policy.reward": "[judge]", "train_policy.init": "base",
        "train_policy.max_steps": 2, "train_policy.num_generations": 2,
        "train_policy.max_new_tokens": 8, "train_policy.beta": 0.05})
    with Store(tmp_path, lock=False) as store:
        calls_before = store.count_calls()
    metrics = run_stages(cfg, ["train-policy"], echo=lambda s: None)
    meta = json.loads((Path(metrics["policy"]["path"]) / "cai-model.json").read_text())
    assert meta["method"] == "grpo" and meta["reward"] == ["judge"]
    assert len(meta["rewards"]) == 2 and all(0 <= r["reward"] <= 1 for r in meta["rewards"])
    assert all(r["kl"] is not None for r in meta["rewards"])  # KL to the reference is tracked
    with Store(tmp_path, lock=False) as store:  # every reward query is a stored judge call
        assert store.count_calls() == calls_before + 2 * 2  # 2 steps x a group of 2 completions
    again = run_stages(cfg, ["train-policy"], echo=lambda s: None)
    assert again["stages"]["train-policy"]["reused"] == 1
