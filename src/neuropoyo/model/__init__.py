"""The POYO network: rotary time embeddings, rotary attention, the latent grid, the model, its config."""

from neuropoyo.model.attention import (
    CrossAttentionBlock,
    FeedForward,
    RotaryCrossAttention,
    RotarySelfAttention,
    SelfAttentionBlock,
    rotary_attention,
)
from neuropoyo.model.config import POYOConfig
from neuropoyo.model.info import (
    format_model_info,
    forward_flops,
    model_info,
    train_step_flops,
)
from neuropoyo.model.latents import latent_grid
from neuropoyo.model.poyo import POYO
from neuropoyo.model.rotary import RotaryTimeEmbedding, Rotation, rotary_periods, rotate

__all__ = [
    "POYO",
    "CrossAttentionBlock",
    "FeedForward",
    "POYOConfig",
    "RotaryCrossAttention",
    "RotarySelfAttention",
    "RotaryTimeEmbedding",
    "Rotation",
    "SelfAttentionBlock",
    "format_model_info",
    "forward_flops",
    "latent_grid",
    "model_info",
    "rotary_attention",
    "rotary_periods",
    "rotate",
    "train_step_flops",
]
