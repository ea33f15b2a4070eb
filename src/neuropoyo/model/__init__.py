"""The POYO network: rotary time embeddings, rotary attention, the model and its config."""

from neuropoyo.model.attention import (
    CrossAttentionBlock,
    FeedForward,
    RotaryCrossAttention,
    RotarySelfAttention,
    SelfAttentionBlock,
    rotary_attention,
)
from neuropoyo.model.config import POYOConfig
from neuropoyo.model.poyo import (
    END,
    POYO,
    SPIKE,
    START,
    format_model_info,
    forward_flops,
    model_info,
)
from neuropoyo.model.rotary import Rotation, RotaryTimeEmbedding, rotary_periods, rotate

__all__ = [
    "END",
    "POYO",
    "SPIKE",
    "START",
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
    "model_info",
    "rotary_attention",
    "rotary_periods",
    "rotate",
]
