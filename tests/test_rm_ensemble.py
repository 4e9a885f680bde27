"""Reward-model ensembles: the aggregation maths on constructed scores, and k = 3 members
trained on a tiny model whose aggregate is GRPO's reward."""

import json
from pathlib import Path

import pytest
from conftest import small_config

from cai.runs.runner import run_stages
from cai.stages import DATA_STAGES
from cai.store.core import ReadOnlyStore
from cai.training.ensemble import aggregate, ensemble_report, spread


def test_aggregates_of_one_replys_scores():
    scores = [1.0, 2.0, 6.0]  # mean 3, population std sqrt(14/3)
    assert aggregate(scores, "mean") == 3.0 and aggregate(scores, "min") == 1.0
    assert spread(scores) == pytest.approx((14 / 3) ** 0.5)
    assert aggregate(scores, "mean_minus_std", 0.5) == pytest.approx(3 - 0.5 * (14 / 3) ** 0.5)
    assert spread([4.0]) == 0.0 and aggregate([4.0], "mean_minus_std") == 4.0


def test_an_ensemble_report_on_constructed_members():
    # three members, two held-out pairs [r(chosen), r(rejected)]
    members = [[[1.0, 0.0], [0.0, 1.0]],    # right, wrong
               [[1.0, 0.0], [0.0, 2.0]],    # right, wrong
               [[0.0, 3.0], [3.0, 0.0]]]    # wrong, right
    r = ensemble_report(members, "mean", 1.0)
    assert r["member_accuracy"] == [0.5, 0.5, 0.5] and r["k"] == 3
    # means: pair 1 (2/3, 1) -> wrong; pair 2 (1, 1) -> a tie is not a win
    assert r["accuracy"] == 0.0
    assert ensemble_report(members, "min", 1.0)["accuracy"] == 0.0  # min: (0, 0) and (0, 0)
    # per side spreads: pair 1: (1/3·√2, √2), pair 2: (√2, 0.8165)
    assert r["mean_spread"] == pytest.approx(round((0.4714 + 1.4142 + 1.4142 + 0.8165) / 4, 4), abs=1e-3)


def test_three_reward_models_trained_and_their_aggregate_rewards_grpo(tmp_path, tiny_model_dir,
                                                                      fake_backend, monkeypatch):
    from cai.training import policy
    calls = []
    real = policy.ensemble_reward

    def recording(paths, device, how, penalty):
        fn = real(paths, device, how, penalty)

        def reward(prompts, completions, **kw):
            out = fn(prompts, completions, **kw)
            calls.append((len(paths), how, len(out)))
            return out
        reward.__name__ = fn.__name__
        return reward
    monkeypatch.setattr(policy, "ensemble_reward", recording)
    run_stages(small_config(tmp_path, **{"calibration.use_trust": False}), DATA_STAGES,
               echo=lambda s: None)
    spec = f"transformers:{tiny_model_dir}"
    keys = {"train_sft.enabled": "false", "train_rm.max_steps": 2, "train_rm.ensemble": 3,
            "train_rm.aggregate": "mean_minus_std", "train_policy.method": "grpo",
            "train_policy.reward": "[rm]", "train_policy.init": "base", "train_policy.max_steps": 2,
            "train_policy.num_generations": 2, "train_policy.max_new_tokens": 8}
    metrics = run_stages(small_config(tmp_path, policy=spec, judge=spec, **keys),
                         ["train-rm", "train-policy"], echo=lambda s: None)
    with ReadOnlyStore(tmp_path) as store:
        ensemble = store.get_manifest("train-rm-ensemble")
    paths = ensemble["meta"]["paths"]
    assert len(set(paths)) == 3 and len(ensemble["meta"]["member_accuracy"]) == 3
    seeds = [json.loads((Path(p) / "cai-model.json").read_text())["seed"] for p in paths]
    assert seeds == [0, 1, 2]  # the members differ in seed (and so in batch order)
    assert calls and all(c[:2] == (3, "mean_minus_std") for c in calls)  # GRPO asked the ensemble
    assert metrics["stages"]["train-rm"]["made"] == 4  # 3 members + the human-only control
    assert metrics["reward_ensemble"]["k"] == 3
    assert "reward-model ensemble of 3: held-out accuracy of the members" in \
        (tmp_path / "summary.md").read_text()
    again = run_stages(small_config(tmp_path, policy=spec, judge=spec, **keys), ["train-rm"],
                       echo=lambda s: None)
    assert again["stages"]["train-rm"]["made"] == 0  # every member reused
