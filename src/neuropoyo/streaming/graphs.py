"""The model's inference paths as modules with plain tensor inputs, batch 1: what ONNX export
traces (:mod:`.export`) and what an inference runtime runs for the decoder (:mod:`.runtimes`).

    OfflineWindow   one tokenized window -> every readout at its queries (the model's forward)
    SpikeKeys       spikes (unit rows, times) -> their rotated encoder keys and values
    StreamUpdate    the cached keys/values of a window's spikes + its end time -> the estimate
    RecordingUpdate the same for one recording's units, with rotation phases as inputs (what a
                    runtime runs for the decoder)
    LatentStack     the fixed-shape end of an update: encoded latents + query -> the estimate

Times enter as float64 seconds and rotation angles are computed in float64, as in
:class:`~neuropoyo.streaming.StreamingDecoder`: exact for streams hours long, whatever the origin.
Outputs are z-scored (the model's own units); ``inner`` below is ``cross_heads * head_dim``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from neuropoyo.model.poyo import POYO
from neuropoyo.model.rotary import Rotation
from neuropoyo.schema import END, SPIKE, START


class OfflineWindow(nn.Module):
    """The model's forward on one window (no padding): a tuple of (P, D_r) outputs, one per readout
    in ``model.readout_names`` order.

    Each token's key and value are projected from its own (unit, type) row, not from a table of the
    distinct pairs as :meth:`POYO.encode` does: the same rows, without the data-dependent shapes
    (``torch.unique``) an exported graph cannot hold.
    """

    def __init__(self, model: POYO):
        super().__init__()
        self.model = model

    def forward(
        self,
        input_unit_index: Tensor,
        input_timestamps: Tensor,
        input_token_type: Tensor,
        output_session_index: Tensor,
        output_timestamps: Tensor,
        output_decoder_index: Tensor,
    ) -> tuple[Tensor, ...]:
        """input_*: (M,) unit rows, times (float64, s from the window start), token types;
        output_*: (P,) session rows, times (float64, s from the window start), readout indices."""
        model = self.model
        latent_rotation = model.rotary(model.latent_timestamps)
        keys, values = model.encoder.attention.project_context(model.embed_inputs(input_unit_index, input_token_type))
        latents = model.encoder(
            model.latent_emb(model.latent_index)[None],
            (keys[None], values[None]),
            x_rotation=latent_rotation,
            context_rotation=model.rotary(input_timestamps[None]),
        )
        outputs = model.decode(
            model.process(latents, latent_rotation),
            model.output_queries(output_session_index[None], output_decoder_index[None]),
            latent_rotation=latent_rotation,
            output_rotation=model.rotary(output_timestamps[None]),
        )
        return tuple(outputs[name][0] for name in model.readout_names)


class SpikeKeys(nn.Module):
    """unit_index (S,) model rows, time_s (S,) float64 -> keys, values (S, inner): the spikes'
    encoder keys and values rotated to their times (values only with ``rotate_value_encoder``)."""

    def __init__(self, model: POYO):
        super().__init__()
        self.model = model

    def forward(self, unit_index: Tensor, time_s: Tensor) -> tuple[Tensor, Tensor]:
        attention = self.model.encoder.attention
        kv = attention.project_context(self.model.embed_inputs(unit_index, torch.full_like(unit_index, SPIKE)))
        return attention.rotate_context(kv, self.model.rotary(time_s))


class LatentStack(nn.Module):
    """The fixed-shape end of a streaming update, ``model.process`` then ``model.decode``: latents
    (1, N, dim) out of the encoder and the output query (1, 1, dim) -> the readout's estimate (D,).

    The latents' rotation is fixed relative to the window, the query sits at its end: both are
    computed once, here.
    """

    window_phase: Tensor
    query_phase: Tensor

    def __init__(self, model: POYO, readout: str):
        super().__init__()
        self.model, self.readout = model, readout
        end = torch.tensor([[model.config.context_length_s]], dtype=torch.float64, device=model.latent_timestamps.device)
        with torch.no_grad():
            self.register_buffer("window_phase", model.rotary(model.latent_timestamps).phase, persistent=False)
            self.register_buffer("query_phase", model.rotary(end).phase, persistent=False)

    def forward(self, latents: Tensor, query: Tensor) -> Tensor:
        window = Rotation(self.window_phase)
        outputs = self.model.decode(
            self.model.process(latents, window), query, latent_rotation=window, output_rotation=Rotation(self.query_phase)
        )
        return outputs[self.readout][0, 0]


class StreamUpdate(nn.Module):
    """One update of the streaming decoder: the estimate at ``now`` from the window [now - T, now).

    spike_keys, spike_values: (S, inner) :class:`SpikeKeys` of the spikes in the window, any order;
    unit_index: (U,) the model rows of every unit of the recording (a START and an END delimiter
    each); session_index: (1,) the recording's session row; now_s: (1,) float64, on the spikes'
    clock. Returns (D,) the readout's estimate.
    """

    latent_offsets: Tensor
    decoder_index: Tensor

    def __init__(self, model: POYO, readout: str):
        super().__init__()
        self.model, self.stack = model, LatentStack(model, readout)
        device = model.latent_timestamps.device
        self.register_buffer("latent_offsets", model.latent_timestamps.double(), persistent=False)  # (N,) s
        self.register_buffer(
            "decoder_index", torch.tensor([[model.readout_names.index(readout)]], device=device), persistent=False
        )

    def forward(
        self, spike_keys: Tensor, spike_values: Tensor, unit_index: Tensor, session_index: Tensor, now_s: Tensor
    ) -> Tensor:
        model, attention = self.model, self.model.encoder.attention
        start = now_s - model.config.context_length_s

        def delimiters(token_type: int, time: Tensor) -> tuple[Tensor, Tensor]:  # (U, inner) each
            kv = attention.project_context(model.embed_inputs(unit_index, torch.full_like(unit_index, token_type)))
            return attention.rotate_context(kv, model.rotary(time))

        return _window_estimate(
            self.stack,
            model.latent_emb(model.latent_index)[None],
            (delimiters(START, start), delimiters(END, now_s), (spike_keys, spike_values)),
            model.rotary(start + self.latent_offsets),
            model.output_queries(session_index[None], self.decoder_index),
        )


class RecordingUpdate(nn.Module):
    """One update for one recording, as an inference runtime runs it for
    :class:`~neuropoyo.streaming.StreamingDecoder`: its units' delimiter keys and values (before
    rotation), the latent embeddings (1, N, dim) and the output query (1, 1, dim) are constants;
    the caller computes the rotation phases (angles in float64).

    spike_keys, spike_values: (S, inner) the window's cached spikes, rotated; start_phase,
    end_phase: (1, head_dim / 2, 2) the window's start and end; latent_phase: (N, head_dim / 2, 2)
    its latents. Returns (D,) the readout's estimate.
    """

    def __init__(
        self,
        model: POYO,
        readout: str,
        *,
        start_kv: tuple[Tensor, Tensor],
        end_kv: tuple[Tensor, Tensor],
        latents: Tensor,
        query: Tensor,
    ):
        super().__init__()
        self.model, self.stack = model, LatentStack(model, readout)
        for name, value in (("start_keys", start_kv[0]), ("start_values", start_kv[1]), ("end_keys", end_kv[0]),
                            ("end_values", end_kv[1]), ("latents", latents), ("query", query)):
            self.register_buffer(name, value.detach().clone(), persistent=False)

    def forward(
        self, spike_keys: Tensor, spike_values: Tensor, start_phase: Tensor, end_phase: Tensor, latent_phase: Tensor
    ) -> Tensor:
        rotate = self.model.encoder.attention.rotate_context
        return _window_estimate(
            self.stack,
            self.latents,
            (
                rotate((self.start_keys, self.start_values), Rotation(start_phase)),
                rotate((self.end_keys, self.end_values), Rotation(end_phase)),
                (spike_keys, spike_values),
            ),
            Rotation(latent_phase),
            self.query,
        )


def _window_estimate(
    stack: LatentStack, latents: Tensor, parts: tuple[tuple[Tensor, Tensor], ...], latent_rotation: Rotation, query: Tensor
) -> Tensor:
    """The encoder over a window's rotated keys and values, given in parts ((M_i, inner) each),
    then the stack: latents (1, N, dim), query (1, 1, dim) -> (D,)."""
    keys = torch.cat([k for k, _ in parts])[None]
    values = torch.cat([v for _, v in parts])[None]
    encoded = stack.model.encoder(latents, (keys, values), x_rotation=latent_rotation, context_rotation=None)
    return stack(encoded, query)
