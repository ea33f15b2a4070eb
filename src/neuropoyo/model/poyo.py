"""POYO (Azabou et al., NeurIPS 2023): spike tokens -> latents -> behavior queries.

    spike/value/delimiter tokens --rotary cross-attn--> latent grid --self-attn x depth--> latents
    session(+task) queries at output times --rotary cross-attn (no value rotation)--> readout heads

Every token carries a timestamp that only enters through the rotary attention, so outputs depend
on time differences alone: shifting all input, latent and output times by one offset changes nothing.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from neuropoyo.model.attention import (
    CrossAttentionBlock,
    FeedForward,
    RotaryCrossAttention,
    RotarySelfAttention,
    SelfAttentionBlock,
)
from neuropoyo.model.config import POYOConfig
from neuropoyo.model.latents import latent_grid
from neuropoyo.model.rotary import RotaryTimeEmbedding, Rotation
from neuropoyo.schema import SPIKE, TOKEN_TYPES, VALUE

ENCODER_GROUP = 8  # windows per encoder group; each group pads only to its own longest window


class POYO(nn.Module):
    """The POYO network, built from a POYOConfig.

    The latent grid is the model's own (non-persistent buffers derived from the config): batches
    carry only spike tokens and output queries.
    """

    latent_index: Tensor
    latent_timestamps: Tensor

    def __init__(self, config: POYOConfig):
        super().__init__()
        self.config = c = config
        self.unit_emb = nn.Embedding(c.num_units, c.dim)
        self.session_emb = nn.Embedding(c.num_sessions, c.dim)
        # rows [x_start, x_end] (paper) or [spike, start, end] (token_type_embedding)
        self.token_type_emb = nn.Embedding(3 if c.token_type_embedding else 2, c.dim)
        self.latent_emb = nn.Embedding(c.latents_per_timestamp, c.dim)
        self.task_emb = nn.Embedding(len(c.readouts), c.dim) if c.task_embedding else None
        # a value token (POYO+): UnitEmbed(u) + W value + b; the bias marks the token as a value
        self.value_emb = nn.Linear(1, c.dim) if c.value_inputs else None
        self.rotary = RotaryTimeEmbedding(
            head_dim=c.head_dim,
            rotate_fraction=c.rotate_fraction,
            t_min=c.t_min,
            t_max=c.t_max,
            spacing=c.rotary_spacing,
            periods=c.rotary_periods_s or None,
        )
        self.encoder = self._cross_block(rotate_value=c.rotate_value_encoder)
        self.processor = nn.ModuleList(
            SelfAttentionBlock(
                attention=RotarySelfAttention(
                    dim=c.dim,
                    heads=c.num_heads,
                    head_dim=c.head_dim,
                    dropout=c.attention_dropout,
                    rotate_value=c.rotate_value_self,
                    qkv_bias=c.qkv_bias,
                ),
                feedforward=self._feedforward(),
                dropout=c.linear_dropout,
            )
            for _ in range(c.depth)
        )
        self.decoder = self._cross_block(rotate_value=c.rotate_value_decoder)
        self.readouts = nn.ModuleDict({name: nn.Linear(c.dim, out) for name, out in c.readouts.items()})
        latent_index, latent_timestamps = self.latent_grid()
        self.register_buffer("latent_index", latent_index, persistent=False)  # (N,), from the config
        self.register_buffer("latent_timestamps", latent_timestamps, persistent=False)  # (N,) s
        self.apply(self._init_weights)

    def _feedforward(self) -> FeedForward:
        c = self.config
        return FeedForward(dim=c.dim, mult=c.ffn_mult, kind=c.ffn, dropout=c.ffn_dropout)

    def _cross_block(self, *, rotate_value: bool) -> CrossAttentionBlock:
        c = self.config
        attention = RotaryCrossAttention(
            dim=c.dim,
            heads=c.cross_heads,
            head_dim=c.head_dim,
            dropout=c.attention_dropout,
            rotate_value=rotate_value,
            qkv_bias=c.qkv_bias,
        )
        return CrossAttentionBlock(attention=attention, feedforward=self._feedforward())

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.config.init_std)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    @property
    def readout_names(self) -> tuple[str, ...]:
        return self.config.readout_names

    def embed_inputs(self, unit_index: Tensor, token_type: Tensor, values: Tensor | None = None) -> Tensor:
        """(B, M) unit and token-type indices (and values) -> (B, M, dim).

        Spike: UnitEmbed(u); START/END: UnitEmbed(u) + x_start / x_end. With token_type_embedding,
        every token adds the row of its type instead. Value: as a spike, plus ValueEmbed(value), a
        learned linear map of the token's value (models with ``value_inputs``).
        """
        if self.value_emb is not None and values is not None:
            is_value = (token_type == VALUE).unsqueeze(-1)
            x = self.embed_inputs(unit_index, token_type.masked_fill(is_value.squeeze(-1), SPIKE))
            return x + is_value * self.value_emb(values.unsqueeze(-1).to(x.dtype))
        x = self.unit_emb(unit_index)
        if self.config.token_type_embedding:
            return x + self.token_type_emb(token_type)
        # rows by token type: SPIKE -> 0, START -> x_start, END -> x_end (one gather, no branch); an
        # embedding lookup, not by_type[token_type]: that indexing's backward (index_put_ with
        # accumulate) sums the repeated rows in an order that varies with the CPU threads' timing
        delimiters = self.token_type_emb.weight
        by_type = torch.cat((delimiters.new_zeros(1, delimiters.shape[1]), delimiters))
        return x + F.embedding(token_type, by_type)

    def forward(
        self,
        *,
        input_unit_index: Tensor,
        input_timestamps: Tensor,
        input_token_type: Tensor,
        input_values: Tensor | None = None,
        input_mask: Tensor | None = None,
        output_session_index: Tensor,
        output_timestamps: Tensor,
        output_decoder_index: Tensor | None = None,
        output_mask: Tensor | None = None,
        latent_timestamps: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Decode a padded batch of B windows.

        input_*: (B, M) tokens; unit index (long), time (float, s), type (0 spike, 1 start, 2 end,
            3 value), value (float, the sample of a value token, else ignored; None = no value
            tokens), mask (bool, True = real token; None = all real).
        output_*: (B, P) session index (long), time, readout index into ``readout_names`` (long, needed
            with task_embedding) and mask (bool, True = real query; None = all real).
        latent_timestamps: (B, N) or (N,) times of the latent grid; None = the model's own grid over
            [0, context_length_s] (the ``latent_timestamps`` buffer), which windows starting at 0 use.
        Returns {readout name: (B, P, out_dim)}, computed at every query; padded queries hold 0.
        """
        self.check_batch(
            input_unit_index=input_unit_index, input_timestamps=input_timestamps,
            input_token_type=input_token_type, output_session_index=output_session_index,
            output_timestamps=output_timestamps, output_decoder_index=output_decoder_index,
        )
        if latent_timestamps is None:
            latent_timestamps = self.latent_timestamps
        latent_rotation = self.rotary(latent_timestamps)
        latents = self.encode(
            input_unit_index, input_timestamps, input_token_type, input_mask,
            latent_rotation=latent_rotation, values=input_values,
        )
        predictions = self.decode(
            self.process(latents, latent_rotation),
            self.output_queries(output_session_index, output_decoder_index),
            latent_rotation=latent_rotation,
            output_rotation=self.rotary(output_timestamps),
        )
        if output_mask is not None:
            padded = ~output_mask.unsqueeze(-1)
            predictions = {name: y.masked_fill(padded, 0.0) for name, y in predictions.items()}
        return predictions

    def check_batch(
        self,
        *,
        input_unit_index: Tensor,
        input_timestamps: Tensor,
        input_token_type: Tensor,
        output_session_index: Tensor,
        output_timestamps: Tensor,
        output_decoder_index: Tensor | None,
    ) -> None:
        """ValueError naming the field and the fix for shapes that disagree, indices outside the
        model's tables (on CUDA a device-side assert otherwise) or non-finite times. One host
        synchronisation on GPU."""
        if not input_unit_index.shape == input_timestamps.shape == input_token_type.shape:
            raise ValueError(
                f"POYO: input_unit_index {tuple(input_unit_index.shape)}, input_timestamps "
                f"{tuple(input_timestamps.shape)} and input_token_type {tuple(input_token_type.shape)} "
                "must have one shape (B, M)"
            )
        if output_session_index.shape != output_timestamps.shape:
            raise ValueError(
                f"POYO: output_session_index {tuple(output_session_index.shape)} and output_timestamps "
                f"{tuple(output_timestamps.shape)} must have one shape (B, P)"
            )
        ranges = {
            "input_unit_index": (input_unit_index, self.unit_emb.num_embeddings, "units"),
            "input_token_type": (input_token_type, self.num_token_types, self.token_types_named),
            "output_session_index": (output_session_index, self.session_emb.num_embeddings, "sessions"),
        }
        if output_decoder_index is not None:
            ranges["output_decoder_index"] = (output_decoder_index, len(self.readout_names), "readouts")
        flags = [((t < 0) | (t >= n)).any() for t, n, _ in ranges.values() if t.numel()]
        flags += [~torch.isfinite(t).all() for t in (input_timestamps, output_timestamps) if t.numel()]
        if not flags or not torch.stack(flags).any():
            return
        for name, (index, size, what) in ranges.items():
            if index.numel() and ((index < 0) | (index >= size)).any():
                raise ValueError(
                    f"POYO: {name} holds {int(index.min())}..{int(index.max())} but the model has {size} "
                    f"{what}; map ids to rows with the model's vocabularies (neuropoyo.tokens.vocab), or add "
                    "rows for new ones (unit identification, neuropoyo.training.finetune)"
                )
        for name, times in (("input_timestamps", input_timestamps), ("output_timestamps", output_timestamps)):
            if times.numel() and not torch.isfinite(times).all():
                raise ValueError(f"POYO: {name} holds NaN/inf; every token and query needs a finite time")

    @property
    def num_token_types(self) -> int:
        """Input token types this model reads: spike, start, end, and value with ``value_inputs``."""
        return len(TOKEN_TYPES) + (self.value_emb is not None)

    @property
    def token_types_named(self) -> str:
        if self.value_emb is None:
            return (
                "token types (0 spike, 1 start, 2 end); value tokens (3: calcium traces, binned counts) "
                "need a model built with value_inputs: true"
            )
        return "token types (0 spike, 1 start, 2 end, 3 value)"

    def output_queries(self, session_index: Tensor, decoder_index: Tensor | None) -> Tensor:
        """(B, P) session (and readout) indices -> (B, P, dim) query embeddings."""
        queries = self.session_emb(session_index)
        if self.task_emb is None:
            return queries
        if decoder_index is None:
            raise ValueError("output_decoder_index is required when task_embedding is enabled")
        return queries + self.task_emb(decoder_index)

    def process(self, latents: Tensor, latent_rotation: Rotation) -> Tensor:
        """The self-attention stack: (B, N, dim) latents -> (B, N, dim)."""
        for block in self.processor:
            latents = block(latents, rotation=latent_rotation)
        return latents

    def decode(
        self, latents: Tensor, queries: Tensor, *, latent_rotation: Rotation, output_rotation: Rotation
    ) -> dict[str, Tensor]:
        """(B, P, dim) queries cross-attend to (B, N, dim) latents -> {readout name: (B, P, out_dim)}."""
        outputs = self.decoder(
            queries,
            self.decoder.attention.project_context(latents),
            x_rotation=output_rotation,
            context_rotation=latent_rotation,
        )
        return {name: head(outputs) for name, head in self.readouts.items()}

    def encode(
        self,
        unit_index: Tensor,
        timestamps: Tensor,
        token_type: Tensor,
        mask: Tensor | None,
        *,
        latent_rotation: Rotation,
        values: Tensor | None = None,
    ) -> Tensor:
        """Encoder: (B, M) input tokens (values: (B, M) or None) -> (B, N, dim) latents.

        Two exact shortcuts. Keys and values of spike and delimiter tokens depend on a token only
        through its (unit, type) pair before rotation, so LayerNorm and the key/value projection run
        once per distinct pair in the batch and are gathered per token (a batch holding value tokens
        projects every token instead). Windows are grouped by token count (ENCODER_GROUP per group)
        and each group is cut to its own longest window, so short windows do not attend over the
        padding of long ones; a group without padding runs unmasked.
        latent_rotation: phases over (N, head_dim / 2, 2) or (B, N, head_dim / 2, 2).
        """
        batch = unit_index.shape[0]
        if self.value_emb is not None and bool((token_type == VALUE).any()):
            if values is None:
                raise ValueError("POYO: value tokens (type 3) need input_values, the sample each one carries")
            # per token: (B, M) rows into the flattened (B * M, dim) keys and values
            key_table, value_table = self.encoder.attention.project_context(
                self.embed_inputs(unit_index, token_type, values).flatten(0, 1)
            )
            token_row = torch.arange(unit_index.numel(), device=unit_index.device).view_as(unit_index)
        else:
            pair = unit_index * len(TOKEN_TYPES) + token_type
            distinct, token_row = torch.unique(pair, return_inverse=True)
            key_table, value_table = self.encoder.attention.project_context(
                self.embed_inputs(distinct // len(TOKEN_TYPES), distinct % len(TOKEN_TYPES))
            )
        latents = self.latent_emb(self.latent_index).expand(batch, -1, -1)
        lengths = None if mask is None else mask.sum(dim=1)
        if lengths is None or batch <= ENCODER_GROUP:
            groups = [torch.arange(batch, device=unit_index.device)]
        else:
            groups = lengths.argsort().split(ENCODER_GROUP)
        encoded = []
        for rows in groups:
            n = unit_index.shape[1] if lengths is None else int(lengths[rows].max())
            group_mask = None if mask is None else mask[rows, :n]
            if group_mask is not None and bool(group_mask.all()):
                group_mask = None
            group_latent_rotation = latent_rotation
            if latent_rotation.phase.dim() == 4:
                group_latent_rotation = Rotation(latent_rotation.phase[rows])
            tokens = token_row[rows, :n]
            encoded.append(
                self.encoder(
                    latents[rows],
                    (F.embedding(tokens, key_table), F.embedding(tokens, value_table)),
                    x_rotation=group_latent_rotation,
                    context_rotation=self.rotary(timestamps[rows, :n]),
                    context_mask=group_mask,
                )
            )
        if len(encoded) == 1:
            return encoded[0]
        order = torch.cat(groups)
        return torch.cat(encoded).index_select(0, order.argsort())

    def latent_grid(self, window_length: float | None = None) -> tuple[Tensor, Tensor]:
        """latent_index (N,), latent_timestamps (N,) for a window (default: context_length_s)."""
        c = self.config
        return latent_grid(
            num_latent_timestamps=c.num_latent_timestamps,
            latents_per_timestamp=c.latents_per_timestamp,
            context_length_s=c.context_length_s if window_length is None else window_length,
            timing=c.latent_timing,
        )

    def add_readout(self, name: str, dim: int, classes: list[str] | None = None) -> None:
        """A new readout head ``name`` of ``dim`` outputs (transfer to a stream the model has no
        head for), initialised like the others; existing heads are unchanged. Readouts stay in
        sorted-name order, so decoder indices of later names shift: refused with task embeddings,
        whose rows are indexed by them. classes: the class names of a classification readout."""
        if name in self.readouts:
            raise ValueError(f"the model already has a readout {name!r}")
        if self.task_emb is not None:
            raise ValueError(f"cannot add readout {name!r} to a model with task embeddings")
        config = dataclasses.replace(
            self.config,
            readouts={**self.config.readouts, name: dim},
            classes={**self.config.classes, **({name: list(classes)} if classes else {})},
        )
        head = nn.Linear(self.config.dim, dim).to(self.session_emb.weight)
        self._init_weights(head)
        self.readouts[name] = head
        self.readouts = nn.ModuleDict({n: self.readouts[n] for n in config.readout_names})
        self.config = config

    def grow_units(self, n_new: int) -> range:
        """Append n_new randomly initialised unit rows (unit identification); returns their indices."""
        rows = _grow_embedding(self.unit_emb, n_new, std=self.config.init_std)
        self.config = dataclasses.replace(self.config, num_units=self.unit_emb.num_embeddings)
        return rows

    def grow_sessions(self, n_new: int) -> range:
        """Append n_new randomly initialised session rows; returns their indices."""
        rows = _grow_embedding(self.session_emb, n_new, std=self.config.init_std)
        self.config = dataclasses.replace(self.config, num_sessions=self.session_emb.num_embeddings)
        return rows

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def parameter_groups(self) -> dict[str, int]:
        """Parameter counts: unit, session, other embeddings; transformer (encoder to decoder); readout."""
        groups = {
            "unit_embedding": ("unit_emb",),
            "session_embedding": ("session_emb",),
            "other_embeddings": ("token_type_emb", "latent_emb", "task_emb", "value_emb"),
            "transformer": ("encoder", "processor", "decoder"),
            "readout": ("readouts",),
        }
        counts = dict.fromkeys(groups, 0)
        for name, p in self.named_parameters():
            top = name.split(".")[0]
            counts[next(g for g, tops in groups.items() if top in tops)] += p.numel()
        return counts


def with_parameters_in(model: POYO, dtype: torch.dtype | None) -> POYO:
    """``model`` itself, or a copy whose parameters are ``dtype``; buffers (the rotary frequencies,
    the latent grid) keep their precision either way."""
    if dtype is None or dtype == model.unit_emb.weight.dtype:
        return model
    converted = copy.deepcopy(model)
    for parameter in converted.parameters():
        parameter.data = parameter.data.to(dtype)
    return converted


def _grow_embedding(embedding: nn.Embedding, n_new: int, *, std: float) -> range:
    """Append n_new N(0, std) rows to an embedding table; existing rows stay bit-identical.

    The weight becomes a new Parameter: build optimizers after growing.
    """
    if n_new < 0:
        raise ValueError(f"cannot grow a vocabulary by {n_new} rows")
    old = embedding.weight
    new_rows = torch.empty(n_new, old.shape[1], dtype=old.dtype, device=old.device).normal_(std=std)
    embedding.weight = nn.Parameter(torch.cat([old.detach(), new_rows]), requires_grad=old.requires_grad)
    embedding.num_embeddings = old.shape[0] + n_new
    return range(old.shape[0], old.shape[0] + n_new)
