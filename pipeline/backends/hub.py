"""Hugging Face Hub model ids (`org/name`, `org/name@revision`) in every `transformers:` spec,
resolved through `huggingface_hub`'s own cache (`~/.cache/huggingface/hub`, `HF_HUB_CACHE`).

A model whose files are in that cache loads offline; one that is not is downloaded once, where
the hub can be reached (`HF_HUB_OFFLINE=1` forbids it). Its identity is the commit the revision
resolved to and the content of every file a loader reads (`weights.fingerprint`): a branch that
moves on, or a file changed in the cache, names another model.
"""

import os
import re
from pathlib import Path

from cai.errors import ModelUnavailable

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*(@[\w./-]+)?$")
# What a transformers loader reads; a repo's other files (ONNX, GGUF, images) are not fetched.
PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.py", "tokenizer*"]


def is_hub_id(model: str) -> bool:
    """`org/name[@revision]` that is not a local path (a local directory always wins)."""
    return bool(HUB_ID.match(model)) and not Path(model).expanduser().exists()


def snapshot(model: str, fetch: bool = True) -> Path | None:
    """The cached snapshot directory of a hub id; downloaded first when `fetch` and not cached
    (None when not cached and `fetch` is false)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError
    repo, _, revision = model.partition("@")
    try:
        return Path(snapshot_download(repo, revision=revision or None, local_files_only=True))
    except LocalEntryNotFoundError:
        if not fetch:
            return None
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise ModelUnavailable(f"model '{model}' is not in the Hugging Face cache and HF_HUB_OFFLINE "
                               f"is set; fetch it where the hub is reachable (`hf download {repo}`)")
    try:
        return Path(snapshot_download(repo, revision=revision or None, allow_patterns=PATTERNS))
    except Exception as exc:  # no network, no such repo or revision, a gated repo without a token
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ModelUnavailable(f"model '{model}' is not in the Hugging Face cache and could not be "
                               f"downloaded ({reason}); fetch it with `hf download {repo}` or give a "
                               "local directory") from None


def hub_identity(model: str, fetch: bool = True) -> tuple[Path | None, dict]:
    """(snapshot directory, identity): the repo, the commit its revision resolved to and the
    files' fingerprint. Not cached and not fetched: the repo and the revision asked for."""
    from cai.backends.weights import fingerprint
    repo, _, revision = model.partition("@")
    path = snapshot(model, fetch)
    if path is None:
        return None, {"model": repo, "revision": revision or "main", "weights": "not downloaded"}
    return path, {"model": repo, "revision": path.name, **fingerprint(path)}
