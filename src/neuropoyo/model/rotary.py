"""Rotary time embeddings: RoPE over continuous timestamps (paper appendix A.1).

R(t) is block-diagonal with 2x2 rotations of angle 2*pi*t/T_i. Only the first ``rotate_dim`` dimensions
of each head are rotated; the rest are identity blocks (the paper rotates half of each head). Since
R(a)^T R(b) = R(b - a), dot products of rotated queries and keys depend only on time differences.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import torch
from torch import Tensor, nn

SPACINGS = ("half_open", "inclusive")


def rotary_periods(
    *, rotate_dim: int, t_min: float, t_max: float, spacing: str = "half_open"
) -> list[float]:
    """The D/2 periods of the rotated blocks, log-spaced over [t_min, t_max], with D = rotate_dim.

    ``"half_open"``: T_i = t_min * (t_max / t_min) ** (2i / D), i = 0 .. D/2 - 1 (the paper's formula,
    A.1), so t_max itself is excluded: 1 ms .. 2.38 s for 32 rotated dimensions (head_dim 64, half
    rotated) and t_max = 4 s. The paper's D is read as the number of rotated dimensions, so the 16
    periods span its 1 ms .. 4 s range; reading D as the whole head (64) would stop them at 49 ms.
    ``"inclusive"``: T_i = t_min ** (1 - e_i) * t_max ** e_i with e_i = i / (D/2 - 1), log-spaced with
    both ends included exactly (the
    spacing of torch_brain's POYO); a single block gets t_min.
    """
    if rotate_dim % 2:
        raise ValueError(f"rotate_dim must be even, got {rotate_dim}")
    if not 0 < t_min < t_max:
        raise ValueError(f"need 0 < t_min < t_max, got t_min={t_min}, t_max={t_max}")
    blocks = rotate_dim // 2
    if spacing == "half_open":
        return [t_min * (t_max / t_min) ** (2 * i / rotate_dim) for i in range(blocks)]
    if spacing == "inclusive":  # t_min ** (1 - e) * t_max ** e gives both ends exactly
        exponents = [i / (blocks - 1) if blocks > 1 else 0.0 for i in range(blocks)]
        return [t_min ** (1 - e) * t_max**e for e in exponents]
    raise ValueError(f"rotary spacing must be one of {', '.join(SPACINGS)}; got {spacing!r}")


class Rotation(NamedTuple):
    """R(t) for a set of tokens as one table ``phase`` (..., tokens, head_dim / 2, 2) of
    (cos a_k, sin a_k) per pair k of a head: exp(i a_k) for rotated pairs, (1, 0) for the rest.

    Pair k, (x_2k, x_2k+1), is read as the complex number x_2k + i x_2k+1 and multiplied by
    exp(i a_k): one complex multiply per head in eager mode (no slicing, swapping or concatenation
    of halves). The table is real so that ``torch.compile`` can fuse the rotation (it cannot
    generate code for complex tensors).
    """

    phase: Tensor

    def inverse(self) -> Rotation:
        """R(-t) = R(t)^T: the sines negated."""
        cos, sin = self.phase.unbind(-1)
        return Rotation(torch.stack((cos, -sin), dim=-1))


def rotate(x: Tensor, rotation: Rotation, *, head_axis: int = -3, dtype: torch.dtype | None = None) -> Tensor:
    """Apply R(t) to every head of x; the unrotated dimensions come back with the same values.

    x: (..., heads, tokens, head_dim) with head_axis=-3, or (..., tokens, heads, head_dim) with
    head_axis=-2. rotation: phases over (..., tokens, head_dim / 2, 2), broadcast over heads.
    Half-precision x is rotated in float32 (there is no bfloat16 complex type); the result is cast
    to ``dtype`` (default: x's).
    """
    if head_axis not in (-3, -2):
        raise ValueError(f"head_axis must be -3 (heads, tokens) or -2 (tokens, heads), got {head_axis}")
    real = x if x.dtype in (torch.float32, torch.float64) else x.float()
    phase = rotation.phase.unsqueeze(head_axis - 1).to(real.dtype)  # (..., [1,] tokens, [1,] D/2, 2)
    if torch.compiler.is_compiling():  # the same products in real arithmetic, which the compiler fuses
        # (even, odd) * cos + (odd, even) * (-sin, sin) = (even cos - odd sin, odd cos + even sin):
        # few graph nodes (an exported graph pays per node), no unbind or stack
        pairs = real.unflatten(-1, (-1, 2))
        cos, sin = phase[..., :1].expand(phase.shape), phase[..., 1:] * phase.new_tensor([-1.0, 1.0])
        rotated = pairs * cos + pairs.flip(-1) * sin
    else:
        if real.stride(-1) != 1:
            real = real.contiguous()
        pairs = torch.view_as_complex(real.unflatten(-1, (-1, 2)))
        rotated = torch.view_as_real(pairs * torch.view_as_complex(phase.contiguous()))
    return rotated.flatten(-2).to(dtype or x.dtype)


class RotaryTimeEmbedding(nn.Module):
    """Timestamps (..., tokens) -> Rotation, angles computed in the timestamps' dtype.

    ``spacing`` places the periods over [t_min, t_max] (see :func:`rotary_periods`); ``periods``, the
    rotate_dim // 2 periods in seconds, replaces that formula when given.
    """

    omega: Tensor

    def __init__(
        self,
        *,
        head_dim: int,
        rotate_fraction: float = 0.5,
        t_min: float = 1e-3,
        t_max: float = 4.0,
        spacing: str = "half_open",
        periods: Sequence[float] | None = None,
    ):
        super().__init__()
        rotate_dim = int(head_dim * rotate_fraction)
        if not 0 <= rotate_dim <= head_dim or rotate_dim % 2 or rotate_dim != head_dim * rotate_fraction:
            raise ValueError(
                f"head_dim * rotate_fraction = {head_dim} * {rotate_fraction} must be an even number "
                f"of dimensions in [0, head_dim]"
            )
        self.head_dim = head_dim
        self.rotate_dim = rotate_dim
        if periods is None:
            periods = rotary_periods(rotate_dim=rotate_dim, t_min=t_min, t_max=t_max, spacing=spacing)
        elif len(periods) != rotate_dim // 2 or not all(p > 0 for p in periods):
            raise ValueError(f"periods must be {rotate_dim // 2} positive numbers, got {list(periods)}")
        self.periods = [float(p) for p in periods]
        omega = torch.tensor([2 * math.pi / p for p in self.periods], dtype=torch.float64)
        self.register_buffer("omega", omega, persistent=False)  # float64, derived from the config

    def forward(self, timestamps: Tensor) -> Rotation:
        """timestamps (..., tokens) -> phases (..., tokens, head_dim / 2, 2) in the timestamps' dtype."""
        angles = timestamps.unsqueeze(-1) * self.omega.to(timestamps.dtype)
        rest = angles.new_zeros((*angles.shape[:-1], (self.head_dim - self.rotate_dim) // 2))
        angles = torch.cat((angles, rest), dim=-1)  # unrotated pairs: angle 0, phase exactly (1, 0)
        return Rotation(torch.stack((angles.cos(), angles.sin()), dim=-1))
