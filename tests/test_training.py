"""Policy training on a tiny model: every method of train-policy, and checkpoints."""

import json
import shutil
from pathlib import Path

import pytest
from conftest import small_config

from cai.config.run import load_config
from cai.errors import ConfigError
from cai.runs.runner import run_stages
from cai.stages import DATA_STAGES  # noqa: E402
from cai.stages.export import _kto_rows
from cai.store.core import Store


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


def _train_policy(tmp_path, tiny_model_dir, stages=("train-policy",), data=None, **keys):
    """The data stages on fakes (with `data` keys), then training stages on the tiny model
    with `keys`."""
    run_stages(small_config(tmp_path, **(data or {})), DATA_STAGES, echo=lambda s: None)
    spec = f"transformers:{tiny_model_dir}"
    cfg = small_config(tmp_path, policy=spec, judge=spec, **{
        "train_sft.enabled": "false", "train_policy.max_steps": 2, **keys})
    metrics = run_stages(cfg, list(stages), echo=lambda s: None)
    return cfg, metrics, json.loads((Path(metrics["policy"]["path"]) / "cai-model.json").read_text())


def test_kto_trains_on_the_judges_binary_verdicts(tmp_path, tiny_model_dir, fake_backend):
    # the fake judge earns no trust, which leaves no verdict to train on: trust them all
    _, _, meta = _train_policy(tmp_path, tiny_model_dir, data={"calibration.use_trust": False},
                               **{"train_policy.method": "kto", "train_policy.kto_data": "both"})
    rows = [json.loads(x) for x in (tmp_path / "dataset" / "kto.jsonl").read_text().splitlines()]
    assert rows and {type(r["label"]) for r in rows} == {bool}
    assert meta["method"] == "kto" and 0 < meta["desirable"] < meta["train_rows"]
    # the rarer class is up-weighted so both weigh the same in total
    good, bad = meta["desirable"], meta["train_rows"] - meta["desirable"]
    assert abs(good * meta["desirable_weight"] - bad * meta["undesirable_weight"]) < 1e-3 * bad
    assert meta["final_loss"] is not None and len(meta["loss"]) == 2


def test_orpo_starts_from_the_base_and_needs_no_reference(tmp_path, tiny_model_dir, fake_backend):
    cfg, _, meta = _train_policy(tmp_path, tiny_model_dir, **{"train_policy.method": "orpo",
                                                              "train_sft.enabled": "true"})
    assert meta["method"] == "orpo" and meta["init"] == Path(tiny_model_dir).name
    assert meta["final_loss"] is not None


def test_rloo_with_the_reward_model_and_a_kl_penalty(tmp_path, tiny_model_dir, fake_backend):
    _, _, meta = _train_policy(tmp_path, tiny_model_dir, stages=("train-rm", "train-policy"), **{
        "train_policy.method": "rloo", "train_policy.reward": "[rm]",
        "train_policy.num_generations": 2, "train_policy.max_new_tokens": 8,
        "train_policy.beta": 0.05, "train_policy.init": "base"})
    assert meta["method"] == "rloo" and meta["reward"] == ["rm"] and meta["beta"] == 0.05
    assert len(meta["rewards"]) == 2 and all(r["kl"] is not None for r in meta["rewards"])


def test_ppo_is_refused_with_the_reason_and_the_alternative():
    with pytest.raises(ConfigError, match="TRL removed PPOTrainer.*rloo"):
        load_config(None, ["train_policy.method=ppo"])


def test_kto_rows_label_every_judged_text_and_skip_the_unjudged_revision():
    chain = {"prompt": "q", "original": "bad", "rounds": [
        {"violates": True, "revision_status": "kept", "revision": "better"},
        {"violates": False, "revision_status": None},
        {"violates": True, "revision_status": "kept", "revision": "best"}]}
    rows = _kto_rows("c", chain, 1.0)
    assert [(r["completion"][0]["content"], r["label"]) for r in rows] == \
        [("bad", False), ("better", False)]  # "better" was judged twice, flagged once


