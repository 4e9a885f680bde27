"""Reading prompts and human preference pairs: builtin sets, JSONL, CSV or a `datasets` directory.

A bad row (invalid JSON or UTF-8, a missing, non-text, empty or oversized text, a duplicate id,
chosen identical to rejected) is handed to a `BadRows` policy: 'stop' raises one line naming
file:line and what is wrong; 'skip' counts it by reason, and the stage that read the file shows
the counts (`inputs.on_bad_row`). A file that cannot be read at all, or leaves nothing usable,
always stops.
"""

import csv
import io
import json
import re
from pathlib import Path

from cai.errors import DataError
from cai.hashing import content_hash

DATA = Path(__file__).resolve().parents[1] / "data"  # cai's builtin data sets
BUILTIN = {
    "redteam": DATA / "redteam_prompts.jsonl",
    "helpful": DATA / "helpful_prompts.jsonl",
    "borderline": DATA / "borderline_prompts.jsonl",
    "calibration": DATA / "calibration_human_prefs.jsonl",
    "harmful": DATA / "harmful_prompts_dev.jsonl",
    "safe": DATA / "safe_prompts_dev.jsonl",
    "unsafe": DATA / "unsafe_contrast_prompts_dev.jsonl",
    "refusal-labels": DATA / "refusal_labels_dev.jsonl",
}
# Each dev set is split in two, fixed: `builtin:<set>-tune` is what defaults may be chosen on,
# `builtin:<set>-test` what evaluate and bench/outcome report (pipeline/data/README.md).
DEV_SETS = ("harmful", "safe", "unsafe", "refusal-labels")
PARTS = ("tune", "test")
SPLIT_SEED = "cai-dev-split-20261206"
MAX_CHARS = 16000  # inputs.max_prompt_chars


class BadRows:
    """What happens to a bad row: 'stop' (a DataError naming it) or 'skip' (counted by reason)."""

    def __init__(self, mode: str = "stop", max_chars: int = MAX_CHARS):
        self.mode, self.max_chars, self.counts = mode, max_chars, {}

    @classmethod
    def of(cls, cfg) -> "BadRows":
        return cls(cfg.inputs.on_bad_row, cfg.inputs.max_prompt_chars)

    def __call__(self, where: str, reason: str, message: str):
        if self.mode == "stop":
            raise DataError(f"{where}: {message} (inputs.on_bad_row=skip skips such rows)")
        self.counts[reason] = self.counts.get(reason, 0) + 1

    def report(self, stats):
        """Skipped rows as a stage's drops: `bad_row_<reason>`."""
        for reason, n in sorted(self.counts.items()):
            stats.drop(f"bad_row_{reason}", n)


def read_rows(source: str, bad: BadRows | None = None) -> list[tuple[str, dict]]:
    """(where, row) for every readable row of a source; `where` is 'file:line' for messages."""
    return list(iter_rows(source, bad))


def iter_rows(source: str, bad: BadRows | None = None):
    """`read_rows` one row at a time: a JSONL file of millions of prompts is never held whole."""
    bad = bad or BadRows()
    if source.startswith("builtin:"):
        name, part = builtin_part(source)
        rows = _read_jsonl(BUILTIN[name], bad)
        yield from (rows if part is None else ((w, r) for w, r in rows if split_of(r) == part))
        return
    try:
        path = Path(source).expanduser()
        if path.is_dir():
            rows = _read_datasets_dir(path)
        elif not path.is_file():
            raise DataError(f"{source}: no such file or directory")
        else:
            rows = _read_csv(path) if path.suffix == ".csv" else _read_jsonl(path, bad)
        yield from rows
    except (OSError, ValueError) as exc:  # unreadable, or a path with a NUL byte
        raise DataError(f"{source!r}: cannot read ({exc})") from None


def builtin_part(source: str) -> tuple[str, str | None]:
    """'builtin:safe-test' -> ('safe', 'test'); 'builtin:safe' -> ('safe', None)."""
    name = source.split(":", 1)[1]
    base, _, part = name.rpartition("-")
    if base in DEV_SETS and part in PARTS:
        return base, part
    if name not in BUILTIN:
        known = [f"builtin:{k}" for k in BUILTIN] + [f"builtin:{s}-{p}" for s in DEV_SETS
                                                     for p in PARTS]
        raise DataError(f"unknown builtin data set '{source}'; known: " + ", ".join(known))
    return name, None


def whole_set(source: str) -> str:
    """The whole dev set a builtin part comes from: no training may see either part."""
    return f"builtin:{builtin_part(source)[0]}" if source.startswith("builtin:") else source


def split_of(row: dict) -> str:
    """'tune' or 'test', fixed by the prompt's id (a labelled reply goes with its prompt, so the
    parts share no prompt)."""
    key = str(row.get("prompt_id") or row.get("id"))
    return "tune" if int(content_hash(SPLIT_SEED, key)[:8], 16) % 2 == 0 else "test"


def _read_jsonl(path: Path, bad: BadRows):
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            where = f"{path}:{n}"
            try:
                line = raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                bad(where, "invalid_utf8", f"not UTF-8 text (bad byte at column {exc.start + 1})")
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as exc:
                bad(where, "invalid_json", f"not valid JSON ({getattr(exc, 'msg', 'nested too deeply')})")
                continue
            if not isinstance(row, dict):
                bad(where, "not_an_object", "expected a JSON object per line")
                continue
            yield where, row


