"""export: the blended pairs and the revisions as Hugging Face datasets, JSONL and a dataset card.

blend manifest + chains -> <run_dir>/dataset/
    prefs/  DatasetDict: train (blended pairs, weighted by repetition: no weight column), test
            (held-out human pairs), ai (every AI pair the run made, whatever training used, with
            p_chosen calibrated, p_raw, trust, weight, principle, provenance); TRL's conversational
            preference format: prompt=[user msg], chosen=[assistant msg], rejected=[assistant msg];
            p_chosen = the judge's P(chosen ≻ rejected) for comparison pairs (1.0 for human
            pairs, empty for critique-revision pairs: no comparison was asked), margin = 2·p − 1
            (TRL RewardTrainer reads a `margin` column; an empty one trains with none)
    sft/    DatasetDict: train; prompt=[user msg], completion=[assistant msg] (final revisions,
            and originals the judge found no violation in), only where the principles behind
            them earned trust (`chain_trust`); a judge at chance leaves it empty
    kto/    DatasetDict: train; the judge's binary verdicts, TRL's unpaired preference format:
            prompt, completion, label (True = no principle it was judged under found a
            violation), trust-gated like sft
    prefs.jsonl, prefs_test.jsonl, prefs_ai.jsonl, sft.jsonl, kto.jsonl, README.md (the card)
    cai export

The directory is written beside its final place and renamed in, and is named in the store by the
hash of its content: training stages key their outputs on that hash.
"""

import json

from ..context import StageStats, timed
from ..stage_inputs import Reads
from ..fsutil import atomic_dir, atomic_write_text, write_jsonl
from ..hashing import content_hash
from ..card import dataset_card
from ..trust import comparison_trust
from .calibrate import current_fit
from .common import load_records, require_manifest
from .pairs import principles_of


def human_only(rows: list[dict]) -> list[dict]:
    """The human pairs of a training split: what the reward model is trained on alone, beside
    the blend, to show what the AI pairs add."""
    return [r for r in rows if r["source"] == "human"]


def _pref_row(pid: str, pair: dict) -> dict:
    """A training or held-out row. No `weight` column: the blend is weighted by repetition
    (a pair of weight w appears floor(w) or floor(w) + 1 times), so a column would weigh it
    twice in a trainer that also reads one."""
    return {"id": pid, "source": pair["source"], "kind": pair["kind"],
            "prompt": [{"role": "user", "content": pair["prompt"]}],
            "chosen": [{"role": "assistant", "content": pair["chosen"]}],
            "rejected": [{"role": "assistant", "content": pair["rejected"]}],
            "p_chosen": pair.get("p_chosen"), "margin": pair.get("margin"),
            "provenance": json.dumps(pair["provenance"], ensure_ascii=False, sort_keys=True)}


def _ai_row(pid: str, pair: dict) -> dict:
    """Every AI pair the run made, whatever training used: what the judge said (calibrated and
    raw), what it was worth (trust) and what it weighed; never repeated."""
    prov = pair.get("provenance") or {}
    return {**_pref_row(pid, pair), "p_raw": _raw(pair, prov), "trust": prov.get("trust"),
            "weight": pair.get("weight", 1.0), "principle": principles_of(pair)}


def _raw(pair: dict, prov: dict) -> float | None:
    """The judge's uncalibrated P(chosen ≻ rejected)."""
    if pair["kind"] != "comparison":
        return prov.get("p_raw")
    p = prov.get("p_first")
    return None if p is None else p if pair.get("chosen_id") == prov.get("first_id") else 1 - p


def _sft_row(cid: str, chain: dict, trust: float) -> dict:
    return {"id": cid, "revised": chain["final_id"] != chain["response_id"],
            "prompt": [{"role": "user", "content": chain["prompt"]}],
            "completion": [{"role": "assistant", "content": chain["final"]}],
            "principles": [r["principle"] for r in chain["rounds"]], "trust": trust}


def chain_trust(chain: dict, trust: dict | None) -> float:
    """What the judge's verdicts on a chain are worth: the mean trust of the principles it was
    critiqued under, as for a comparison (`pipeline.trust`); None (`calibration.use_trust:
    false`) trusts every verdict."""
    if trust is None:
        return 1.0
    return round(comparison_trust(trust, [{"id": r["principle"]} for r in chain["rounds"]]), 4)


def _kto_rows(cid: str, chain: dict, trust: float) -> list[dict]:
    """Every text a critique round judged, labelled by the verdicts it got: the original, and
    each kept revision that a later round judged again (an unjudged final revision is left out:
    no verdict was given on it)."""
    verdicts, current = {}, chain["original"]
    for r in chain["rounds"]:
        verdicts[current] = verdicts.get(current, True) and not r["violates"]
        if r["violates"] and r.get("revision_status") == "kept":
            current = r["revision"]
    return [{"id": f"{cid}/{i}", "prompt": [{"role": "user", "content": chain["prompt"]}],
             "completion": [{"role": "assistant", "content": text}], "label": ok, "trust": trust}
            for i, (text, ok) in enumerate(verdicts.items())]


