"""Where torch runs: the device, the dtype and the CPU threads, decided in one place for the
backends, the trainers and evaluation alike."""

import functools
import hashlib
import json
import os
import sys
from pathlib import Path


def pick_device(device: str = "auto") -> str:
    if device != "auto":
        return device
    return "cuda" if cuda()["available"] else "cpu"


def resolve_dtype(device: str = "auto", dtype: str = "auto") -> str:
    """'auto' is bfloat16 on CUDA and on CPUs with bf16 instructions, float32 on other CPUs
    (where bf16 is emulated and slower than float32)."""
    if dtype != "auto":
        return dtype
    return "bfloat16" if bf16_native(device) else "float32"


def bf16_native(device: str = "auto") -> bool:
    """Whether bfloat16 runs natively: CUDA with bf16 support, or a CPU with AVX512-BF16 or
    AMX. Measured on a 2-core AMD EPYC with AVX512-BF16 (SmolLM2-135M, 8 x 100 tokens): a
    forward pass 2.4x, generation 1.8x and an autocast training step 1.7x faster than float32."""
    if pick_device(device).startswith("cuda"):
        return cuda()["available"] and cuda()["bf16"]
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


@functools.cache
def cuda() -> dict:
    """torch's view of CUDA, {"available", "bf16"}, one answer per process (the model identity
    and the backend must agree). Asking torch costs its import, a second, which an unchanged
    rerun need not pay: the answer is kept in cai's cache under everything it depends on (torch's
    build, the driver, the devices and the variables that hide them), and asked again when any
    of them changes."""
    key = _cuda_key()
    path = _probe_file()
    try:
        known = json.loads(path.read_text())
        if "torch" not in sys.modules and known.get("key") == key:
            return known["cuda"]
    except (OSError, ValueError, AttributeError):
        pass
    import torch
    answer = {"available": torch.cuda.is_available()}
    answer["bf16"] = bool(answer["available"] and torch.cuda.is_bf16_supported())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"key": key, "cuda": answer}))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only cache: torch is asked each time
    return answer


def _cuda_key() -> str:
    import importlib.metadata
    import importlib.util
    spec = importlib.util.find_spec("torch")
    origin = Path(spec.origin) if spec and spec.origin else None
    try:
        version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        version = None
    devices = sorted(d for d in os.listdir("/dev") if d.startswith(("nvidia", "kfd"))) \
        if os.path.isdir("/dev") else []
    driver = Path("/proc/driver/nvidia/version")
    parts = [version, str(origin), origin.stat().st_mtime_ns if origin else None, devices,
             driver.read_text() if driver.exists() else None,
             *(os.environ.get(v) for v in ("CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES",
                                           "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES"))]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()


def _probe_file() -> Path:
    from cai.backends.weights import cache_dir
    return cache_dir() / "cuda-probe.json"


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux: /proc/cpuinfo; empty elsewhere, so float32 stays)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def set_threads(threads: int = 0):
    """torch threads = cores (or the configured number): more threads than cores thrash."""
    import torch
    n = threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
