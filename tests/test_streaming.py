"""StreamingDecoder: every update equals the offline model on the window that ends at that time."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from neuropoyo.data import Intervals, Recording, RecordingInfo, Spikes, Units
from neuropoyo.model import POYO
from neuropoyo.streaming import StreamingDecoder
from neuropoyo.tokens.tokenizer import input_tokens
from test_model import tiny_config

T0 = 10_000.0  # streams start far from 0: fp32 angle precision must not depend on absolute time


def spike_recording(seed: int, *, n_units: int = 6, duration: float = 4.0, rate: float = 10.0) -> Recording:
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(T0, T0 + duration, int(rate * n_units * duration)))
    units = rng.integers(0, n_units - 1, times.size)  # the last unit never fires
    return Recording(
        info=RecordingInfo(recording_id=f"stream_{seed}"),
        spikes=Spikes(times, units),
        units=Units([f"u{k}" for k in range(n_units)]),
        behavior={},
        domain=Intervals([T0], [T0 + duration]),
    )


def offline_estimate(model: POYO, recording: Recording, unit_index, now: float, readout: str) -> np.ndarray:
    """The plain forward pass on the tokenized window [now - T, now), one query at its end."""
    T = model.config.context_length_s
    window = recording.slice(now - T, now)
    tokens = input_tokens(window, observed=Intervals([0.0], [T]), unit_index=np.asarray(unit_index))
    dtype = model.unit_emb.weight.dtype
    times = tokens["input_timestamps"].astype(np.float64)  # the tokenizer's are float32
    times[: window.spikes.times.size] = window.spikes.times
    decoder = model.readout_names.index(readout)
    with torch.no_grad():
        out = model(
            input_unit_index=torch.as_tensor(tokens["input_unit_index"])[None],
            input_timestamps=torch.as_tensor(times, dtype=dtype)[None],
            input_token_type=torch.as_tensor(tokens["input_token_type"])[None],
            output_session_index=torch.tensor([[1]]),
            output_timestamps=torch.tensor([[T]], dtype=dtype),
            output_decoder_index=torch.tensor([[decoder]]),
        )
    return out[readout][0, 0].double().numpy()


def streamed(decoder: StreamingDecoder, recording: Recording, updates: np.ndarray) -> list[np.ndarray]:
    """Push each update's new spikes (those before the update time), then estimate."""
    spikes, pushed, estimates = recording.spikes, 0, []
    for now in updates:
        upto = int(np.searchsorted(spikes.times, now, side="left"))
        decoder.push(spikes.unit_index[pushed:upto], spikes.times[pushed:upto])
        pushed = upto
        estimates.append(decoder.estimate(now))
    return estimates


UNIT_ROWS = np.array([3, 0, 7, 11, 5, 9])


@pytest.mark.parametrize("token_type_embedding", [False, True])
@pytest.mark.parametrize("rotate_value_decoder", [False, True])
def test_streaming_equals_the_offline_model_in_float64(token_type_embedding, rotate_value_decoder):
    torch.manual_seed(int(np.random.SeedSequence().entropy % 2**31))
    config = tiny_config(
        token_type_embedding=token_type_embedding, rotate_value_decoder=rotate_value_decoder, task_embedding=True
    )
    model = POYO(config).double().eval()
    recording = spike_recording(1)
    # irregular update times: before any spike left the window, and long after (eviction)
    updates = T0 + np.sort(np.random.default_rng(2).uniform(0.2, 4.0, 25))
    decoder = StreamingDecoder(model, unit_index=UNIT_ROWS, session_index=1, readout="cursor_pos")
    for now, got in zip(updates, streamed(decoder, recording, updates)):
        want = offline_estimate(model, recording, UNIT_ROWS, now, "cursor_pos")
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    assert decoder._times.min() >= updates[-1] - config.context_length_s  # the cache holds one window


