"""Reading prompts and human preference pairs: builtin sets, JSONL, CSV or a `datasets` directory.

A bad row names the file and line and what is wrong; nothing is silently skipped.
"""

import csv
import json
from pathlib import Path

from .errors import DataError
from .hashing import content_hash

DATA = Path(__file__).parent / "data"
BUILTIN = {
    "redteam": DATA / "redteam_prompts.jsonl",
    "helpful": DATA / "helpful_prompts.jsonl",
    "borderline": DATA / "borderline_prompts.jsonl",
    "calibration": DATA / "calibration_human_prefs.jsonl",
    "harmful": DATA / "harmful_prompts_dev.jsonl",
    "safe": DATA / "safe_prompts_dev.jsonl",
}


def read_rows(source: str) -> list[tuple[str, dict]]:
    """(where, row) for every row of a source; `where` is 'file:line' for error messages."""
    if source.startswith("builtin:"):
        name = source.split(":", 1)[1]
        if name not in BUILTIN:
            raise DataError(f"unknown builtin data set '{source}'; known: "
                            + ", ".join(f"builtin:{k}" for k in BUILTIN))
        return _read_jsonl(BUILTIN[name])
    path = Path(source).expanduser()
    if path.is_dir():
        return _read_datasets_dir(path)
    if not path.is_file():
        raise DataError(f"{source}: no such file or directory")
    if path.suffix == ".csv":
        return _read_csv(path)
    return _read_jsonl(path)


def _read_jsonl(path: Path):
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{n}: expected a JSON object per line")
            rows.append((f"{path}:{n}", row))
    return rows


def _read_csv(path: Path):
    with open(path, encoding="utf-8", newline="") as f:
        return [(f"{path}:{n}", row) for n, row in enumerate(csv.DictReader(f), 2)]


def _read_datasets_dir(path: Path):
    from datasets import load_from_disk
    try:
        ds = load_from_disk(str(path))
    except Exception as exc:  # noqa: BLE001 - datasets raises many types; the message says enough
        raise DataError(f"{path}: not a `datasets` directory saved with save_to_disk ({exc})") from None
    if hasattr(ds, "keys"):  # a DatasetDict: take the train split, else the first
        ds = ds["train"] if "train" in ds else ds[next(iter(ds.keys()))]
    return [(f"{path}[{i}]", dict(row)) for i, row in enumerate(ds)]


def _text(where: str, row: dict, field: str) -> str:
    value = row.get(field)
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{where}: missing or empty '{field}' (columns: {', '.join(row) or 'none'})")
    return value.strip()


def load_prompts(source: str, field: str = "prompt", id_field: str = "id",
                 limit: int | None = None, seed: int | None = None) -> list[dict]:
    """Prompts as [{"id", "prompt"}], plus "kind" where a row says whether it is a red-team
    or a benign prompt (a `kind` column: 'red-team' or 'benign').

    With a seed, the order is a deterministic shuffle (evaluation sets are sorted by type, so
    the first N alone would be unrepresentative); without one, file order is kept.
    """
    prompts, seen = [], set()
    for where, row in read_rows(source):
        text = _text(where, row, field)
        pid = str(row.get(id_field) or "p-" + content_hash(text, n=12))
        if pid in seen:
            raise DataError(f"{where}: duplicate prompt id '{pid}'")
        seen.add(pid)
        kind = row.get("kind")
        if kind not in (None, "red-team", "benign"):
            raise DataError(f"{where}: kind must be 'red-team' or 'benign', got {kind!r}")
        prompts.append({"id": pid, "prompt": text, **({"kind": kind} if kind else {})})
    if seed is not None:
        prompts.sort(key=lambda p: content_hash(seed, p["id"]))
    return prompts[:limit] if limit else prompts


def load_human_pairs(source: str) -> list[dict]:
    """Human preference pairs as [{"id", "prompt", "chosen", "rejected"}]."""
    pairs = []
    for where, row in read_rows(source):
        prompt, chosen, rejected = (_text(where, row, k) for k in ("prompt", "chosen", "rejected"))
        pid = str(row.get("id") or "h-" + content_hash(prompt, chosen, rejected, n=12))
        pairs.append({"id": pid, "prompt": prompt, "chosen": chosen, "rejected": rejected})
    return pairs
