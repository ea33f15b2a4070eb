"""``neuropoyo bench-stream``: replay a recording through the StreamingDecoder and time every update.

The replay runs in recording time: each update at ``now`` first receives the spikes a live feed
would have delivered since the last one (times < now), then asks for the estimate at ``now``. Every
``compare_every`` updates, the windows of the last :data:`WARM_RUNS` updates are also decoded by the
plain full-window forward of our model, then by torch_brain's POYO of the same size (random
weights: timing only; the two alternate which goes first), and a fixed ~10 ms matmul workload runs
as many times as the machine's noise reference; all interleaved in one run. Each workload runs its
windows back to back, so, like the stream's consecutive updates, it is mostly timed with its
weights in cache, as it would run in a decoding loop of its own: a single forward squeezed between
stream updates would be timed cold and flatter the ratio. The full-window outputs also check the
stream: the largest difference between a streamed estimate and our full-window forward on the same
window is reported, in z-scored units.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from neuropoyo.data.intervals import Intervals
from neuropoyo.data.recording import Recording
from neuropoyo.errors import ConfigError, DataError
from neuropoyo.machine import synchronize
from neuropoyo.model.config import POYOConfig
from neuropoyo.streaming import StreamingDecoder
from neuropoyo.streaming.replay import score_replayed
from neuropoyo.streaming.runtimes import BACKENDS
from neuropoyo.tokens.tokenizer import input_tokens
from neuropoyo.trained import TrainedModel

REFERENCE_MS = 10.0  # the fixed matmul workload's target duration
WARM_RUNS = 4  # consecutive windows each comparison workload decodes every compare_every updates
STREAM_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def torch_brain_peer(config: POYOConfig, readout_dim: int) -> torch.nn.Module:
    """torch_brain's POYO with the size of ``config`` (the ``bench`` extra); dropout off."""
    try:
        from torch_brain.models.poyo import POYO as TorchBrainPOYO
    except ImportError as error:
        raise ConfigError(
            "bench-stream compares against torch_brain's POYO: pip install 'neuropoyo[bench]', "
            "or pass --no-torch-brain"
        ) from error
    model = TorchBrainPOYO(
        sequence_length=config.context_length_s,
        latent_step=config.context_length_s / config.num_latent_timestamps,
        num_latents_per_step=config.latents_per_timestamp,
        dim=config.dim,
        depth=config.depth,
        dim_head=config.head_dim,
        cross_heads=config.cross_heads,
        self_heads=config.num_heads,
        ffn_dropout=0.0,
        lin_dropout=0.0,
        atn_dropout=0.0,
        dim_out=readout_dim,
    )
    model.unit_emb.initialize_vocab([f"unit{i}" for i in range(config.num_units)])  # row 0: padding
    model.session_emb.initialize_vocab([f"session{i}" for i in range(config.num_sessions)])
    return model.eval()


def matmul_reference(target_ms: float = REFERENCE_MS) -> Callable[[], None]:
    """A fixed CPU workload (repeated 256^3 matmuls) calibrated once to take about ``target_ms``."""
    a, b = torch.randn(256, 256), torch.randn(256, 256)
    timings = []
    for _ in range(20):
        start = time.perf_counter()
        a @ b
        timings.append(time.perf_counter() - start)
    repeats = max(1, round(target_ms / 1e3 / float(np.median(timings))))

    def workload() -> None:
        for _ in range(repeats):
            a @ b

    return workload


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def _distribution(ms: list[float]) -> dict[str, float]:
    values = np.asarray(ms)
    return {"p50": float(np.median(values)), "p99": float(np.percentile(values, 99)), "max": float(values.max())}


