"""Parameter counts and matmul FLOPs of a POYO configuration (``neuropoyo model-info``)."""

from __future__ import annotations

import torch

from neuropoyo.model.config import POYOConfig
from neuropoyo.model.poyo import POYO

TRAIN_FLOPS_PER_FORWARD = 3  # forward + backward (grads w.r.t. activations and weights) ~ 3x forward


def forward_flops(config: POYOConfig, *, num_input_tokens: int, num_outputs: int) -> int:
    """Matmul FLOPs (2 per multiply-add) of one window's forward pass.

    Counts the linear layers and the two attention matmuls (QK^T, AV); norms, softmax, rotations,
    GELUs and embedding lookups are elementwise and left out. M = num_input_tokens (padding included),
    N = latents, P = num_outputs. This is the nominal count, with the encoder's key/value projection
    applied per input token: :meth:`POYO.encode` applies it once per distinct (unit, token type)
    pair instead, so it executes fewer when units spike more than once.
    """
    c = config
    d, m, n, p = c.dim, num_input_tokens, c.num_latents, num_outputs
    cross, self_inner = c.cross_heads * c.head_dim, c.num_heads * c.head_dim
    hidden = c.ffn_mult * d

    def linear(tokens: int, fan_in: int, fan_out: int) -> int:
        return 2 * tokens * fan_in * fan_out

    def feedforward(tokens: int) -> int:
        first = 2 * hidden if c.ffn == "geglu" else hidden
        return linear(tokens, d, first) + linear(tokens, hidden, d)

    def attention(queries: int, keys: int, inner: int) -> int:
        return 2 * 2 * queries * keys * inner

    def cross_block(queries: int, keys: int) -> int:
        projections = linear(queries, d, cross) + linear(keys, d, 2 * cross) + linear(queries, cross, d)
        return projections + attention(queries, keys, cross) + feedforward(queries)

    self_block = linear(n, d, 3 * self_inner) + attention(n, n, self_inner) + linear(n, self_inner, d)
    self_block += feedforward(n)
    readout = linear(p, d, sum(c.readouts.values()))
    return cross_block(n, m) + c.depth * self_block + cross_block(p, n) + readout


def train_step_flops(config: POYOConfig, *, num_input_tokens: int, num_outputs: int, batch_size: int) -> int:
    """Matmul FLOPs of one training step: 3 x forward (backward ~ 2 x forward) x batch_size.

    num_input_tokens and num_outputs are the (padded) M and P of each window.
    """
    forward = forward_flops(config, num_input_tokens=num_input_tokens, num_outputs=num_outputs)
    return TRAIN_FLOPS_PER_FORWARD * batch_size * forward


def model_info(config: POYOConfig, window_tokens: int, num_outputs: int, batch_size: int) -> dict:
    """Parameter counts per group, forward FLOPs per window and training FLOPs per step.

    window_tokens: input tokens per window (spikes + 2 delimiters per unit); num_outputs: queries per window.
    """
    with torch.device("meta"):  # shapes only, no memory
        groups = POYO(config).parameter_groups()
    embeddings = groups["unit_embedding"] + groups["session_embedding"] + groups["other_embeddings"]
    forward = forward_flops(config, num_input_tokens=window_tokens, num_outputs=num_outputs)
    return {
        "unit_embedding_params": groups["unit_embedding"],
        "session_embedding_params": groups["session_embedding"],
        "other_embedding_params": groups["other_embeddings"],
        "embedding_params": embeddings,
        "transformer_params": groups["transformer"],
        "readout_params": groups["readout"],
        "total_params": embeddings + groups["transformer"] + groups["readout"],
        "num_latents": config.num_latents,
        "paper_depth_L": config.depth + 2,
        "window_tokens": window_tokens,
        "num_outputs": num_outputs,
        "batch_size": batch_size,
        "forward_flops_per_window": forward,
        "train_flops_per_step": train_step_flops(
            config, num_input_tokens=window_tokens, num_outputs=num_outputs, batch_size=batch_size
        ),
    }


def format_model_info(info: dict) -> str:
    """model_info as aligned 'key  value' lines (thousands separated)."""
    width = max(map(len, info))
    return "\n".join(f"{key:<{width}}  {value:,}" for key, value in info.items())
