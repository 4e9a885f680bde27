"""Dataset files written as rows come: Hugging Face `save_to_disk` directories in shards, JSONL,
and the content hash of the rows, none of which ever holds a split in memory.

`DatasetDir` writes what `DatasetDict.save_to_disk` writes (`dataset_dict.json`, and per split
`data-0000i-of-0000N.arrow` shards of at most `SHARD_BYTES`, `state.json`,
`dataset_info.json`), with `datasets`' own `ArrowWriter` and `DatasetInfo`, so
`load_from_disk` (and TRL after it) reads it as before. `RowsHash` is `content_hash` of lists of
rows, fed a row at a time: the same bytes, so the same name.
"""

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from cai.hashing import SCHEME, canonical

SHARD_BYTES = 500 << 20  # `datasets`' own default shard size for save_to_disk
BATCH = 1000  # rows per Arrow record batch


class SplitWriter:
    """One split: rows in Arrow shards, a new shard once one passes `shard_bytes`."""

    def __init__(self, directory: Path, split: str, features):
        self.directory, self.split, self.features = Path(directory), split, features
        self.rows, self.count = [], 0
        self.directory.mkdir(parents=True, exist_ok=True)
        self.shards, self._writer = [], None

    def add(self, row: dict):
        self.rows.append(row)
        self.count += 1
        if len(self.rows) >= BATCH:
            self._flush()

    def _flush(self):
        from datasets.arrow_writer import ArrowWriter
        if self._writer is None:
            self.shards.append(self.directory / f".shard-{len(self.shards):05d}.arrow")
            self._writer = ArrowWriter(features=self.features, path=str(self.shards[-1]))
        if self.rows:
            self._writer.write_batch({k: [r[k] for r in self.rows] for k in self.features})
            self.rows = []
        if self._writer.stream.tell() >= SHARD_BYTES:  # bytes written, buffered ones too
            self._close_shard()

    def _close_shard(self):
        self._writer.finalize()
        self._writer.close()
        self._writer = None

    def close(self, fingerprint: str) -> int:
        from datasets import DatasetInfo
        if self.rows or self._writer is None and not self.shards:
            self._flush()
        if self._writer is not None:
            self._close_shard()
        n = len(self.shards)
        files = [f"data-{i:05d}-of-{n:05d}.arrow" for i in range(n)]
        for shard, name in zip(self.shards, files):
            os.replace(shard, self.directory / name)
        state = {"_data_files": [{"filename": f} for f in files], "_fingerprint": fingerprint,
                 "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
                 "_output_all_columns": False, "_split": self.split}
        (self.directory / "state.json").write_text(json.dumps(state, indent=2, sort_keys=True))
        info = asdict(DatasetInfo(features=self.features))
        (self.directory / "dataset_info.json").write_text(
            json.dumps({k: info[k] for k in sorted(info)}, indent=2))
        return self.count


class DatasetDir:
    """A `DatasetDict` directory written split by split (`split(name, features)`)."""

    def __init__(self, directory: Path):
        self.directory, self.splits = Path(directory), {}

    def split(self, name: str, features) -> SplitWriter:
        self.splits[name] = SplitWriter(self.directory / name, name, features)
        return self.splits[name]

    def close(self, fingerprint: str) -> dict:
        counts = {name: w.close(f"{fingerprint}-{name}") for name, w in self.splits.items()}
        (self.directory / "dataset_dict.json").write_text(json.dumps({"splits": list(self.splits)}))
        return counts


class JsonlWriter:
    """A JSONL file, a row at a time (UTF-8, one JSON object per line, as exports always were)."""

    def __init__(self, path: Path):
        self.f = open(path, "w", encoding="utf-8")

    def add(self, row: dict):
        self.f.write(json.dumps(row, ensure_ascii=False) + "\n")

    def close(self):
        self.f.close()


class RowsHash:
    """`content_hash(list_1, list_2, ...)` fed one row at a time: `next_list()` starts the next
    list, `add(row)` appends to it."""

    def __init__(self):
        self.h = hashlib.sha256(f"{SCHEME}:[".encode())
        self.lists, self.first = 0, True

    def next_list(self):
        self.h.update(b"],[" if self.lists else b"[")
        self.lists, self.first = self.lists + 1, True

    def add(self, row):
        self.h.update((("" if self.first else ",") + canonical(row)).encode("utf-8"))
        self.first = False

    def hexdigest(self, n: int = 20) -> str:
        h = self.h.copy()
        h.update(b"]" if self.lists else b"")
        h.update(b"]")
        return h.hexdigest()[:n]
