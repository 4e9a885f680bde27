"""Per-principle strength on the human slice (issue 31), against a case computed by hand, and
`cai principles score` on a run."""

import json
from math import comb

import pytest
from conftest import cai

from cai.feedback.strength import strength_report


def _judged(ps: dict) -> list[dict]:
    """Judgements of human pairs: per pair, each principle's calibrated P(people's reply)."""
    n = max(len(v) for v in ps.values())
    return [{"principles": {pid: {"p": v[i]} for pid, v in ps.items() if i < len(v)}}
            for i in range(n)]


def test_strength_against_a_hand_computed_case():
    # 'a': 5 pairs, one abstains (0.52 is within 0.05 of 0.5), 3 of the 4 votes for people
    # 'b': 4 votes, all against people; 'c': always abstains
    report = strength_report(_judged({"a": [0.9, 0.8, 0.3, 0.52, 0.7], "b": [0.1, 0.2, 0.3, 0.4],
                                      "c": [0.5, 0.51]}), margin=0.05, seed=0)
    a = report["a"]
    assert (a["pairs"], a["votes"], a["agree"], a["relevance"], a["accuracy"]) == (5, 4, 3, 0.8, 0.75)
    # relevance × 2 × (posterior mean accuracy (3 + 1) / (4 + 2) − 0.5) = 0.8 × 2 × 1/6
    assert a["strength"] == round(0.8 * 2 * (4 / 6 - 0.5), 4) == 0.2667
    assert a["strength_raw"] == round(0.8 * 2 * 0.25, 4)
    # two-sided binomial test of 3 of 4 against 1/2: P(X ≥ 3) + P(X ≤ 1)
    assert a["p_value"] == pytest.approx((comb(4, 3) + comb(4, 4) + comb(4, 1) + comb(4, 0)) / 16)
    assert a["ci95"][0] < a["strength"] < a["ci95"][1]
    b = report["b"]  # relevance 1, accuracy 0: the prior keeps it off −1 on four votes
    assert b["strength"] == round(1 * 2 * (1 / 6 - 0.5), 4) and b["p_value"] == pytest.approx(2 / 16)
    assert b["ci95"] == [b["strength"], b["strength"]]  # every resample is the same four votes
    c = report["c"]
    assert (c["votes"], c["relevance"], c["accuracy"], c["strength"]) == (0, 0.0, None, 0.0)


def test_principles_score_on_a_run(tmp_path, fake_backend):
    run = tmp_path / "r"
    assert cai(run, "run", "--to", "pairs")[0] == 0
    code, out, err = cai(run, "principles", "score", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert rows and all({"principle", "trust", "ai_pairs", "ai_weight"} <= set(r) for r in rows)
    scored = [r for r in rows if "strength" in r]
    assert scored and [r["strength"] for r in scored] == sorted((r["strength"] for r in scored),
                                                                reverse=True)
    assert sum(r["ai_pairs"] for r in rows) > 0
    code, out, _ = cai(run, "principles", "score")
    assert code == 0 and out.splitlines()[0].split()[:5] == ["principle", "pairs", "relev.", "acc.",
                                                             "strength"]


def test_an_ablation_recomputes_exactly_the_records_the_principle_owned(tmp_path, fake_backend):
    from conftest import small_config

    from cai.runs.ablate import ablate
    from cai.runs.runner import run_stages
    from cai.stages import DATA_STAGES
    from cai.store.core import ReadOnlyStore
    cfg = small_config(tmp_path / "run", **{"prompts.limit": 8,
                                            "models.shared_cache": str(tmp_path / "calls.sqlite")})
    run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    with ReadOnlyStore(tmp_path / "run") as store:
        chains = store.get_records(store.get_manifest("critique")["ids"]).values()
        owned = {}
        for chain in chains:
            for pid in {r["principle"] for r in chain["rounds"]}:
                owned[pid] = owned.get(pid, 0) + 1
        calls = store.count_calls()
    pid = max(owned, key=owned.get)
    [row] = ablate(cfg, [pid])
    assert row["principle"] == pid and row["records_recomputed"]["critique"] == owned[pid]
    assert row["model_calls"] > 0 and "generate" not in row["records_recomputed"]
    with ReadOnlyStore(tmp_path / "run") as store:
        assert store.count_calls() == calls  # the run's own store is untouched
    [again] = ablate(cfg, [pid])  # the calls it made are in the shared call cache now
    assert again["model_calls"] == 0 and {k: again[k] for k in again if k != "model_calls"} == \
        {k: row[k] for k in row if k != "model_calls"}


def test_the_general_arm_and_the_reward_model_an_ablation_trains(tmp_path, tiny_model_dir,
                                                                  fake_backend):
    """`--general` relabels every record under one principle; `--train` gives each arm's reward
    model: the run's own where the blend did not change, one trained in the copy where it did;
    the run's models and store are left as they were."""
    from conftest import small_config

    from cai.runs.ablate import GENERAL_ARM, ablate
    from cai.runs.runner import run_stages
    from cai.stages import DATA_STAGES
    from cai.store.core import ReadOnlyStore
    cfg = small_config(tmp_path / "run", **{
        "prompts.limit": 8, "calibration.use_trust": "false", "train_sft.enabled": "false",
        "train_rm.base": f"transformers:{tiny_model_dir}", "train_rm.max_steps": 2,
        "models.shared_cache": str(tmp_path / "calls.sqlite")})
    run = run_stages(cfg, DATA_STAGES + ["train-rm"], echo=lambda s: None)
    models = sorted((tmp_path / "run" / "models").iterdir())
    with ReadOnlyStore(tmp_path / "run") as store:
        chains = len(store.get_manifest("critique")["ids"])
        pid = next(iter(store.get_records(store.get_manifest("critique")["ids"]).values())
                   )["rounds"][0]["principle"]
    rows = ablate(cfg, [pid], general=True, train=True)
    assert [r["principle"] for r in rows] == [pid, GENERAL_ARM]
    without, general = rows
    assert general["records_recomputed"]["critique"] == chains  # every chain, under one principle
    assert general["model_calls"] > without["model_calls"] > 0
    assert general["records_recomputed"]["train-rm"] == 1  # new pairs: its own reward model
    base_acc = run["reward_model"]["heldout_accuracy"]
    for r in rows:
        assert r["rm_heldout_accuracy_run"] == base_acc and r["rm_heldout_accuracy"] is not None
        # AI pairs count here (use_trust off), so a changed blend trains a reward model of its own
        assert ("train-rm" in r["records_recomputed"]) == (r["pairs_added"] + r["pairs_removed"]
                                                          + r["pairs_changed"] > 0)
    assert sorted((tmp_path / "run" / "models").iterdir()) == models
