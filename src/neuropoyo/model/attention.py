"""Rotary attention (paper sec 2.2-2.4, A.1), feed-forward nets and pre-norm residual blocks."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from neuropoyo.model.rotary import Rotation, rotate


def rotary_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    q_rotation: Rotation,
    k_rotation: Rotation,
    key_mask: Tensor | None = None,
    dropout_p: float = 0.0,
    rotate_value: bool = False,
) -> Tensor:
    """a_jk = softmax_k(R(t_j) q_j . R(t_k) k_k / sqrt(d)); returns sum_k a_jk v_k per query j.

    With rotate_value, returns R(-t_j) sum_k a_jk R(t_k) v_k = sum_k a_jk R(t_k - t_j) v_k.
    q: (B, H, Nq, Dh); k, v: (B, H, Nk, Dh); rotations over (B, Nq, .) and (B, Nk, .);
    key_mask: (B, Nk) bool, True for real keys. Returns (B, H, Nq, Dh).
    """
    q = rotate(q, q_rotation)
    k = rotate(k, k_rotation)
    if rotate_value:
        v = rotate(v, k_rotation)
    mask = None if key_mask is None else key_mask[:, None, None, :]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    if rotate_value:
        out = rotate(out, q_rotation.inverse())
    return out


def _split_heads(x: Tensor, heads: int) -> Tensor:
    """(B, N, H * Dh) -> (B, H, N, Dh)."""
    return x.unflatten(-1, (heads, -1)).transpose(1, 2)


def _merge_heads(x: Tensor) -> Tensor:
    """(B, H, N, Dh) -> (B, N, H * Dh)."""
    return x.transpose(1, 2).flatten(2)


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

    def forward(
        self,
        x: Tensor,
        context: Tensor,
        *,
        x_rotation: Rotation,
        context_rotation: Rotation,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        """context_mask: (B, Nk) bool, True for real tokens. Returns (B, Nq, dim)."""
        q = self.to_q(self.norm(x))
        k, v = self.to_kv(self.norm_context(context)).chunk(2, dim=-1)
        out = rotary_attention(
            _split_heads(q, self.heads),
            _split_heads(k, self.heads),
            _split_heads(v, self.heads),
            q_rotation=x_rotation,
            k_rotation=context_rotation,
            key_mask=context_mask,
            dropout_p=self.dropout if self.training else 0.0,
            rotate_value=self.rotate_value,
        )
        return self.to_out(_merge_heads(out))


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
        q, k, v = (_split_heads(t, self.heads) for t in self.to_qkv(self.norm(x)).chunk(3, dim=-1))
        out = rotary_attention(
            q,
            k,
            v,
            q_rotation=rotation,
            k_rotation=rotation,
            dropout_p=self.dropout if self.training else 0.0,
            rotate_value=self.rotate_value,
        )
        return self.to_out(_merge_heads(out))


class GEGLU(nn.Module):
    """(..., 2h) -> (..., h): x * gelu(gate) (Shazeer 2020)."""

    def forward(self, x: Tensor) -> Tensor:
        x, gate = x.chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    """Pre-norm MLP dim -> mult * dim -> dim with GELU or GEGLU; dropout on the hidden layer."""

    def __init__(self, *, dim: int, mult: int = 4, kind: str = "gelu", dropout: float = 0.0):
        super().__init__()
        if kind not in ("gelu", "geglu"):
            raise ValueError(f"feed-forward kind must be 'gelu' or 'geglu', got {kind!r}")
        hidden = mult * dim
        gated = kind == "geglu"
        self.net = nn.Sequential(
            nn.LayerNorm(dim),
            nn.Linear(dim, 2 * hidden if gated else hidden),
            GEGLU() if gated else nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


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
        context: Tensor,
        *,
        x_rotation: Rotation,
        context_rotation: Rotation,
        context_mask: Tensor | None = None,
    ) -> Tensor:
        attended = self.attention(
            x, context, x_rotation=x_rotation, context_rotation=context_rotation, context_mask=context_mask
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
