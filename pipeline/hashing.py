"""Content hashes that name records, model calls and artifacts.

Every id is a hash of canonical JSON (sorted keys, no whitespace) with a version prefix, so
the same inputs always give the same id and a change of scheme never collides with old ids.
"""

import hashlib
import json

SCHEME = "cai1"


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(*parts, n: int = 20) -> str:
    """Hash of any JSON-able parts; `n` hex chars (80 bits by default: collisions are not a concern)."""
    payload = SCHEME + ":" + canonical(list(parts))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:n]


def file_hash(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def calls_key(keys: list[str]) -> str:
    """One name for the model calls behind an answer (a single call keeps its own key)."""
    return keys[0] if len(keys) == 1 else content_hash(keys)