@pytest.mark.parametrize("rotate_value_encoder", [True, False])
def test_streaming_in_float32_is_as_close_to_float64_as_the_offline_model(rotate_value_encoder):
    # float32 on the CPU pushes with NumPy (keys, and values when rotated); float64 above with torch
    model64 = POYO(tiny_config(rotate_value_encoder=rotate_value_encoder)).double().eval()
    model32 = POYO(tiny_config(rotate_value_encoder=rotate_value_encoder)).float().eval()
    model32.load_state_dict(model64.state_dict())
    recording = spike_recording(3)
    updates = T0 + np.arange(1.0, 4.0, 0.01)
    decoder = StreamingDecoder(model32, unit_index=UNIT_ROWS, session_index=1, readout="hand_vel")
    worst_stream = worst_offline = 0.0
    for now, got in zip(updates[::15], streamed(decoder, recording, updates)[::15]):
        want = offline_estimate(model64, recording, UNIT_ROWS, now, "hand_vel")
        worst_stream = max(worst_stream, np.abs(got - want).max())
        worst_offline = max(worst_offline, np.abs(offline_estimate(model32, recording, UNIT_ROWS, now, "hand_vel") - want).max())
    assert worst_stream < 1e-4
    assert worst_stream <= 10 * worst_offline + 1e-6


def test_streaming_in_bfloat16_is_as_close_to_float64_as_the_offline_model_in_bfloat16():
    model64 = POYO(tiny_config()).double().eval()
    model32 = POYO(tiny_config()).float().eval()
    model32.load_state_dict(model64.state_dict())
    offline16 = StreamingDecoder(model32, unit_index=UNIT_ROWS, session_index=1, readout="hand_vel", dtype=torch.bfloat16).model
    assert offline16.unit_emb.weight.dtype == torch.bfloat16 and model32.unit_emb.weight.dtype == torch.float32
    for name, buffer in model32.named_buffers():  # the frequencies and the latent grid keep theirs
        assert offline16.get_buffer(name).dtype == buffer.dtype
    recording = spike_recording(6)
    updates = T0 + np.arange(1.0, 4.0, 0.01)
    decoder = StreamingDecoder(model32, unit_index=UNIT_ROWS, session_index=1, readout="hand_vel", dtype=torch.bfloat16)
    worst_stream = worst_offline = scale = 0.0
    for now, got in zip(updates[::15], streamed(decoder, recording, updates)[::15]):
        want = offline_estimate(model64, recording, UNIT_ROWS, now, "hand_vel")
        scale = max(scale, np.abs(want).max())
        worst_stream = max(worst_stream, np.abs(got - want).max())
        worst_offline = max(worst_offline, np.abs(offline_estimate(offline16, recording, UNIT_ROWS, now, "hand_vel") - want).max())
    assert 0 < worst_stream < 0.05 * scale
    assert worst_stream <= 3 * worst_offline


@pytest.mark.slow
def test_the_compiled_decoder_equals_the_eager_one_and_falls_back_when_compilation_fails(monkeypatch):
    torch.manual_seed(int(np.random.SeedSequence().entropy % 2**31))
    model = POYO(tiny_config()).eval()
    recording = spike_recording(7)
    updates = T0 + np.arange(1.0, 3.0, 0.05)
    eager = StreamingDecoder(model, unit_index=UNIT_ROWS, session_index=1, readout="hand_vel")
    compiled = StreamingDecoder(model, unit_index=UNIT_ROWS, session_index=1, readout="hand_vel", compile=True)
    assert compiled.compiled and not eager.compiled
    for got, want in zip(streamed(compiled, recording, updates), streamed(eager, recording, updates)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * max(1.0, np.abs(want).max()))

    def broken(fn, **_):
        def fail(*args, **kwargs):
            raise RuntimeError("no C++ compiler")
        return fail

    monkeypatch.setattr(torch, "compile", broken)
    with pytest.warns(UserWarning, match="decoding eagerly.*no C\\+\\+ compiler"):
        fallback = StreamingDecoder(model, unit_index=UNIT_ROWS, session_index=1, readout="hand_vel", compile=True)
    assert not fallback.compiled
    eager = StreamingDecoder(model, unit_index=UNIT_ROWS, session_index=1, readout="hand_vel")
    for got, want in zip(streamed(fallback, recording, updates), streamed(eager, recording, updates)):
        np.testing.assert_array_equal(got, want)
    torch._dynamo.reset()


