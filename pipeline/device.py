"""Where torch runs: the device, the dtype and the CPU threads, decided in one place for the
backends, the trainers and evaluation alike."""

import os


def pick_device(device: str = "auto") -> str:
    import torch
    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


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
    import torch
    if pick_device(device).startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


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
