"""What a benchmark prints about the machine it ran on: CPU model, matrix extensions, threads, GPU."""

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


def gpu_line(device: torch.device) -> str:
    """One line for a CUDA device: its name, memory and the CUDA version of this PyTorch."""
    properties = torch.cuda.get_device_properties(device)
    return (
        f"GPU: {properties.name} ({properties.total_memory / 2**30:.0f} GiB, "
        f"{properties.multi_processor_count} SMs), CUDA {torch.version.cuda}"
    )


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a no-op on the CPU), so wall-clock timings are real."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(
    dtype: torch.dtype,
    *,
    device: torch.device = torch.device("cpu"),
    size: tuple[int, int, int] = (4096, 512, 1024),
    repeats: int = 10,
) -> float:
    """GFLOP/s of one (m, k) @ (k, n) matmul in ``dtype`` on ``device``, median of ``repeats`` timings."""
    m, k, n = size
    a, b = torch.randn(m, k, device=device).to(dtype), torch.randn(k, n, device=device).to(dtype)
    a @ b
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        synchronize(device)
        times.append(time.perf_counter() - start)
    return 2 * m * k * n / sorted(times)[len(times) // 2] / 1e9