def test_spikes_pushed_ahead_wait_for_their_window_and_the_scale_is_undone():
    model = POYO(tiny_config()).double().eval()
    recording = spike_recording(4)
    s = recording.spikes
    mean, std = np.array([1.0, -2.0]), np.array([3.0, 0.5])
    decoder = StreamingDecoder(model, unit_index=UNIT_ROWS, session_index=1, readout="hand_vel", mean=mean, std=std)
    decoder.push(s.unit_index, s.times)  # the whole recording at once
    for now in (T0 + 1.3, T0 + 2.05, T0 + 3.9):
        want = offline_estimate(model, recording, UNIT_ROWS, now, "hand_vel") * std + mean
        np.testing.assert_allclose(decoder.estimate(now), want, rtol=0, atol=1e-10)


def test_a_long_stream_outgrows_and_recycles_the_token_buffer():
    model = POYO(tiny_config()).double().eval()
    recording = spike_recording(5, duration=30.0, rate=40.0)  # 7,200 spikes, 240 per window
    updates = T0 + np.arange(1.0, 30.0, 0.5)
    whole = StreamingDecoder(model, unit_index=UNIT_ROWS, session_index=1, readout="hand_vel")
    whole.push(recording.spikes.unit_index, recording.spikes.times)  # grows the buffer
    chunked = StreamingDecoder(model, unit_index=UNIT_ROWS, session_index=1, readout="hand_vel")
    for now, got in zip(updates, streamed(chunked, recording, updates)):  # moves rows back, often
        want = offline_estimate(model, recording, UNIT_ROWS, now, "hand_vel")
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
        np.testing.assert_allclose(whole.estimate(now), want, rtol=0, atol=1e-10)
    assert chunked._buffer.shape == (2, 2 * 6 + 4096, 32) < whole._buffer.shape


def test_bad_pushes_and_updates_are_refused():
    model = POYO(tiny_config()).double().eval()
    decoder = StreamingDecoder(model, unit_index=UNIT_ROWS, session_index=1, readout="hand_vel")
    decoder.push([0, 1], [T0, T0 + 0.5])
    with pytest.raises(ValueError, match="sorted"):
        decoder.push([0], [T0 + 0.1])
    with pytest.raises(ValueError, match=r"\[0, 6\)"):
        decoder.push([6], [T0 + 0.6])
    with pytest.raises(ValueError, match="finite"):
        decoder.push([0], [np.nan])
    decoder.estimate(T0 + 1.0)
    with pytest.raises(ValueError, match="not before"):
        decoder.estimate(T0 + 0.9)
    with pytest.raises(ValueError, match="readouts"):
        StreamingDecoder(model, unit_index=UNIT_ROWS, session_index=1)
    with pytest.raises(ValueError, match="unit_index"):
        StreamingDecoder(model, unit_index=[0, 12], session_index=1, readout="hand_vel")


RUNTIME_EXTRAS = {"onnxruntime": "export", "openvino": "openvino"}


def _require_runtime(backend: str) -> None:
    for package in ("onnxscript", backend):
        pytest.importorskip(package, reason=f"backend {backend!r} needs {package}: pip install 'neuropoyo[{RUNTIME_EXTRAS[backend]}]'")


