"""Real-time decoding: push spikes as they arrive, ask for the behavior estimate at the current time.

The estimate at time ``now`` is the model's output at the end of the context window
``[now - T, now)``, exactly what the offline model gives on that window: its spikes, a START and an
END delimiter for every unit of the recording at the window's edges, the model's latent grid, and
one output query at the window's end.

Work reused between updates:

* a spike's encoder key and value depend only on its unit and its time, so each is projected and
  rotated once, when pushed, and cached until it leaves the window;
* the delimiters' keys and values are projected once per unit and rotated by one phase per update;
* the latent queries, the processor's latent rotation (fixed relative to the window) and the output
  query are computed once.

Rotation angles are computed in float64 from times relative to the stream's first time (attention
depends on time differences only), so precision does not decay over hours of streaming; only the
phases are cast, to the model's dtype (float32 for half-precision models, rotated in float32).

A float32 decoder on the CPU rotates pushed spikes with NumPy (a dozen small array operations cost
less than torch's per-operation dispatch); an inference runtime (``backend=``) runs the rest of the
update, the encoder included, as one graph call.
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from neuropoyo.data.recording import Recording
from neuropoyo.model.poyo import POYO, with_parameters_in
from neuropoyo.model.rotary import Rotation
from neuropoyo.schema import END, SPIKE, START
from neuropoyo.streaming.graphs import LatentStack, RecordingUpdate
from neuropoyo.streaming.runtimes import BACKENDS, missing_runtime, runtime_function
from neuropoyo.tokens.vocab import session_key_of, unit_keys
from neuropoyo.trained import TrainedModel


class StreamingDecoder:
    """Incremental POYO decoding of one recording's spike stream.

    model: a POYO network (put in eval mode: no dropout while streaming).
    unit_index: (U,) the model's unit rows of the recording's units; pushed spikes name units by
        their position 0..U-1 in this list.
    session_index: the model's session row of the recording.
    readout: the behavior stream to estimate (default: the model's only readout).
    mean, std: (D,) the stream's normalisation, undone on every estimate (default: none).
    dtype: the precision to decode in (default: the model's). Another dtype decodes with a copy
        whose parameters are cast to it; e.g. ``torch.bfloat16`` on CPUs with native bf16 matmuls
        (AMX), faster there at about 1e-2 relative error. Rotation angles stay float64.
    compile: run the latent self-attention stack and the output cross-attention through
        ``torch.compile`` with frozen weights (compiled once, at construction: tens of seconds on
        2 CPU cores). The decoder then snapshots the model's weights. Falls back to eager
        decoding, with a warning, where compilation fails (e.g. no C++ compiler).
    backend: what runs an update once the new spikes are rotated (the encoder over the window, the
        latent self-attention stack and the output cross-attention,
        :class:`~neuropoyo.streaming.graphs.RecordingUpdate`): "torch", or an inference runtime,
        "onnxruntime" or "openvino" (traced to ONNX at construction; float32, or bfloat16 with
        openvino: its inference precision hint; on the CPU). Falls back to torch, with a warning,
        where the runtime is not installed (the ``export`` or ``openvino`` extra).
    threads: the runtime's threads (default: torch's, ``torch.get_num_threads()``).
    """

    def __init__(
        self,
        model: POYO,
        *,
        unit_index: Sequence[int] | np.ndarray,
        session_index: int,
        readout: str | None = None,
        mean: Sequence[float] | np.ndarray | None = None,
        std: Sequence[float] | np.ndarray | None = None,
        dtype: torch.dtype | None = None,
        compile: bool = False,
        backend: str = "torch",
        threads: int | None = None,
    ):
        c = model.config
        names = model.readout_names
        if readout is None:
            if len(names) != 1:
                raise ValueError(f"the model has readouts {list(names)}: pass readout= one of them")
            readout = names[0]
        if readout not in names:
            raise ValueError(f"readout {readout!r} is not one of the model's readouts {list(names)}")
        units = np.asarray(unit_index, dtype=np.int64).reshape(-1)
        if units.size == 0 or units.min() < 0 or units.max() >= c.num_units:
            raise ValueError(f"unit_index must be non-empty rows in [0, {c.num_units}), got {units.size} rows")
        if not 0 <= session_index < c.num_sessions:
            raise ValueError(f"session_index {session_index} is outside [0, {c.num_sessions})")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if backend != "torch" and (compile or model.unit_emb.weight.device.type != "cpu"):
            raise ValueError(f"backend {backend!r} runs on the CPU, uncompiled: use compile=True with backend='torch'")
        if backend == "onnxruntime" and dtype not in (None, torch.float32):
            raise ValueError(f"backend 'onnxruntime' decodes in float32, not {dtype}")
        missing = missing_runtime(backend)
        if missing:
            warnings.warn(f"StreamingDecoder: backend {backend!r} needs {missing}; decoding with torch")
            backend = "torch"
        runtime_dtype, dtype = (dtype, torch.float32) if backend != "torch" else (None, dtype)
        self.model = model = with_parameters_in(model, dtype).eval()
        self.readout = readout
        self.context_length_s = c.context_length_s
        self.unit_index, self.session_index, self.num_units = units, session_index, units.size
        dim = c.readouts[readout]
        self._mean = np.zeros(dim) if mean is None else np.asarray(mean, dtype=np.float64).reshape(dim)
        self._std = np.ones(dim) if std is None else np.asarray(std, dtype=np.float64).reshape(dim)

        weight = model.unit_emb.weight
        self._device = weight.device
        rows = torch.as_tensor(units, device=self._device)
        attention = model.encoder.attention
        with torch.inference_mode():

            def unit_kv(token_type: int) -> tuple[Tensor, Tensor]:
                return attention.project_context(model.embed_inputs(rows, torch.full_like(rows, token_type)))

            self._spike_kv, self._start_kv, self._end_kv = unit_kv(SPIKE), unit_kv(START), unit_kv(END)
            self._latents = model.latent_emb(model.latent_index)[None]  # (1, N, dim)
            self._latent_offsets = model.latent_timestamps.double().cpu().numpy()  # (N,) s from the window start
            decoder_index = torch.tensor([[names.index(readout)]], device=self._device)
            self._query = model.output_queries(torch.tensor([[session_index]], device=self._device), decoder_index)
        # Pushing with NumPy (float32 on the CPU): the spikes' keys and values as (U, heads, pairs)
        # complex tables, each pair multiplied by its phase cos + i sin (:meth:`_phases`).
        self._omega = model.rotary.omega.cpu().numpy()  # (rotated pairs,) rad/s
        self._numpy_kv = None
        self._rotate_values = attention.rotate_value
        if self._device.type == "cpu" and weight.dtype == torch.float32:
            self._numpy_kv = [
                part.contiguous().numpy().view(np.complex64).reshape(units.size, attention.heads, -1)
                for part in self._spike_kv
            ]
        # Token buffer: rows [lo, hi) hold the cached spikes' rotated keys and values, the 2U rows
        # before lo this update's delimiters, so the window's tokens are one contiguous view.
        self._buffer = weight.new_zeros(2, 2 * self.num_units + 4096, self._spike_kv[0].shape[-1])
        self._lo = self._hi = 2 * self.num_units
        self._times = np.zeros(0)  # (hi - lo,) cached spike times, sorted
        self._now = -np.inf
        self._anchor: float | None = None  # the first time seen; angles are taken relative to it
        self._stack: Callable[[Tensor, Tensor], Tensor] = LatentStack(model, readout)  # latents, query -> (D,)
        self._update: Callable[..., np.ndarray] | None = None  # the runtime's RecordingUpdate
        self.compiled = compile and self._compile()
        self.backend = backend
        if backend != "torch":
            self._use_runtime(backend, threads, runtime_dtype)

    def _use_runtime(self, backend: str, threads: int | None, dtype: torch.dtype | None) -> None:
        """Run each update after the push, the encoder included, through ``backend`` (the model in
        float32; bfloat16 as OpenVINO's precision hint)."""
        pairs = self.model.rotary.head_dim // 2
        inner = self._spike_kv[0].shape[-1]
        examples = {  # the shapes the graph is traced with; the number of spikes may vary
            "spike_keys": torch.zeros(3, inner),
            "spike_values": torch.zeros(3, inner),
            "start_phase": torch.zeros(1, pairs, 2),
            "end_phase": torch.zeros(1, pairs, 2),
            "latent_phase": torch.zeros(self._latent_offsets.size, pairs, 2),
        }
        update = RecordingUpdate(
            self.model, self.readout, start_kv=self._start_kv, end_kv=self._end_kv, latents=self._latents, query=self._query
        ).eval()
        self._update = runtime_function(
            update,
            examples,
            backend=backend,
            threads=threads,
            dtype=torch.bfloat16 if dtype == torch.bfloat16 else torch.float32,
            dynamic={"spike_keys": "spikes", "spike_values": "spikes"},
        )

    def _compile(self) -> bool:
        """Compile the latent stack with frozen weights, warm it up; False (eager) on failure."""
        import torch._inductor.config

        stack = torch.compile(self._stack)
        try:
            with torch.inference_mode(), torch._inductor.config.patch(freezing=True):
                stack(self._latents, self._query)
        except Exception as error:  # inductor raises many kinds; any of them means: decode eagerly
            warnings.warn(f"StreamingDecoder: torch.compile failed, decoding eagerly ({type(error).__name__}: {error})")
            return False
        self._stack = stack
        return True

    @classmethod
    def for_recording(
        cls,
        trained: TrainedModel,
        recording: Recording,
        *,
        readout: str | None = None,
        dtype: torch.dtype | None = None,
        compile: bool = False,
        backend: str = "torch",
        threads: int | None = None,
    ):
        """A decoder for ``recording`` (its units and session must be in the model's vocabularies),
        returning estimates in the stream's own units."""
        units = trained.unit_vocab.index(unit_keys(recording))
        session = int(trained.session_vocab.index([session_key_of(recording)])[0])
        decoder = cls(
            trained.model, unit_index=units, session_index=session, readout=readout, dtype=dtype, compile=compile,
            backend=backend, threads=threads,
        )
        scale = trained.normalizer.scale(recording.info.brainset, decoder.readout)
        decoder.set_scale(scale.mean, scale.std)
        return decoder

    def set_scale(self, mean: Sequence[float] | np.ndarray, std: Sequence[float] | np.ndarray) -> None:
        """mean, std: (D,) the readout's normalisation, undone on every estimate from now on."""
        self._mean = np.asarray(mean, dtype=np.float64).reshape(self._mean.shape)
        self._std = np.asarray(std, dtype=np.float64).reshape(self._std.shape)

    def reset(self) -> None:
        """Forget every spike and the stream's times: the next push or estimate may be at any time."""
        self._lo = self._hi = 2 * self.num_units
        self._times = np.zeros(0)
        self._now = -np.inf
        self._anchor = None

    def _relative(self, times: np.ndarray | Sequence[float]) -> np.ndarray:
        """Times (float64 s) relative to the stream's anchor, its first time seen."""
        times = np.asarray(times, dtype=np.float64)
        if self._anchor is None:
            self._anchor = float(times.min())
        return times - self._anchor

    def _rotation(self, times: np.ndarray | Sequence[float]) -> Rotation:
        return self.model.rotary(torch.as_tensor(self._relative(times), device=self._device))

    def _phases(self, times: np.ndarray) -> np.ndarray:
        """(k,) s -> (k, head_dim / 2, 2) float32 (cos, sin) tables, angles in float64."""
        angles = np.zeros((times.size, self.model.rotary.head_dim // 2))
        angles[:, : self._omega.size] = self._relative(times)[:, None] * self._omega
        return np.stack((np.cos(angles), np.sin(angles)), axis=-1).astype(np.float32)

    def push(self, units: Sequence[int] | np.ndarray, times: Sequence[float] | np.ndarray) -> None:
        """Add spikes: units (S,) positions in ``unit_index``; times (S,) seconds, sorted, not before
        any spike pushed earlier nor before the last estimate's window start."""
        units = np.asarray(units, dtype=np.int64).reshape(-1)
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        if units.shape != times.shape:
            raise ValueError(f"push: {units.size} units but {times.size} times")
        if times.size == 0:
            return
        if not np.isfinite(times).all():
            raise ValueError("push: spike times must be finite")
        if units.min() < 0 or units.max() >= self.num_units:
            raise ValueError(f"push: unit positions must lie in [0, {self.num_units}), got {units.min()}..{units.max()}")
        last = self._times[-1] if self._times.size else self._now - self.context_length_s
        if np.any(np.diff(times) < 0) or times[0] < last:
            raise ValueError(f"push: spike times must be sorted and not before {last:.6f} s")
        self._make_room(times.size)
        rows = slice(self._hi, self._hi + times.size)
        if self._numpy_kv is not None:
            turn = self._phases(times).view(np.complex64)[:, None, :, 0]  # (S, 1, head_dim / 2); unrotated pairs 1
            rotated = 2 if self._rotate_values else 1  # keys, and values with rotate_value
            buffer = self._buffer.numpy()
            for part, table in enumerate(self._numpy_kv):
                pairs = table[units]  # (S, heads, head_dim / 2) complex
                if part < rotated:
                    pairs *= turn
                buffer[part, rows] = pairs.view(np.float32).reshape(times.size, -1)
        else:
            with torch.inference_mode():
                index = torch.as_tensor(units, device=self._device)
                kv = (self._spike_kv[0][index], self._spike_kv[1][index])
                keys, values = self.model.encoder.attention.rotate_context(kv, self._rotation(times))
            self._buffer[0, rows] = keys
            self._buffer[1, rows] = values
        self._hi += times.size
        self._times = np.concatenate([self._times, times])

    def _make_room(self, n: int) -> None:
        """Move the cached rows back to the buffer's start (2U rows in) and grow it if n more rows
        would not fit after them."""
        if self._hi + n <= self._buffer.shape[1]:
            return
        live, first = self._hi - self._lo, 2 * self.num_units
        if first + live + n > self._buffer.shape[1]:
            grown = self._buffer.new_zeros(2, 2 * (first + live + n), self._buffer.shape[2])
            grown[:, first : first + live] = self._buffer[:, self._lo : self._hi]
            self._buffer = grown
        else:
            self._buffer[:, first : first + live] = self._buffer[:, self._lo : self._hi].clone()
        self._lo, self._hi = first, first + live

    def estimate(self, now: float) -> np.ndarray:
        """(D,) the behavior estimate at ``now`` from the spikes in ``[now - T, now)``; ``now`` never
        goes back. Spikes that left the window are dropped from the cache."""
        if not np.isfinite(now) or now < self._now:
            raise ValueError(f"estimate: now must be finite and not before the last update ({self._now} s)")
        self._now = float(now)
        start = now - self.context_length_s
        first = int(np.searchsorted(self._times, start, side="left"))
        self._times, self._lo = self._times[first:], self._lo + first
        count = int(np.searchsorted(self._times, now, side="left"))
        if self._update is not None:
            window = self._buffer[:, self._lo : self._lo + count].numpy()
            phases = self._phases(np.concatenate(([start, now], start + self._latent_offsets)))
            estimate = self._update(window[0], window[1], phases[:1], phases[1:2], phases[2:])
            return estimate.astype(np.float64) * self._std + self._mean
        model, attention, units = self.model, self.model.encoder.attention, self.num_units
        with torch.inference_mode():
            delimiters = self._buffer[:, self._lo - 2 * units : self._lo]
            delimiters[:, :units] = torch.stack(attention.rotate_context(self._start_kv, self._rotation([start])))
            delimiters[:, units:] = torch.stack(attention.rotate_context(self._end_kv, self._rotation([now])))
            tokens = self._buffer[:, None, self._lo - 2 * units : self._lo + count]  # (2, 1, 2U + count, inner)
            latents = model.encoder(
                self._latents,
                (tokens[0], tokens[1]),
                x_rotation=self._rotation(start + self._latent_offsets),
                context_rotation=None,
            )
            estimate = self._stack(latents, self._query)
        return estimate.double().cpu().numpy() * self._std + self._mean
