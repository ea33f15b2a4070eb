"""Rotary attention (paper sec 2.2-2.4, A.1), feed-forward nets and pre-norm residual blocks."""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neuropoyo.model.rotary import Rotation, rotate


def rotary_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    q_rotation: Rotation,
    k_rotation: Rotation | None,
    key_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    rotate_value: bool = False,
) -> Tensor:
    """a_jk = softmax_k(R(t_j) q_j . R(t_k) k_k / sqrt(d)); returns sum_k a_jk v_k per query j.

    With rotate_value, returns R(-t_j) sum_k a_jk R(t_k) v_k = sum_k a_jk R(t_k - t_j) v_k.
    k_rotation None: k (and v, with rotate_value) arrive already rotated, e.g. from a cache.
    Token-major layout (the projections' own, so no head transpose is copied): q (B, Nq, H, Dh);
    k, v (B, Nk, H, Dh); rotation tables over (B, Nq, Dh / 2, 2) and (B, Nk, Dh / 2, 2) (or broadcastable);
    key_mask: (B, Nk) bool, True for real keys. Returns (B, Nq, H, Dh), in float32 for half-precision
    inputs on CPU with grad enabled (the attention itself runs in float32 there), else in the
    inputs' dtype.
    """
    # CPU half-precision attention backward is several times slower than float32: upcast when a
    # backward may follow, and keep autocast from casting back down
    upcast = q.device.type == "cpu" and q.dtype in (torch.bfloat16, torch.float16) and torch.is_grad_enabled()
    dtype = torch.float32 if upcast else q.dtype
    q = rotate(q, q_rotation, head_axis=-2, dtype=dtype)
    if k_rotation is not None:
        k = rotate(k, k_rotation, head_axis=-2, dtype=dtype)
    if k_rotation is not None and rotate_value:
        v = rotate(v, k_rotation, head_axis=-2, dtype=dtype)
    k, v = k.to(dtype), v.to(dtype)
    mask = None if key_mask is None else key_mask[:, None, None, :]
    with torch.autocast("cpu", enabled=False) if upcast else contextlib.nullcontext():
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask, dropout_p=dropout_p
        ).transpose(1, 2)
    if rotate_value:
        out = rotate(out, q_rotation.inverse(), head_axis=-2)
    return out


def linear_parts(x: Tensor, layer: nn.Linear, parts: int) -> tuple[Tensor, ...]:
    """``layer(x).chunk(parts, dim=-1)``, as one matmul per slice of the weight.

    Equal to chunking the output, but the backward pass then sums ``parts`` small input gradients
    instead of concatenating the large output gradients into one buffer. Without grad (inference)
    it is one matmul, chunked: fewer, larger kernels.
    """
    if not torch.is_grad_enabled():
        return layer(x).chunk(parts, dim=-1)
    biases = (None,) * parts if layer.bias is None else layer.bias.chunk(parts)
    return tuple(F.linear(x, w, b) for w, b in zip(layer.weight.chunk(parts), biases))