def bench_stream(
    trained: TrainedModel,
    recording: Recording,
    *,
    readout: str | None = None,
    update_ms: float = 10.0,
    duration_s: float = 30.0,
    compare_every: int = 10,
    torch_brain: bool = True,
    dtype: str = "float32",
    compile: bool = False,
    backend: str = "torch",
) -> dict:
    """Replay ``duration_s`` seconds of ``recording`` from one context length after its start.

    dtype, compile, backend: the streaming decoder's precision, compilation and runtime (see
    StreamingDecoder); the full-window forwards run in the model's own precision, eagerly, in torch. Everything decodes on the
    model's device (a GPU: each forward timed to its end); the matmul reference stays on the CPU.
    Returns {"updates", "readout", "r2", "dtype", "compiled", "backend" (the one that ran, torch
    where the runtime is missing), "max_abs_difference" (z-scored,
    stream against our full-window forward), and per workload ("stream", "full_window",
    "torch_brain_full_window", "reference") {"p50", "p99", "max"} in ms, "ratio"}.
    """
    if update_ms <= 0 or duration_s <= 0 or compare_every < 1:
        raise ConfigError("bench-stream: update-ms and duration-s must be > 0 and compare-every >= 1")
    if dtype not in STREAM_DTYPES:
        raise ConfigError(f"bench-stream: dtype must be one of {', '.join(STREAM_DTYPES)}, got {dtype!r}")
    if backend not in BACKENDS:
        raise ConfigError(f"bench-stream: backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    on_cpu = trained.model.latent_timestamps.device.type == "cpu"
    if backend != "torch" and (compile or not on_cpu or (backend == "onnxruntime" and dtype != "float32")):
        raise ConfigError(
            f"bench-stream: --backend {backend} decodes on the CPU, uncompiled, in float32 (openvino also bfloat16)"
        )
    decoder = StreamingDecoder.for_recording(
        trained, recording, readout=readout, dtype=STREAM_DTYPES[dtype], compile=compile, backend=backend
    )
    model, T = trained.model.eval(), decoder.context_length_s  # a bf16 decoder put only its copy in eval mode
    device = model.latent_timestamps.device
    if decoder.readout not in recording.behavior:
        raise DataError(f"{recording.recording_id}: no behavior stream {decoder.readout!r} to score against")
    updates = recording.start + T + np.arange(0.0, duration_s, update_ms / 1e3)
    updates = updates[updates <= recording.end]
    if updates.size < compare_every:
        raise DataError(f"{recording.recording_id}: {recording.end - recording.start:.1f} s is too short to replay")
    peer = torch_brain_peer(model.config, model.config.readouts[decoder.readout]).to(device) if torch_brain else None
    reference = matmul_reference()
    latent_index = model.latent_index[None]
    latent_times = model.latent_timestamps[None]
    readout_index = torch.tensor([[model.readout_names.index(decoder.readout)]], device=device)
    session_index = torch.tensor([[decoder.session_index]], device=device)
    query_time = torch.tensor([[T]], device=device)

    def window_inputs(now: float) -> dict[str, torch.Tensor]:
        window = recording.slice(now - T, now)
        tokens = input_tokens(window, observed=Intervals([0.0], [T]), unit_index=decoder.unit_index)
        return {key: torch.as_tensor(value, device=device)[None] for key, value in tokens.items() if key != "input_mask"}

    def ours(inputs) -> np.ndarray:
        outputs = model(
            **inputs, output_session_index=session_index, output_timestamps=query_time, output_decoder_index=readout_index
        )
        return outputs[decoder.readout][0, 0].double().cpu().numpy()

    def theirs(inputs) -> None:
        peer(
            input_unit_index=inputs["input_unit_index"] + 1,
            input_timestamps=inputs["input_timestamps"],
            input_token_type=inputs["input_token_type"],
            input_mask=torch.ones_like(inputs["input_unit_index"], dtype=torch.bool),
            latent_index=latent_index,
            latent_timestamps=latent_times,
            session_index=torch.tensor([1], device=device),
            output_timestamps=query_time,
        )
        synchronize(device)

    spikes, pushed = recording.spikes, 0
    timings: dict[str, list[float]] = {"stream": [], "full_window": [], "torch_brain_full_window": [], "reference": []}
    estimates = np.zeros((updates.size, model.config.readouts[decoder.readout]))
    offline: dict[int, np.ndarray] = {}  # update index -> our full-window output (z-scored)
    with torch.inference_mode():
        for i, now in enumerate(updates):
            upto = int(np.searchsorted(spikes.times, now, side="left"))

            def update() -> None:
                decoder.push(spikes.unit_index[pushed:upto], spikes.times[pushed:upto])
                estimates[i] = decoder.estimate(now)

            timings["stream"].append(_timed(update))
            pushed = upto
            if i % compare_every == compare_every - 1:
                recent = range(max(0, i - WARM_RUNS + 1), i + 1)
                inputs = [window_inputs(updates[j]) for j in recent]

                def full_windows() -> None:
                    for j, window in zip(recent, inputs):
                        start = time.perf_counter()
                        offline[j] = ours(window)
                        timings["full_window"].append((time.perf_counter() - start) * 1e3)

                def peer_windows() -> None:
                    timings["torch_brain_full_window"].extend(_timed(lambda: theirs(window)) for window in inputs)

                runs = [full_windows] if peer is None else [full_windows, peer_windows]
                for run in runs if (i // compare_every) % 2 == 0 else runs[::-1]:
                    run()
                timings["reference"].extend(_timed(reference) for _ in inputs)
    compared = np.array(sorted(offline))
    scale = trained.normalizer.scale(recording.info.brainset, decoder.readout)
    streamed = (estimates[compared] - np.asarray(scale.mean)) / np.asarray(scale.std)
    result = {
        "recording": recording.recording_id,
        "readout": decoder.readout,
        "updates": int(updates.size),
        "update_ms": update_ms,
        "r2": score_replayed(recording, decoder.readout, updates, estimates, time_offset=0.0)["r2"],
        "dtype": dtype,
        "compiled": decoder.compiled,
        "backend": decoder.backend,
        "max_abs_difference": float(np.abs(streamed - np.stack([offline[j] for j in compared])).max()),
        **{name: _distribution(ms) for name, ms in timings.items() if ms},
    }
    if peer is not None:
        result["ratio"] = result["torch_brain_full_window"]["p50"] / result["stream"]["p50"]
    return result