def _read_csv(path: Path):
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text (bad byte {data[exc.start]:#04x})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        return [(f"{path}:{reader.line_num}", row) for row in reader]
    except csv.Error as exc:
        raise DataError(f"{path}:{reader.line_num}: not valid CSV ({exc})") from None


def _read_datasets_dir(path: Path):
    from datasets import load_from_disk
    try:
        ds = load_from_disk(str(path))
    except Exception as exc:  # noqa: BLE001 - datasets raises many types; the message says enough
        raise DataError(f"{path}: not a `datasets` directory saved with save_to_disk ({exc})") from None
    if hasattr(ds, "keys"):  # a DatasetDict: take the train split, else the first
        ds = ds["train"] if "train" in ds else ds[next(iter(ds.keys()))]
    return [(f"{path}[{i}]", dict(row)) for i, row in enumerate(ds)]


def _text(where: str, row: dict, field: str, bad: BadRows) -> str | None:
    """The row's text in `field`, or None after telling `bad` what is wrong with it."""
    value = row.get(field)
    columns = ", ".join(map(str, row)) or "none"
    if value is None:
        bad(where, "missing_field", f"no '{field}' (columns: {columns})")
    elif not isinstance(value, str):
        bad(where, "not_text", f"'{field}' must be text, got {type(value).__name__}")
    elif not value.strip():
        bad(where, "empty_text", f"'{field}' is empty")
    elif len(value) > bad.max_chars:
        bad(where, "too_long", f"'{field}' is {len(value):,} characters; the limit is "
                               f"{bad.max_chars:,} (inputs.max_prompt_chars)")
    elif (at := lone_surrogate(value)) is not None:
        bad(where, "lone_surrogate", f"'{field}' holds a lone surrogate (\\u{ord(value[at]):04x}) "
                                     f"at character {at + 1}: not text any model can read")
    else:
        return value.strip()
    return None


def lone_surrogate(text: str) -> int | None:
    """Where a string holds half of a UTF-16 pair (JSON allows "\\ud800"; UTF-8 cannot hold it)."""
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as exc:
        return exc.start


def _nothing_left(source: str, what: str, bad: BadRows) -> DataError:
    skipped = ", ".join(f"{k}: {v}" for k, v in sorted(bad.counts.items()))
    return DataError(f"{source}: no {what}" + (f" (skipped {skipped})" if skipped else ""))


def load_prompts(source: str, field: str = "prompt", id_field: str = "id",
                 limit: int | None = None, seed: int | None = None,
                 bad: BadRows | None = None) -> list[dict]:
    """Prompts as [{"id", "prompt"}], plus "kind" where a row says whether it is a red-team
    or a benign prompt (a `kind` column: 'red-team' or 'benign').

    With a seed, the order is a deterministic shuffle (evaluation sets are sorted by type, so
    the first N alone would be unrepresentative); without one, file order is kept.
    """
    prompts = list(iter_prompts(source, field, id_field, bad))
    if seed is not None:
        prompts.sort(key=lambda p: content_hash(seed, p["id"]))
    return prompts[:limit] if limit else prompts


def iter_prompts(source: str, field: str = "prompt", id_field: str = "id",
                 bad: BadRows | None = None):
    """`load_prompts` in file order, one at a time (the ids seen are all it keeps)."""
    bad = bad or BadRows()
    seen = set()
    for where, row in iter_rows(source, bad):
        text = _text(where, row, field, bad)
        if text is None:
            continue
        pid = str(row.get(id_field) or "p-" + content_hash(text, n=12))
        kind = row.get("kind")
        if lone_surrogate(pid) is not None:
            bad(where, "lone_surrogate", "the id holds a lone surrogate: not text")
        elif pid in seen:
            bad(where, "duplicate_id", f"duplicate prompt id '{pid[:80]}'")
        elif kind not in (None, "red-team", "benign"):
            bad(where, "bad_kind", f"kind must be 'red-team' or 'benign', got {kind!r}"[:200])
        else:
            seen.add(pid)
            yield {"id": pid, "prompt": text, **({"kind": kind} if kind else {})}
    if not seen:
        raise _nothing_left(source, "prompts", bad)


def norm(text: str) -> str:
    """A prompt as evaluation-set checks compare it: case, punctuation and spacing ignored."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def load_human_pairs(source: str, bad: BadRows | None = None) -> list[dict]:
    """Human preference pairs as [{"id", "prompt", "chosen", "rejected"}]."""
    bad = bad or BadRows()
    pairs, seen = [], set()
    for where, row in read_rows(source, bad):
        texts = []
        for key in ("prompt", "chosen", "rejected"):
            texts.append(_text(where, row, key, bad))
            if texts[-1] is None:
                break
        if None in texts:
            continue
        prompt, chosen, rejected = texts
        pid = str(row.get("id") or "h-" + content_hash(prompt, chosen, rejected, n=12))
        if lone_surrogate(pid) is not None:
            bad(where, "lone_surrogate", "the id holds a lone surrogate: not text")
        elif chosen == rejected:
            bad(where, "chosen_is_rejected", "'chosen' and 'rejected' are the same text")
        elif pid in seen:
            bad(where, "duplicate_id", f"duplicate pair id '{pid[:80]}'")
        else:
            seen.add(pid)
            pairs.append({"id": pid, "prompt": prompt, "chosen": chosen, "rejected": rejected})
    if not pairs:
        raise _nothing_left(source, "human preference pairs", bad)
    return pairs