class RotaryCrossAttention(nn.Module):
    """Pre-norm multi-head cross-attention of queries x (B, Nq, dim) on context (B, Nk, context_dim)."""

    def __init__(
        self,
        *,
        dim: int,
        heads: int,
        head_dim: int,
        context_dim: int | None = None,
        dropout: float = 0.0,
        rotate_value: bool = False,
        qkv_bias: bool = False,
    ):
        super().__init__()
        context_dim = context_dim or dim
        inner = heads * head_dim
        self.heads = heads
        self.dropout = dropout
        self.rotate_value = rotate_value
        self.norm = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(context_dim)
        self.to_q = nn.Linear(dim, inner, bias=qkv_bias)
        self.to_kv = nn.Linear(context_dim, 2 * inner, bias=qkv_bias)
        self.to_out = nn.Linear(inner, dim)

    def project_context(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """(..., context_dim) -> keys, values, each (..., heads * head_dim), before rotation.

        Row-wise (LayerNorm, then a linear map), so it can run on a table of distinct context rows
        and be gathered per token.
        """
        return linear_parts(self.norm_context(context), self.to_kv, 2)

    def rotate_context(self, context_kv: tuple[Tensor, Tensor], rotation: Rotation) -> tuple[Tensor, Tensor]:
        """Keys, values (..., Nk, heads * head_dim) -> the same rotated by R(t_k) (values only with
        rotate_value), as :meth:`forward` would; pass the result with ``context_rotation=None``.
        rotation: phases over (..., Nk, head_dim / 2, 2)."""
        keys, values = (part.unflatten(-1, (self.heads, -1)) for part in context_kv)
        keys = rotate(keys, rotation, head_axis=-2)
        if self.rotate_value:
            values = rotate(values, rotation, head_axis=-2)
        return keys.flatten(-2), values.flatten(-2)

    def forward(
        self,
        x: Tensor,
        context_kv: tuple[Tensor, Tensor],
        *,
        x_rotation: Rotation,
        context_rotation: Rotation | None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        """x (B, Nq, dim); context_kv: keys, values (B, Nk, heads * head_dim) from
        :meth:`project_context` (or :meth:`rotate_context`, with context_rotation None); context_mask: (B, Nk) bool, True for real tokens. Returns (B, Nq, dim)."""
        q = self.to_q(self.norm(x)).unflatten(-1, (self.heads, -1))
        k, v = (part.unflatten(-1, (self.heads, -1)) for part in context_kv)
        out = rotary_attention(
            q,
            k,
            v,
            q_rotation=x_rotation,
            k_rotation=context_rotation,
            key_mask=context_mask,
            dropout_p=self.dropout if self.training else 0.0,
            rotate_value=self.rotate_value,
        )
        return self.to_out(out.flatten(2))


class RotarySelfAttention(nn.Module):
    """Pre-norm multi-head self-attention of x (B, N, dim)."""

    def __init__(
        self,
        *,
        dim: int,
        heads: int,
        head_dim: int,
        dropout: float = 0.0,
        rotate_value: bool = False,
        qkv_bias: bool = False,
    ):
        super().__init__()
        inner = heads * head_dim
        self.heads = heads
        self.dropout = dropout
        self.rotate_value = rotate_value
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, 3 * inner, bias=qkv_bias)
        self.to_out = nn.Linear(inner, dim)

    def forward(self, x: Tensor, *, rotation: Rotation) -> Tensor:
        """Returns (B, N, dim)."""
        q, k, v = (part.unflatten(-1, (self.heads, -1)) for part in linear_parts(self.norm(x), self.to_qkv, 3))
        out = rotary_attention(
            q,
            k,
            v,
            q_rotation=rotation,
            k_rotation=rotation,
            dropout_p=self.dropout if self.training else 0.0,
            rotate_value=self.rotate_value,
        )
        return self.to_out(out.flatten(2))


class GEGLU(nn.Module):
    """(x, gate) -> x * gelu(gate) (Shazeer 2020)."""

    def forward(self, x: Tensor, gate: Tensor) -> Tensor:
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    """Pre-norm MLP dim -> mult * dim -> dim with GELU or GEGLU; dropout on the hidden layer.

    ``net`` holds [LayerNorm, Linear(dim, hidden or 2 hidden), activation, Dropout, Linear(hidden,
    dim)]; GEGLU's [x; gate] projection runs as two matmuls (:func:`linear_parts`).
    """

    def __init__(self, *, dim: int, mult: int = 4, kind: str = "gelu", dropout: float = 0.0):
        super().__init__()
        if kind not in ("gelu", "geglu"):
            raise ValueError(f"feed-forward kind must be 'gelu' or 'geglu', got {kind!r}")
        hidden = mult * dim
        self.gated = kind == "geglu"
        self.net = nn.ModuleList(
            [
                nn.LayerNorm(dim),
                nn.Linear(dim, 2 * hidden if self.gated else hidden),
                GEGLU() if self.gated else nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(hidden, dim),
            ]
        )

    def forward(self, x: Tensor) -> Tensor:
        norm, project, activation, dropout, out = self.net
        x = norm(x)
        hidden = activation(*linear_parts(x, project, 2)) if self.gated else activation(project(x))
        return out(dropout(hidden))


class CrossAttentionBlock(nn.Module):
    """x <- x + drop(attn(x, context)); x <- x + drop(ffn(x))."""

    def __init__(self, *, attention: RotaryCrossAttention, feedforward: FeedForward, dropout: float = 0.0):
        super().__init__()
        self.attention = attention
        self.feedforward = feedforward
        self.dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: Tensor,
        context_kv: tuple[Tensor, Tensor],
        *,
        x_rotation: Rotation,
        context_rotation: Rotation | None,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        """context_kv: the context through ``attention.project_context``."""
        attended = self.attention(
            x, context_kv, x_rotation=x_rotation, context_rotation=context_rotation, context_mask=context_mask
        )
        x = x + self.dropout(attended)
        return x + self.dropout(self.feedforward(x))


class SelfAttentionBlock(nn.Module):
    """x <- x + drop(attn(x)); x <- x + drop(ffn(x))."""

    def __init__(self, *, attention: RotarySelfAttention, feedforward: FeedForward, dropout: float = 0.0):
        super().__init__()
        self.attention = attention
        self.feedforward = feedforward
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, *, rotation: Rotation) -> Tensor:
        x = x + self.dropout(self.attention(x, rotation=rotation))
        return x + self.dropout(self.feedforward(x))