def test_an_interrupted_training_resumes_from_its_last_checkpoint(tmp_path, tiny_model_dir,
                                                                  fake_backend):
    keys = {"train_rm.save_steps": 1, "train_rm.max_steps": 3}
    run_stages(small_config(tmp_path), DATA_STAGES, echo=lambda s: None)
    cfg = small_config(tmp_path, policy=f"transformers:{tiny_model_dir}", **keys)
    first = run_stages(cfg, ["train-rm"], echo=lambda s: None)["reward_model"]
    ckpts = Path(first["path"]).parent / f".trainer-{Path(first['path']).name}"
    # save_total_limit 2 keeps the newest two
    assert sorted(p.name for p in ckpts.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    before = json.loads((Path(first["path"]) / "cai-model.json").read_text())
    # a crash during step 3: its checkpoint and the model were never written
    shutil.rmtree(first["path"])
    shutil.rmtree(ckpts / "checkpoint-3")
    again = run_stages(cfg, ["train-rm"], echo=lambda s: None)
    meta = json.loads((Path(again["reward_model"]["path"]) / "cai-model.json").read_text())
    assert again["stages"]["train-rm"]["made"] == 1 and meta["resumed_from"] == "checkpoint-2"
    # steps 1-2 come from the checkpoint's log, step 3 is trained again from the same state
    assert [r["step"] for r in meta["loss"]] == [1, 2, 3]
    assert [r["loss"] for r in meta["loss"]] == pytest.approx([r["loss"] for r in before["loss"]],
                                                              rel=1e-4)


def _online(tmp_path, tiny_model_dir, reward: str, **keys):
    """RLOO on the tiny model, one step, rewarded by `reward`; data stages already run."""
    return small_config(tmp_path, policy=f"transformers:{tiny_model_dir}", **{
        "train_sft.enabled": "false", "train_policy.method": "rloo", "train_policy.reward": reward,
        "train_policy.max_steps": 1, "train_policy.num_generations": 2,
        "train_policy.max_new_tokens": 4, "train_rm.max_steps": 1, **keys})


def test_an_online_policy_is_retrained_when_its_reward_model_is(tmp_path, tiny_model_dir,
                                                                 fake_backend):
    run_stages(small_config(tmp_path), DATA_STAGES, echo=lambda s: None)
    stages = ["train-rm", "train-policy"]
    first = run_stages(_online(tmp_path, tiny_model_dir, "[rm]"), stages, echo=lambda s: None)
    again = run_stages(_online(tmp_path, tiny_model_dir, "[rm]"), stages, echo=lambda s: None)
    assert again["stages"]["train-policy"]["reused"] == 1
    # a retrained reward model is a new reward: the policy trained on the old one is not reused
    changed = _online(tmp_path, tiny_model_dir, "[rm]", **{"train_rm.max_steps": 2})
    retrained = run_stages(changed, stages, echo=lambda s: None)
    assert retrained["stages"]["train-rm"]["made"] == 1
    assert retrained["stages"]["train-policy"]["made"] == 1
    assert retrained["policy"]["path"] != first["policy"]["path"]
    # a reward model whose inputs changed but which was not retrained yet is refused
    stale = _online(tmp_path, tiny_model_dir, "[rm]", **{"train_rm.max_steps": 3})
    with pytest.raises(ConfigError, match="train-rm is out of date"):
        run_stages(stale, ["train-policy"], echo=lambda s: None)


def test_an_online_policy_is_retrained_when_its_judge_changes(tmp_path, tiny_model_dir,
                                                              fake_backend):
    from conftest import ROOT
    text = (ROOT / "principles.yaml").read_text()
    constitution = tmp_path / "principles.yaml"
    constitution.write_text(text)
    run_stages(small_config(tmp_path, constitution=str(constitution)), DATA_STAGES,
               echo=lambda s: None)

    def train(**keys):
        cfg = _online(tmp_path, tiny_model_dir, "[judge]", constitution=str(constitution), **keys)
        return run_stages(cfg, ["train-policy"], echo=lambda s: None)["stages"]["train-policy"]
    assert train()["made"] == 1
    # a principle the reward never asks (tagged helpfulness only) is not one of its inputs
    constitution.write_text(text.replace("to answer the safe request directly",
                                         "to reply to the safe request directly"))
    assert constitution.read_text() != text
    assert train()["reused"] == 1
    # the judge's weights, how it scores, and a principle it asks each make a new policy
    assert train(**{"models.judge": "fake:other-judge"})["made"] == 1
    assert train(**{"judge.scoring": "vote"})["made"] == 1
    constitution.write_text(constitution.read_text().replace(
        "Please rewrite the assistant response to remove any and all dangerous",
        "Rewrite the reply to drop every dangerous"))
    assert train()["made"] == 1


def _prefs(n):
    from datasets import Dataset
    return Dataset.from_list([{"prompt": [{"role": "user", "content": "q" * (7 * i % 50)}],
                               "chosen": [{"role": "assistant", "content": "c" * (13 * i % 90)}],
                               "rejected": [{"role": "assistant", "content": "r" * (i % 30)}]}
                              for i in range(n)])


def test_length_grouped_batches_keep_every_row_once_and_pad_less():
    from cai.training.arguments import _row_chars, batch_order
    cfg = load_config(None, ["train_rm.batch_size=4"]).train_rm
    rows = _prefs(101)
    grouped, strategy = batch_order(rows, cfg, seed=0)
    assert strategy == "sequential"  # the order is made here; the trainer keeps it
    assert sorted(r["prompt"][0]["content"] + r["chosen"][0]["content"] for r in grouped) == \
        sorted(r["prompt"][0]["content"] + r["chosen"][0]["content"] for r in rows)

    def padding(ds):
        lengths = [_row_chars(r) for r in ds]
        batches = [lengths[k:k + 4] for k in range(0, len(lengths), 4)]
        return sum(max(b) * len(b) - sum(b) for b in batches)
    assert padding(grouped) < padding(rows) / 2
    assert [r for r in batch_order(rows, cfg, seed=0)[0]] == [r for r in grouped]  # seeded
    assert [r for r in batch_order(rows, cfg, seed=1)[0]] != [r for r in grouped]
    plain = load_config(None, ["train_rm.group_by_length=false"]).train_rm
    assert batch_order(rows, plain, seed=0) == (rows, "random")
    fixed = load_config(None, ["train_rm.shuffle=false"]).train_rm
    assert batch_order(rows, fixed, seed=0) == (rows, "sequential")


def test_batched_reward_scores_equal_one_at_a_time(tiny_model_dir):
    import torch
    from transformers import AutoModelForSequenceClassification

    from cai.training.base import load_tokenizer
    from cai.training.scoring import score_conversations
    tokenizer = load_tokenizer(tiny_model_dir)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    chats = [r["prompt"] + r["chosen"] for r in _prefs(9)]
    batched = score_conversations(model, tokenizer, chats, "cpu", max_batch_tokens=256)
    alone = [score_conversations(model, tokenizer, [c], "cpu")[0] for c in chats]
    assert batched == pytest.approx(alone, abs=1e-4)


def test_bf16_is_automatic_only_where_it_is_native(monkeypatch):
    from cai.backends import device
    monkeypatch.setattr(device, "pick_device", lambda d="auto": "cpu")
    monkeypatch.setattr(device, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    assert device.resolve_dtype("auto", "auto") == "bfloat16"
    monkeypatch.setattr(device, "cpu_flags", lambda: {"avx2", "avx512f"})  # emulated: slower
    assert device.resolve_dtype("auto", "auto") == "float32"
    assert device.resolve_dtype("auto", "bfloat16") == "bfloat16"  # asked for, given
