"""Streaming data stages (issue #29): no stage holds all its records, chunking changes nothing,
manifests are id lists in rows with the digests they always had, exports come in shards."""

import hashlib
import json
import sqlite3

import pytest
from conftest import small_config

from cai.runs.runner import run_stages
from cai.stages import DATA_STAGES, common
from cai.store.core import Store, dumps

BIG = ("generate", "critique", "label", "pairs", "blend")  # manifests that grow with a run


def _dataset_files(run_dir) -> dict:
    d = run_dir / "dataset"
    return {p.name: p.read_bytes() for p in d.iterdir() if p.suffix == ".jsonl"}


def test_chunks_of_three_make_the_same_dataset_and_no_stage_reads_more_at_once(
        tmp_path, fake_backend, monkeypatch):
    """Every data stage in chunks of 3 records: the export is byte for byte the one made in
    chunks of 2,000 (one chunk here), while no read of records ever asks for more than a chunk
    and no stage loads a growing manifest's ids whole."""
    cfg = small_config(tmp_path / "whole", **{"prompts.limit": 8})
    run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    whole = _dataset_files(tmp_path / "whole")

    monkeypatch.setattr(common, "CHUNK", 3)
    sizes, loaded = [], []
    get_records, get_manifest = Store.get_records, Store.get_manifest

    def counted(self, ids):
        ids = list(ids)
        sizes.append(len(ids))
        return get_records(self, ids)

    def watched(self, stage):
        loaded.append(stage)
        return get_manifest(self, stage)
    monkeypatch.setattr(Store, "get_records", counted)
    monkeypatch.setattr(Store, "get_manifest", watched)
    cfg = small_config(tmp_path / "chunked", **{"prompts.limit": 8})
    metrics = run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    assert _dataset_files(tmp_path / "chunked") == whole
    # the human slice's few records are read together; every manifest-driven read is a chunk
    assert max(sizes) <= 10 and sizes.count(3) > 10
    assert not set(loaded) & set(BIG), loaded
    assert metrics["counts"]["responses"] == 16


def test_a_manifest_digest_is_the_one_a_whole_list_gave(tmp_path):
    """Digests name what later stages read (stage reuse compares them): written a chunk at a
    time, one is still sha256 of the ids as one JSON list, the meta and the records' texts."""
    with Store(tmp_path) as store:
        records = [(f"r{i}", "x", {"n": i, "t": "é"}) for i in range(7)]
        out = store.manifest_writer("generate")
        for i in range(0, 7, 3):
            out.write(records[i:i + 3])
        digest = out.finish({"prompts": 4})
        ids = [r[0] for r in records]
        h = hashlib.sha256(f"{dumps(ids)}\n{dumps({'prompts': 4})}".encode())
        for rid, _, data in sorted(records):
            h.update(f"\n{rid}\t{dumps(data)}".encode())
        assert digest == h.hexdigest()[:20] == store.manifest_digest("generate")
        assert store.get_manifest("generate") == {"ids": ids, "meta": {"prompts": 4}}
        assert [p for p in store.manifest_pages("generate", 3)] == [ids[:3], ids[3:6], ids[6:]]


def test_a_stage_killed_mid_way_leaves_the_last_manifest(tmp_path):
    """Ids written before `finish` are pending: the stage's current manifest stays the old one,
    and the next writer of the stage clears them."""
    with Store(tmp_path) as store:
        store.put_manifest("generate", ["a", "b"], {})
        out = store.manifest_writer("generate")
        out.write([("c", "x", {})])
        assert store.get_manifest("generate")["ids"] == ["a", "b"]  # killed here: nothing seen
        store.manifest_writer("generate").finish({})
        assert store.get_manifest("generate")["ids"] == []
        assert store.db.execute("SELECT COUNT(*) FROM id_lists WHERE list LIKE 'pending:%'"
                                ).fetchone()[0] == 0


def test_an_old_store_moves_its_manifests_into_lists_with_the_same_digest(tmp_path):
    """A store from before id lists (ids inline as JSON) opens with the same manifests, ids and
    digests: its stages are reused, not run again."""
    with Store(tmp_path) as store:
        store.put_records([("a", "x", {}), ("b", "x", {})])
        store.put_manifest("critique", ["a", "b", "a"], {"rounds": 2})
        digest = store.manifest_digest("critique")
    db = sqlite3.connect(tmp_path / "cai.sqlite", isolation_level=None)
    db.execute("DELETE FROM _migrations WHERE name='_m008_id_lists'")
    db.execute("UPDATE manifests SET ids=?, list=NULL, count=NULL", (json.dumps(["a", "b", "a"]),))
    db.execute("DELETE FROM id_lists")
    db.close()
    with Store(tmp_path) as store:
        assert store.get_manifest("critique") == {"ids": ["a", "b", "a"], "meta": {"rounds": 2}}
        assert store.manifest_digest("critique") == digest
        assert store.manifest_list("critique")[0] == "ids-" + hashlib.sha256(
            dumps(["a", "b", "a"]).encode()).hexdigest()[:20]


def test_exports_come_in_shards_that_load_as_one(tmp_path, fake_backend, monkeypatch):
    """Shards of a few KB (the bound is `dataset_files.SHARD_BYTES`): `data-0000i-of-0000N.arrow`
    files that `load_from_disk` reads as the same rows as the JSONL beside them."""
    from datasets import load_from_disk

    from cai.publish import dataset_files
    monkeypatch.setattr(dataset_files, "SHARD_BYTES", 4096)
    monkeypatch.setattr(dataset_files, "BATCH", 4)
    cfg = small_config(tmp_path / "run", **{"calibration.use_trust": "false"})
    run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    d = tmp_path / "run" / "dataset"
    shards = sorted(p.name for p in (d / "prefs" / "train").glob("data-*.arrow"))
    assert len(shards) > 1 and shards[-1].endswith(f"-of-{len(shards):05d}.arrow")
    prefs = load_from_disk(str(d / "prefs"))
    rows = [json.loads(x) for x in (d / "prefs.jsonl").read_text().splitlines()]
    assert prefs["train"].to_list() == rows
    assert len(load_from_disk(str(d / "kto"))["train"]) == len((d / "kto.jsonl").read_text().splitlines())


@pytest.mark.parametrize("size", [1, 2, 5])
def test_grouped_never_splits_a_key(size):
    items = [("p1", 1), ("p1", 2), ("p2", 3), ("p3", 4), ("p3", 5), ("p3", 6), ("p4", 7)]
    chunks = list(common.grouped(common.batched(items, size), key=lambda x: x[0]))
    assert [x for c in chunks for x in c] == items
    for a, b in zip(chunks, chunks[1:]):
        assert a[-1][0] != b[0][0]
    # a chunk is cut only where the next one goes on with its last key: a run that fits one
    # chunk is asked in the batches it always was
    assert list(common.grouped([items], key=lambda x: x[0])) == [items]
    assert list(common.grouped([items[:3], items[3:]], key=lambda x: x[0])) == [items[:3], items[3:]]
