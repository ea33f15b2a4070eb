"""The latent grid (paper A.3): which shared embedding each latent token uses, and its time."""

from __future__ import annotations

import torch
from torch import Tensor

LATENT_TIMINGS = ("uniform", "linspace", "bin_centers")  # "linspace" = "uniform" (model config name)


def latent_grid(
    *,
    num_latent_timestamps: int,
    latents_per_timestamp: int,
    context_length_s: float,
    timing: str = "uniform",
) -> tuple[Tensor, Tensor]:
    """The latent tokens: (N,) int64 embedding index and (N,) float32 timestamps.

    N = n * m with n = num_latent_timestamps and m = latents_per_timestamp, timestamp-major: latent j
    sits at t_{j // m} with embedding index j % m, so tokens sharing a timestamp all have different
    embeddings e_0..e_{m-1} and the same set is reused at every timestamp (paper A.3: 256 latents =
    8 timestamps x 32 embeddings). ``timing="uniform"`` (alias ``"linspace"``) gives
    t_k = k T / (n - 1), i.e. linspace(0, T, n) (t_0 = 0 when n = 1); ``"bin_centers"`` gives
    t_k = (k + 0.5) T / n. Times are computed in float64 and rounded once to float32.
    """
    n, m = num_latent_timestamps, latents_per_timestamp
    if n < 1 or m < 1:
        raise ValueError(f"latent_grid: need at least 1 timestamp and 1 latent each, got {n} and {m}")
    if timing in ("uniform", "linspace"):
        times = torch.linspace(0.0, context_length_s, n, dtype=torch.float64)
    elif timing == "bin_centers":
        times = (torch.arange(n, dtype=torch.float64) + 0.5) * context_length_s / n
    else:
        raise ValueError(f"latent_grid: unknown timing {timing!r}; use one of {LATENT_TIMINGS}")
    index = torch.arange(m, dtype=torch.int64).repeat(n)
    return index, times.repeat_interleave(m).to(torch.float32)
