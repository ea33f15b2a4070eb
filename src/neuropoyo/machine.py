"""What a benchmark prints about the machine it ran on: CPU model, matrix extensions, threads."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import torch


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def cpu_flags() -> set[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def machine_line() -> str:
    """One line: CPU model, AMX-BF16 yes/no, cores, torch threads, torch and Python versions."""
    amx = "amx_bf16" in cpu_flags()
    return (
        f"CPU: {cpu_model()} ({os.cpu_count()} cores, AMX-BF16 {'yes' if amx else 'no'}), "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads, python {platform.python_version()}"
    )


def matmul_gflops(dtype: torch.dtype, *, size: tuple[int, int, int] = (4096, 512, 1024), repeats: int = 10) -> float:
    """GFLOP/s of one (m, k) @ (k, n) matmul in ``dtype``, median of ``repeats`` timings."""
    m, k, n = size
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * m * k * n / sorted(times)[len(times) // 2] / 1e9
