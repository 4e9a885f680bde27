"""Trust reaches every use of AI output: SL-CAI rows and KTO verdicts of a judge at trust 0 train
nothing, every AI pair is exported whatever training used, the training blend is weighted
once, and the human-only reward model never starts from an AI-trained policy."""

import json
import shutil

from conftest import small_config
from datasets import load_from_disk

from cai.runs.iterations import iteration_config
from cai.runs.runner import run_stages
from cai.stages import DATA_STAGES
from cai.stages.context import RunContext
from cai.training.base import base_identity, policy_start


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_a_judge_at_trust_0_trains_no_sl_cai_and_no_kto_yet_its_ai_pairs_are_exported(
        tmp_path, fake_backend):
    cfg = small_config(tmp_path)
    metrics = run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    assert metrics["judge_agreement"]["overall_trust"] == 0  # the fake judge is at chance
    d = tmp_path / "dataset"
    # SL-CAI and KTO: every row came from verdicts worth nothing, so none is kept (counted)
    assert _jsonl(d / "sft.jsonl") == [] and _jsonl(d / "kto.jsonl") == []
    dropped = metrics["stages"]["export"]["dropped"]
    assert dropped["sft_untrusted"] > 0 and dropped["kto_untrusted"] > 0
    # the AI pairs: their own split, every one, with what they were worth
    prefs = load_from_disk(str(d / "prefs"))
    ai = prefs["ai"]
    assert len(ai) == metrics["counts"]["ai_pairs"] > 0 == len(
        [r for r in prefs["train"] if r["source"] == "ai"])
    assert set(ai["weight"]) == {0.0} and set(ai["trust"]) == {0.0}
    assert all(r["principle"] and r["p_raw"] is not None for r in ai if r["kind"] == "comparison")
    assert _jsonl(d / "prefs_ai.jsonl") == [dict(r) for r in ai]
    card = (d / "README.md").read_text()
    assert f"0 of {len(ai)} AI pairs counted (no principle's judge earned trust" in card
    # train-sft trains nothing, loudly, and the policy starts from the base
    sft = run_stages(cfg, ["train-sft"], echo=lambda s: None)
    assert sft["stages"]["train-sft"]["dropped"] == {"no_trusted_revision": 1}
    with RunContext(cfg) as ctx:
        assert policy_start(ctx) == "base"
    assert "SL-CAI SFT: off — no revision earned trust" in (tmp_path / "summary.md").read_text()


def test_the_blend_is_weighted_once_by_repetition_and_says_so(tmp_path, fake_backend):
    """Without trust the AI pairs weigh their confidence: the training split repeats them and
    carries no weight column (a trainer reading one would weigh them twice)."""
    cfg = small_config(tmp_path, **{"calibration.use_trust": False})
    metrics = run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    prefs = load_from_disk(str(tmp_path / "dataset" / "prefs"))
    assert "weight" not in prefs["train"].column_names and "weight" in prefs["ai"].column_names
    assert any(r["source"] == "ai" for r in prefs["train"])
    card = (tmp_path / "dataset" / "README.md").read_text()
    assert "**prefs/train is weighted by repetition**" in card and "**Not trust-gated**" in card
    # not gated: SL-CAI trains on the judge's revisions, and the summary says so plainly
    assert _jsonl(tmp_path / "dataset" / "sft.jsonl")
    assert metrics["counts"]["trust_gated"] is False
    assert "not trust-gated" in (tmp_path / "summary.md").read_text()


def test_in_iteration_2_both_reward_models_start_from_the_original_policy(tmp_path,
                                                                          tiny_model_dir):
    previous = tmp_path / "policy-it1"  # stands in for iteration 1's DPO-tuned policy
    shutil.copytree(tiny_model_dir, previous)
    (previous / "generation_config.json").write_text('{"do_sample": false}')
    cfg = small_config(tmp_path / "run", policy=f"transformers:{tiny_model_dir}")
    second = iteration_config(cfg, 2, str(previous))
    with RunContext(cfg) as first_ctx, RunContext(second) as ctx:
        original = base_identity(first_ctx, rm=True)
        assert base_identity(ctx) != original  # the policy trains on from iteration 1's
        assert base_identity(ctx, rm=True) == original  # the reward models do not
