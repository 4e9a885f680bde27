"""Where torch runs: the device, the dtype and the CPU threads, decided in one place for the
backends, the trainers and evaluation alike."""

import os


def pick_device(device: str = "auto") -> str:
    import torch
    if device != "auto":
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(device: str = "auto", dtype: str = "auto") -> str:
    """'auto' is float32 on CPU (bf16 matmuls are slower there) and bfloat16 on CUDA."""
    if dtype != "auto":
        return dtype
    return "bfloat16" if pick_device(device).startswith("cuda") else "float32"


def set_threads(threads: int = 0):
    """torch threads = cores (or the configured number): more threads than cores thrash."""
    import torch
    n = threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
