"""Any TRL config field reaches the trainer through `trainer` (per stage or for all), checked
against the TRL config class before any work."""

from pathlib import Path

import pytest
from conftest import small_config

from cai.errors import ConfigError
from cai.runs.runner import run_stages
from cai.stages import DATA_STAGES


def test_a_passed_through_key_reaches_trl(tmp_path, tiny_model_dir, fake_backend, monkeypatch):
    from cai.training import policy
    from cai.training.saving import fit
    seen = []

    def recording_fit(trainer):
        seen.append(trainer.args)
        return fit(trainer)
    monkeypatch.setattr(policy, "fit", recording_fit)
    run_stages(small_config(tmp_path), DATA_STAGES, echo=lambda s: None)
    spec = f"transformers:{tiny_model_dir}"
    keys = {"train_sft.enabled": "false", "train_policy.max_steps": 2,
            "train.trainer": "{warmup_steps: 0.5, lr_scheduler_type: constant_with_warmup}",
            "train_policy.trainer": "{weight_decay: 0.01, logging_steps: 2}"}
    plain = run_stages(small_config(tmp_path, policy=spec, judge=spec, **{
        k: v for k, v in keys.items() if "trainer" not in k}), ["train-policy"], echo=lambda s: None)
    passed = run_stages(small_config(tmp_path, policy=spec, judge=spec, **keys), ["train-policy"],
                        echo=lambda s: None)
    args = seen[-1]
    assert (args.warmup_steps, args.lr_scheduler_type, args.weight_decay, args.logging_steps) == \
        (0.5, "constant_with_warmup", 0.01, 2)
    assert seen[0].warmup_steps != 0.5  # the run without them: TRL's defaults
    assert passed["policy"]["path"] != plain["policy"]["path"]  # another recipe, another model
    card = (Path(passed["policy"]["path"]) / "README.md").read_text()  # the model card
    assert card.startswith("---\nlibrary_name: transformers\ntags: [cai, constitutional-ai, trl, dpo]")
    assert '"warmup_steps": 0.5' in card and "## Provenance" in card and "| final_loss |" in card


def test_an_unknown_trainer_key_stops_the_run_before_any_work(tmp_path):
    cfg = small_config(tmp_path / "run", **{"train_rm.trainer": "{warmup_stepz: 0.1}"})
    with pytest.raises(ConfigError, match=r"train_rm.trainer: 'warmup_stepz' is not a field of "
                                          r"TRL's RewardConfig \(did you mean 'warmup_steps'\?\)"):
        run_stages(cfg, ["generate"], echo=lambda s: None)
    assert not (tmp_path / "run").exists()


def test_a_key_cai_sets_itself_is_refused_with_its_cai_name(tmp_path):
    with pytest.raises(ConfigError, match="'learning_rate' is set by cai's train.learning_rate"):
        small_config(tmp_path, **{"train.trainer": "{learning_rate: 1.0}"})


def test_shared_and_stage_trainer_keys_merge(tmp_path):
    cfg = small_config(tmp_path, **{"train.trainer": "{warmup_steps: 0.1, weight_decay: 0.0}",
                                    "train_sft.trainer": "{weight_decay: 0.05}"})
    assert cfg.train_sft.trainer == {"warmup_steps": 0.1, "weight_decay": 0.05}
    assert cfg.train_rm.trainer == {"warmup_steps": 0.1, "weight_decay": 0.0}
