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
from collections import Counter

from cai.feedback.trust import comparison_trust
from cai.fsutil import atomic_dir, atomic_write_text
from cai.publish.card import dataset_card
from cai.publish.dataset_files import DatasetDir, JsonlWriter, RowsHash
from cai.stages import common
from cai.stages.calibrate import current_fit
from cai.stages.common import batched, load_records, manifest_records, require_stage
from cai.stages.context import StageStats, timed
from cai.stages.pairs import principles_of
from cai.stages.reads import Reads


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
    critiqued under, as for a comparison (`cai.feedback.trust`); None (`calibration.use_trust:
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


# What this stage reads (cai.stages.reads): its fingerprint and `cai plan` follow it.
# The dataset card names some settings, the constitution and the calibration fit.
READS = Reads(
    config=("seed", "constitution", "models.policy", "models.judge", "prompts.source",
            "prompts.limit", "generate.samples", "critique.rounds", "blend.max_pairs_per_prompt",
            "calibration.source", "calibration.use_trust"),
    stages=("blend", "critique", "calibrate", "pairs"), constitution=True)


def _features():
    """The columns of each dataset (a split is written as it is made, so they are declared)."""
    from datasets import Features, List, Value
    text, number = Value("string"), Value("float64")
    messages = List({"role": text, "content": text})
    pref = {"id": text, "source": text, "kind": text, "prompt": messages, "chosen": messages,
            "rejected": messages, "p_chosen": number, "margin": number, "provenance": text}
    return {"prefs": Features(pref),
            "ai": Features({**pref, "p_raw": number, "trust": number, "weight": number,
                            "principle": List(text)}),
            "sft": Features({"id": text, "revised": Value("bool"), "prompt": messages,
                             "completion": messages, "principles": List(text), "trust": number}),
            "kto": Features({"id": text, "prompt": messages, "completion": messages,
                             "label": Value("bool"), "trust": number})}


class _Output:
    """One export's files as rows come, and what is counted and hashed of them on the way."""

    def __init__(self, tmp):
        features = _features()
        self.dirs = {name: DatasetDir(tmp / name) for name in ("prefs", "sft", "kto")}
        self.splits = {"train": self.dirs["prefs"].split("train", features["prefs"]),
                       "test": self.dirs["prefs"].split("test", features["prefs"]),
                       "sft": self.dirs["sft"].split("train", features["sft"]),
                       "kto": self.dirs["kto"].split("train", features["kto"])}
        self.ai_features = features["ai"]
        self.jsonl = {k: JsonlWriter(tmp / f) for k, f in (
            ("train", "prefs.jsonl"), ("test", "prefs_test.jsonl"), ("ai", "prefs_ai.jsonl"),
            ("sft", "sft.jsonl"), ("kto", "kto.jsonl"))}
        # the dataset's name, and one per part each training stage reads (see `run`)
        self.digest, self.parts = RowsHash(), {k: RowsHash() for k in
                                               ("prefs", "sft", "kto", "prefs_human")}
        self.counts, self.kinds, self.used = Counter(), Counter(), Counter()

    def begin(self, name: str):
        self.digest.next_list()
        for part in {"train": ("prefs", "prefs_human"), "sft": ("sft",),
                     "kto": ("kto",)}.get(name, ()):
            self.parts[part].next_list()

    def add(self, name: str, row: dict):
        self.digest.add(row)
        self.counts[name] += 1
        if name in ("train", "test"):
            self.parts["prefs"].add(row)
            if name == "test" or row["source"] == "human":
                self.parts["prefs_human"].add(row)
        elif name in ("sft", "kto"):
            self.parts[name].add(row)
        self._count(name, row)
        if name not in self.splits:  # the ai split: one of its own, there when it has rows
            self.splits[name] = self.dirs["prefs"].split(name, self.ai_features)
        self.splits[name].add(row)
        self.jsonl[name].add(row)

    def _count(self, name: str, row: dict):
        """What the dataset card says of each split."""
        if name == "train":
            self.kinds[row["kind"]] += 1
        elif name == "ai":
            self.counts["ai_counted"] += (row["weight"] or 0) > 0
        elif name == "sft":
            self.counts["sft_revised"] += row["revised"]
            self.used.update(row["principles"])
        elif name == "kto":
            self.counts["kto_desirable"] += row["label"]

    def card_counts(self) -> dict:
        return {**self.counts, "train_kinds": dict(self.kinds), "principles_used": dict(self.used)}

    def close(self, tmp):
        digest = self.digest.hexdigest()
        for w in self.jsonl.values():
            w.close()
        for d in self.dirs.values():
            d.close(digest)
        (tmp / ".cai-hash").write_text(digest)
        return digest


def _chain_rows(ctx, stats, out: _Output, name: str, trust):
    """SL-CAI rows (`name` 'sft') or KTO verdicts ('kto'), each kept only where the judge's
    verdicts behind it earned trust (a judge at chance leaves both empty; drops are counted)."""
    out.begin(name)
    for chunk in manifest_records(ctx, "critique"):
        for cid, chain in chunk:
            worth = chain_trust(chain, trust)
            if name == "kto":
                rows = _kto_rows(cid, chain, worth)
                stats.drop("kto_untrusted", 0 if worth > 0 else len(rows))
                for row in rows if worth > 0 else []:
                    out.add("kto", row)
                continue
            revised = chain["final_id"] != chain["response_id"]
            if not (revised or (chain["rounds"] and not any(r["violates"] for r in chain["rounds"]))):
                stats.drop("sft_unrevised_violation")
            elif worth <= 0:
                stats.drop("sft_untrusted")
            else:
                out.add("sft", _sft_row(cid, chain, worth))


def _pair_rows(ctx, out: _Output, name: str, pages, row):
    out.begin(name)
    for ids in pages:
        for pid, pair in zip(ids, load_records(ctx, ids)):
            out.add(name, row(pid, pair))


def _write(ctx, stats, tmp, blend_meta) -> _Output:
    """Every file of the export into `tmp`, a chunk of records at a time, in the order the
    dataset's name hashes them: train, test, sft, kto, ai."""
    report = current_fit(ctx)[1]
    trust = None if not ctx.config.calibration.use_trust else (report or {}).get("trust") or {}
    out = _Output(tmp)
    size = common.CHUNK
    _pair_rows(ctx, out, "train", ctx.store.manifest_pages("blend", size), _pref_row)
    _pair_rows(ctx, out, "test", batched(blend_meta["heldout"], size), _pref_row)
    _chain_rows(ctx, stats, out, "sft", trust)
    _chain_rows(ctx, stats, out, "kto", trust)
    require_stage(ctx, "pairs")
    _pair_rows(ctx, out, "ai", ctx.store.manifest_pages("pairs", size), _ai_row)
    return out


class _Unchanged(Exception):
    """The export came out as the one on disk: the new copy is dropped."""


@timed("export")
def run(ctx) -> StageStats:
    stats = StageStats("export")
    blend_meta = require_stage(ctx, "blend")
    target = ctx.run_dir / "dataset"
    try:
        with atomic_dir(target) as tmp:
            out = _write(ctx, stats, tmp, blend_meta)
            digest = out.close(tmp)
            on_disk = (target / ".cai-hash").exists() and (target / ".cai-hash").read_text() == digest
            # A plan runs on a copy of the store in another directory: the store's word is
            # enough there.
            if ctx.store.get_artifact("dataset", digest) and (on_disk or ctx.dry_run):
                raise _Unchanged
    except _Unchanged:
        stats.cached = 1
    c = out.counts
    sizes = {"train": c["train"], "test": c["test"], "sft": c["sft"], "kto": c["kto"], "ai": c["ai"]}
    if not stats.cached:
        ctx.store.put_artifact("dataset", digest, target, sizes)
        stats.made = 1
    # The card is rewritten every time (cheap): it also reports the judge's calibration, which
    # can change without the data changing, and that must not retrain models.
    calibration = current_fit(ctx)[1]
    atomic_write_text(target / "README.md",
                      dataset_card(ctx, out.card_counts(), blend_meta, calibration, digest))
    # Each training stage is named by the part it reads: an edit that changes only the
    # comparisons retrains the reward model and the policy, not the SL-CAI model.
    parts = {k: h.hexdigest() for k, h in out.parts.items()}
    ctx.store.put_manifest("export", [digest], {"path": str(target), **sizes, "parts": parts,
                                               "trust_gated": ctx.config.calibration.use_trust})
    stats.metrics = {"dataset_hash": digest, "prefs_train": c["train"], "prefs_test": c["test"],
                     "prefs_ai": c["ai"], "sft": c["sft"], "kto": c["kto"],
                     "kto_desirable": c["kto_desirable"]}
    return stats