# What this stage reads (pipeline.stage_inputs): its fingerprint and `cai plan` follow it.
# The dataset card names some settings, the constitution and the calibration fit.
READS = Reads(
    config=("seed", "constitution", "models.policy", "models.judge", "prompts.source",
            "prompts.limit", "generate.samples", "critique.rounds", "blend.max_pairs_per_prompt",
            "calibration.source", "calibration.use_trust"),
    stages=("blend", "critique", "calibrate", "pairs"), constitution=True)


def _verdict_rows(ctx, stats) -> tuple[list, list]:
    """SL-CAI rows and KTO verdicts, each kept only where the judge's verdicts behind it earned
    trust (a judge at chance leaves both empty; dropped rows are counted)."""
    report = current_fit(ctx)[1]
    trust = None if not ctx.config.calibration.use_trust else (report or {}).get("trust") or {}
    chain_ids = require_manifest(ctx, "critique")["ids"]
    sft, kto = [], []
    for cid, chain in zip(chain_ids, load_records(ctx, chain_ids)):
        worth = chain_trust(chain, trust)
        rows = _kto_rows(cid, chain, worth)
        kto += rows if worth > 0 else []
        stats.drop("kto_untrusted", 0 if worth > 0 else len(rows))
        revised = chain["final_id"] != chain["response_id"]
        if not (revised or (chain["rounds"] and not any(r["violates"] for r in chain["rounds"]))):
            stats.drop("sft_unrevised_violation")
        elif worth <= 0:
            stats.drop("sft_untrusted")
        else:
            sft.append(_sft_row(cid, chain, worth))
    return sft, kto


@timed("export")
def run(ctx) -> StageStats:
    stats = StageStats("export")
    blend = require_manifest(ctx, "blend")
    train = [_pref_row(i, p) for i, p in zip(blend["ids"], load_records(ctx, blend["ids"]))]
    held_ids = blend["meta"]["heldout"]
    test = [_pref_row(i, p) for i, p in zip(held_ids, load_records(ctx, held_ids))]
    pair_ids = require_manifest(ctx, "pairs")["ids"]
    ai = [_ai_row(i, p) for i, p in zip(pair_ids, load_records(ctx, pair_ids))]
    sft, kto = _verdict_rows(ctx, stats)
    digest = content_hash(train, test, sft, kto, ai)
    target = ctx.run_dir / "dataset"
    on_disk = (target / ".cai-hash").exists() and (target / ".cai-hash").read_text() == digest
    # A plan runs on a copy of the store in another directory: the store's word is enough there.
    if ctx.store.get_artifact("dataset", digest) and (on_disk or ctx.dry_run):
        stats.cached = 1
    else:
        _write(target, train, test, sft, kto, ai, digest)
        ctx.store.put_artifact("dataset", digest, target, {"train": len(train), "test": len(test),
                                                          "sft": len(sft), "kto": len(kto),
                                                          "ai": len(ai)})
        stats.made = 1
    # The card is rewritten every time (cheap): it also reports the judge's calibration, which
    # can change without the data changing, and that must not retrain models.
    calibration = current_fit(ctx)[1]
    atomic_write_text(target / "README.md",
                      dataset_card(ctx, train, test, sft, kto, ai, blend["meta"], calibration,
                                   digest))
    # Each training stage is named by the part it reads: an edit that changes only the
    # comparisons retrains the reward model and the policy, not the SL-CAI model.
    parts = {"prefs": content_hash(train, test), "sft": content_hash(sft), "kto": content_hash(kto),
             "prefs_human": content_hash(human_only(train), test)}
    ctx.store.put_manifest("export", [digest], {"path": str(target), "train": len(train),
                                               "test": len(test), "sft": len(sft), "kto": len(kto),
                                               "ai": len(ai), "parts": parts,
                                               "trust_gated": ctx.config.calibration.use_trust})
    stats.metrics = {"dataset_hash": digest, "prefs_train": len(train), "prefs_test": len(test),
                     "prefs_ai": len(ai), "sft": len(sft), "kto": len(kto),
                     "kto_desirable": sum(r["label"] for r in kto)}
    return stats


def _write(target, train, test, sft, kto, ai, digest):
    from datasets import Dataset, DatasetDict
    with atomic_dir(target) as tmp:
        splits = {"train": Dataset.from_list(train), "test": Dataset.from_list(test)}
        if ai:  # a split of its own: what the judge made, whether or not training used it
            splits["ai"] = Dataset.from_list(ai)
        DatasetDict(splits).save_to_disk(str(tmp / "prefs"))
        DatasetDict({"train": Dataset.from_list(sft)}).save_to_disk(str(tmp / "sft"))
        DatasetDict({"train": Dataset.from_list(kto)}).save_to_disk(str(tmp / "kto"))
        write_jsonl(tmp / "prefs.jsonl", train)
        write_jsonl(tmp / "prefs_test.jsonl", test)
        write_jsonl(tmp / "prefs_ai.jsonl", ai)
        write_jsonl(tmp / "sft.jsonl", sft)
        write_jsonl(tmp / "kto.jsonl", kto)
        (tmp / ".cai-hash").write_text(digest)