@pytest.mark.parametrize("backend", sorted(RUNTIME_EXTRAS))
def test_a_runtime_backend_streams_what_torch_streams(backend):
    _require_runtime(backend)
    torch.manual_seed(int(np.random.SeedSequence().entropy % 2**31))
    model = POYO(tiny_config()).eval()
    recording = spike_recording(8)
    updates = T0 + np.arange(1.0, 3.0, 0.05)
    eager = StreamingDecoder(model, unit_index=UNIT_ROWS, session_index=1, readout="hand_vel")
    runtime = StreamingDecoder(model, unit_index=UNIT_ROWS, session_index=1, readout="hand_vel", backend=backend, threads=1)
    assert runtime.backend == backend and eager.backend == "torch"
    for got, want in zip(streamed(runtime, recording, updates), streamed(eager, recording, updates)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * max(1.0, np.abs(want).max()))
    # a window without spikes (the recording ends at T0 + 4 s): delimiters alone
    want = eager.estimate(T0 + 10.0)
    np.testing.assert_allclose(runtime.estimate(T0 + 10.0), want, rtol=0, atol=1e-5 * max(1.0, np.abs(want).max()))


def test_openvino_in_bfloat16_is_as_close_to_float64_as_torch_or_says_this_cpu_runs_float32():
    _require_runtime("openvino")
    model64 = POYO(tiny_config()).double().eval()
    model32 = POYO(tiny_config()).float().eval()
    model32.load_state_dict(model64.state_dict())
    recording = spike_recording(9)
    updates = T0 + np.arange(1.0, 3.0, 0.05)
    exact = streamed(StreamingDecoder(model64, unit_index=UNIT_ROWS, session_index=1, readout="hand_vel"), recording, updates)
    import openvino

    capable = "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")  # AVX512-BF16 or AMX
    errors = {}
    for backend in ("torch", "openvino"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            decoder = StreamingDecoder(
                model32, unit_index=UNIT_ROWS, session_index=1, readout="hand_vel", dtype=torch.bfloat16, backend=backend
            )
        said = [str(w.message) for w in caught if "cannot compute in bfloat16 on this CPU" in str(w.message)]
        assert len(said) == (backend == "openvino" and not capable)
        errors[backend] = max(np.abs(got - want).max() for got, want in zip(streamed(decoder, recording, updates), exact))
    scale = max(np.abs(want).max() for want in exact)
    if capable:
        assert 1e-4 * scale < errors["openvino"] < 0.05 * scale  # bf16 rounding: the hint took effect
        assert errors["openvino"] <= 3 * errors["torch"]
    else:  # float32, as the warning said
        assert errors["openvino"] < 1e-4 * scale < errors["torch"]


def test_a_missing_runtime_falls_back_to_torch_and_bad_combinations_are_refused(monkeypatch):
    import importlib.util

    model = POYO(tiny_config()).eval()
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else find_spec(name, *a))
    with pytest.warns(UserWarning, match=r"backend 'openvino' needs openvino \(pip install 'neuropoyo\[openvino\]'\); decoding with torch"):
        fallback = StreamingDecoder(model, unit_index=UNIT_ROWS, session_index=1, readout="hand_vel", backend="openvino")
    assert fallback.backend == "torch"
    eager = StreamingDecoder(model, unit_index=UNIT_ROWS, session_index=1, readout="hand_vel")
    recording, updates = spike_recording(10), T0 + np.arange(1.0, 2.0, 0.1)
    for got, want in zip(streamed(fallback, recording, updates), streamed(eager, recording, updates)):
        np.testing.assert_array_equal(got, want)
    for options, message in (
        (dict(backend="tensorrt"), "backend must be one of torch, onnxruntime, openvino"),
        (dict(backend="onnxruntime", compile=True), "runs on the CPU, uncompiled"),
        (dict(backend="onnxruntime", dtype=torch.bfloat16), "decodes in float32"),
    ):
        with pytest.raises(ValueError, match=message):
            StreamingDecoder(model, unit_index=UNIT_ROWS, session_index=1, readout="hand_vel", **options)
