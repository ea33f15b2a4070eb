"""The decoder service: what it publishes equals StreamingDecoder on the same spikes and times, and
it keeps going through imperfect input, counting each kind.

The first half drives :class:`DecoderService` in process with explicit clock readings; the second
runs ``neuropoyo replay`` and ``neuropoyo serve`` as real processes over LSL loopback and over a real
``redis-server`` (skipped with a message where one is missing, except under ``.ci/run``, which
installs it and sets NEUROPOYO_REQUIRE_REDIS)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import NO_DROPOUT, TINY_MODEL, simulated

from neuropoyo.data.normalize import Normalizer, Scale
from neuropoyo.data.store import write_recording
from neuropoyo.model import POYO, POYOConfig
from neuropoyo.streaming import StreamingDecoder
from neuropoyo.streaming.service import DecoderService
from neuropoyo.streaming.transport import TICK
from neuropoyo.tokens.vocab import Vocabulary, session_key_of, unit_keys
from neuropoyo.trained import TrainedModel, save_model

UPDATE_MS = 10.0
SCALE = Scale(mean=(0.5, -1.0), std=(2.0, 3.0))


@pytest.fixture(scope="module")
def recording():
    return simulated(trials=4, duration_s=6)[0]


def trained_for(recording, *, seed: int = 0) -> TrainedModel:
    """A random tiny model that knows ``recording``'s session and units (no dropout)."""
    torch.manual_seed(seed)
    config = POYOConfig(**dict(TINY_MODEL, **NO_DROPOUT, num_units=len(recording.units.ids), init_std=0.1))
    return TrainedModel(
        model=POYO(config).eval(),
        unit_vocab=Vocabulary(unit_keys(recording)),
        session_vocab=Vocabulary([session_key_of(recording)]),
        normalizer=Normalizer({recording.info.brainset: {"hand_vel": SCALE}}),
        settings={},
    )


def reference(trained: TrainedModel, recording, spike_times, updates) -> np.ndarray:
    """StreamingDecoder.for_recording fed every spike before each update time directly."""
    decoder = StreamingDecoder.for_recording(trained, recording)
    units, estimates, pushed = recording.spikes.unit_index, [], 0
    for now in updates:
        upto = int(np.searchsorted(spike_times, now, side="left"))
        decoder.push(units[pushed:upto], spike_times[pushed:upto])
        pushed = upto
        estimates.append(decoder.estimate(now))
    return np.array(estimates)


def service_for(trained, recording, **timing) -> DecoderService:
    return DecoderService.for_model(
        trained, session=session_key_of(recording), wire_units=unit_keys(recording), update_ms=UPDATE_MS, **timing
    )


def chunks(recording, start: float, end: float, *, chunk_s: float = 0.01, ticks: bool = True):
    """(units, times) per chunk of [start, end), each closed by a tick at its end."""
    spikes = recording.spikes
    for lo in np.arange(start, end - 1e-9, chunk_s):
        hi = lo + chunk_s
        keep = (spikes.times >= lo) & (spikes.times < hi)
        units, times = spikes.unit_index[keep], spikes.times[keep]
        if ticks:
            units, times = np.append(units, TICK), np.append(times, hi)
        yield units, times, hi


def run(service: DecoderService, feed) -> tuple[np.ndarray, np.ndarray]:
    """Feed chunks, arriving on the service clock at their end time; run every due update."""
    times, values = [], []
    for units, spike_times, arrived in feed:
        service.receive(units, spike_times, arrived)
        for u in service.due(arrived):
            update = service.update(u)
            times.append(update.time)
            values.append(update.values)
    return np.array(times), np.array(values)


# ------------------------------------------------------------------------------ in process


def test_the_service_publishes_the_streaming_decoders_estimates_on_a_fixed_grid(recording):
    trained = trained_for(recording)
    service = service_for(trained, recording)
    times, values = run(service, chunks(recording, 0.0, 2.5))
    T = trained.model.config.context_length_s
    first = recording.spikes.times[0]
    assert times[0] == pytest.approx(first + T)  # the first full window
    assert np.allclose(np.diff(times), UPDATE_MS / 1e3)
    assert times[-1] <= 2.5 and times.size == int((2.5 - first - T) / 0.01) + 1
    expected = reference(trained, recording, recording.spikes.times, times)
    np.testing.assert_array_equal(values, expected)  # the same computation, bit for bit
    counts = service.counts
    assert counts.updates == times.size and counts.late_spikes == counts.unknown_unit_spikes == 0
    assert counts.spikes == int((recording.spikes.times < times[-1]).sum())


def test_out_of_order_spikes_in_time_are_sorted_and_late_ones_dropped(recording):
    trained = trained_for(recording)
    ordered = service_for(trained, recording)
    shuffled = service_for(trained, recording)
    rng = np.random.default_rng(0)
    feed = list(chunks(recording, 0.0, 1.6, chunk_s=0.05))
    expected = run(ordered, feed)[1]
    order = [rng.permutation(units.size) for units, _, _ in feed]
    got = run(shuffled, [(u[p], t[p], a) for (u, t, a), p in zip(feed, order)])[1]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)  # spike order is attention-invariant
    assert shuffled.counts.reordered_spikes > 0 and ordered.counts.reordered_spikes == 0
    # a spike older than the last update missed it: dropped and counted, the estimates unchanged
    last = shuffled.next_update - 0.01
    shuffled.receive(np.array([3]), np.array([last - 0.2]), 1.6)
    assert shuffled.counts.late_spikes == 1
    feed = list(chunks(recording, 1.6, 1.8))
    assert np.array_equal(run(shuffled, feed)[1], run(ordered, feed)[1])


def test_unknown_units_are_dropped_counted_and_named_once(recording):
    trained = trained_for(recording)
    wire = [*unit_keys(recording), "elsewhere/rec/u9"]  # the last wire unit is not in the model
    service = DecoderService.for_model(trained, session=session_key_of(recording), wire_units=wire)
    plain = service_for(trained, recording)
    feed = list(chunks(recording, 0.0, 1.3))
    polluted = [(np.r_[u, len(wire) - 1, len(wire) + 5, len(wire) - 1], np.r_[t, [a - 0.002] * 3], a)
                for u, t, a in feed]
    for units, times, arrived in polluted:  # keep times sorted within each chunk
        order = np.argsort(times, kind="stable")
        units[:], times[:] = units[order], times[order]
    np.testing.assert_array_equal(run(service, polluted)[1], run(plain, feed)[1])
    assert service.counts.unknown_unit_spikes == 3 * len(feed)
    named = [e for e in service.take_events() if e["event"] == "unknown_unit"]
    assert sorted(e["wire"] for e in named) == [len(wire) - 1, len(wire) + 5]
    assert {e["unit"] for e in named} == {"elsewhere/rec/u9", None}


def test_a_gap_pauses_the_estimates_and_input_after_it_starts_a_fresh_window(recording):
    trained = trained_for(recording)
    service = service_for(trained, recording, gap_ms=200)
    before, _ = run(service, chunks(recording, 0.0, 1.5))
    assert service.due(1.5 + 0.1) == [] and service.counts.gaps == 0
    assert not service.check_gap(1.5 + 0.15)
    assert service.check_gap(1.5 + 0.25) and service.counts.gaps == 1
    assert service.due(3.0) == []  # nothing is published while the input is silent
    after, values = run(service, chunks(recording, 3.0, 4.5))
    T = trained.model.config.context_length_s
    assert after[0] == pytest.approx(3.0 + T, abs=0.011)  # a full window of new input first
    assert service.counts.skipped_updates == round((after[0] - before[-1]) / 0.01) - 1
    events = [e["event"] for e in service.take_events()]
    assert events == ["gap", "resumed"]
    fresh = service_for(trained, recording)  # the same as a service that started at 3.0 s
    np.testing.assert_array_equal(values, run(fresh, chunks(recording, 3.0, 4.5))[1])


@pytest.mark.parametrize("jump", [+100.0, -100.0])
def test_a_clock_jump_restarts_the_decoder_on_the_new_times(recording, jump):
    trained = trained_for(recording)
    service = service_for(trained, recording)
    run(service, chunks(recording, 0.0, 1.5))
    shifted = [(u, t + jump + 200.0, a) for u, t, a in chunks(recording, 1.5, 3.0)]
    times, values = run(service, shifted)
    assert service.counts.clock_jumps == 1 and service.counts.gaps == 0
    T = trained.model.config.context_length_s
    assert times[0] == pytest.approx(1.5 + jump + 200.0 + T, abs=0.011)
    fresh = service_for(trained, recording)
    np.testing.assert_array_equal(values, run(fresh, shifted)[1])


def test_without_ticks_updates_wait_for_a_later_spike_or_max_wait(recording):
    trained = trained_for(recording)
    patient = service_for(trained, recording)
    eager = service_for(trained, recording, max_wait_ms=3.0)
    spikes = recording.spikes
    first = spikes.times < 1.2
    for service in (patient, eager):
        service.receive(spikes.unit_index[first], spikes.times[first], 1.2)
    u = patient.next_update
    last = spikes.times[first][-1]
    ready = [t for t in np.arange(u, 2.0, 0.01) if t <= last]
    assert patient.due(1.2) == pytest.approx(ready)  # decoded up to the newest spike only
    assert patient.due(5.0) == pytest.approx(ready) or patient.check_gap(5.0)
    waited = eager.due(last + 0.01 + 0.003 + 1e-6)
    assert len(waited) == len(ready) + 1  # the next grid point too, once max_wait_ms passed


def test_non_finite_times_are_dropped_and_counted(recording):
    service = service_for(trained_for(recording), recording)
    service.receive(np.array([0, 1, TICK]), np.array([0.1, np.nan, np.inf]), 0.1)
    assert service.counts.invalid_samples == 2


# ------------------------------------------------------------------------- real processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _neuropoyo(*argv, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "neuropoyo", *map(str, argv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def _stop(process: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 60) -> tuple[str, str]:
    if process.poll() is None:
        process.send_signal(sig)
    return process.communicate(timeout=timeout)


@pytest.fixture(scope="module")
def model_dir(recording, tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    save_model(trained_for(recording), folder / "model")
    write_recording(recording, folder / "rec.h5")
    return folder


def _served(csv_path) -> tuple[np.ndarray, np.ndarray]:
    table = np.loadtxt(csv_path, delimiter=",", skiprows=1, ndmin=2)
    return table[:, 0], table[:, 1:3]


def _events(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _check_served_equals_the_decoder(recording, model_dir, out: str, err: str) -> dict:
    assert "Traceback" not in err, err
    events = _events(out)
    offset = next(e for e in events if e["event"] == "ready")["time_offset"]
    final = next(e for e in events if e["event"] == "final")
    assert final["late_spikes"] == final["unknown_unit_spikes"] == final["clock_jumps"] == 0
    times, values = _served(model_dir / "served.csv")
    assert times.size >= 20 and final["updates"] == times.size  # fewer when the machine is busy (dropped)
    steps = np.diff(times) / (UPDATE_MS / 1e3)  # on the grid; a step > 1 is a dropped update
    assert np.allclose(steps, np.round(steps)) and np.all(np.round(steps) >= 1)
    assert np.round(steps).sum() - steps.size == final["dropped_updates"]
    expected = reference(trained_for(recording), recording, recording.spikes.times + offset, times)
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-5 * np.max(SCALE.std))
    score = next(e for e in events if e["event"] == "score")
    assert score["scored_updates"] == times.size and np.isfinite(score["r2"])
    return final


def _serve_and_replay(model_dir, transport: list[str]) -> tuple[str, str]:
    name = f"np-test-{os.getpid()}-{time.monotonic_ns()}"
    server = _neuropoyo(
        "serve", "--model", model_dir / "model", *transport, "--spikes", name, "--estimates", name + "-out",
        "--record", model_dir / "served.csv", "--score", model_dir / "rec.h5", "--gap-ms", "2000", "--threads", "1",
    )  # one thread: two stall on a busy 2-core machine (OpenMP waits for a descheduled thread)
    assert server.stderr.readline().startswith("waiting for the")  # torch imported, the model loaded
    replayer = _neuropoyo("replay", model_dir / "rec.h5", *transport, "--spikes", name, "--duration-s", "3")
    _, replay_err = replayer.communicate(timeout=120)
    assert replayer.returncode == 0, replay_err
    time.sleep(0.5)
    out, err = _stop(server)
    assert server.returncode == 0, err  # SIGTERM is the normal way to stop: final figures, status 0
    return out, err


def test_serve_and_replay_over_lsl_publish_the_streaming_decoders_estimates(recording, model_dir):
    pytest.importorskip("pylsl")
    out, err = _serve_and_replay(model_dir, ["--transport", "lsl"])
    final = _check_served_equals_the_decoder(recording, model_dir, out, err)
    assert final["spikes"] > 0 and "decode_ms_p50" in final
    assert "stopped after" in err


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    server = shutil.which("redis-server")
    if server is None:
        message = "redis-server is not installed (Debian: apt-get install redis-server)"
        if os.environ.get("NEUROPOYO_REQUIRE_REDIS"):
            pytest.fail(message)
        pytest.skip(message)
    pytest.importorskip("redis")
    port = _free_port()
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen([server, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(folder)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(timeout=10)


def test_serve_and_replay_over_redis_publish_the_streaming_decoders_estimates(recording, model_dir, redis_url):
    import redis

    out, err = _serve_and_replay(model_dir, ["--transport", "redis", "--redis-url", redis_url])
    _check_served_equals_the_decoder(recording, model_dir, out, err)
    entries = redis.Redis.from_url(redis_url).xrange([k for k in redis.Redis.from_url(redis_url).keys("*-out")][0])
    times, values = _served(model_dir / "served.csv")
    assert len(entries) == times.size
    published = np.array([np.frombuffer(fields[b"estimate"], "<f4") for _, fields in entries])
    np.testing.assert_array_equal(published, values.astype(np.float32))
    assert [np.frombuffer(fields[b"time"], "<f8")[0] for _, fields in entries] == list(times)


def test_serve_survives_and_counts_every_fault_of_a_live_lsl_stream(recording, model_dir):
    """Out-of-order and late spikes, unknown units, a gap, the source vanishing and coming back,
    a clock jump, then Ctrl-C: the service keeps publishing, counts each, and exits cleanly."""
    pytest.importorskip("pylsl")
    from neuropoyo.streaming.replay import describe, replay
    from neuropoyo.streaming.transport import LSLSpikeOutlet, local_clock

    name = f"np-faults-{os.getpid()}-{time.monotonic_ns()}"
    description = describe(recording)
    description.units.append("elsewhere/rec/u0")  # wire position U: a unit the model does not know
    U = len(recording.units.ids)
    server = _neuropoyo("serve", "--model", model_dir / "model", "--spikes", name, "--estimates", name + "-out",
                        "--gap-ms", "300", "--record", model_dir / "faults.csv", "--threads", "1")
    assert server.stderr.readline().startswith("waiting for the")
    outlet = LSLSpikeOutlet(name, description)
    assert outlet.wait_for_consumer(30)
    offset = local_clock() + 0.05

    def send(start: float, seconds: float, shift: float = 0.0) -> None:
        """Send in real time, on a clock ``shift`` seconds ahead of LSL's."""
        replay(recording, outlet, time_offset=offset + shift, start_s=start, duration_s=seconds,
               clock=lambda: local_clock() + shift)

    send(0.0, 1.6)
    spikes = recording.spikes
    keep = (spikes.times >= 1.6) & (spikes.times < 1.62)
    outlet.push(spikes.unit_index[keep][::-1], spikes.times[keep][::-1] + offset)  # out of order
    late, unknown = [0, 1.1], [[U, U + 7], [1.621, 1.622]]  # the last update was at 1.6 s
    outlet.push(np.r_[late[0], unknown[0], TICK], np.r_[late[1], unknown[1], 1.63] + offset)
    send(1.63, 0.6)
    time.sleep(0.8)  # a gap
    send(local_clock() - offset, 1.3)
    outlet.close()  # the source vanishes...
    time.sleep(0.8)
    outlet = LSLSpikeOutlet(name, description)  # ...and comes back under the same source id
    assert outlet.wait_for_consumer(30)  # LSL reconnected the service's inlet
    send(local_clock() - offset, 1.5)
    send(local_clock() - offset, 1.5, shift=100.0)  # the source's clock jumps 100 s ahead
    time.sleep(0.3)
    out, err = _stop(server, signal.SIGINT)
    assert server.returncode == 0 and "Traceback" not in err, err
    events = _events(out)
    final = next(e for e in events if e["event"] == "final")
    assert final["reordered_spikes"] > 0 and final["late_spikes"] == 1 and final["unknown_unit_spikes"] == 2
    assert final["gaps"] >= 2 and final["skipped_updates"] > 0  # the pause, the vanished source
    assert final["clock_jumps"] == 1 and final["invalid_samples"] == 0
    kinds = [e["event"] for e in events]
    for kind in ("unknown_unit", "gap", "resumed", "clock_jump", "stats"):
        assert kind in kinds
    times, _ = _served(model_dir / "faults.csv")
    assert times.size == final["updates"] and np.all(np.diff(times) > 0)
    assert times[-1] > times[0] + 100  # still publishing after the jump
    assert (times > offset + 100).sum() > 20


def test_a_missing_stream_or_session_is_a_clear_error(recording, model_dir, capsys):
    from neuropoyo.cli import main
    from neuropoyo.errors import ConfigError

    pytest.importorskip("pylsl")
    assert main(["serve", "--model", str(model_dir / "model"), "--spikes", "nobody-here", "--wait-s", "0.5"]) == 2
    assert "no LSL stream named 'nobody-here' found within 0.5 s (is the source running?)" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="the model knows no session 'lab/other'"):
        DecoderService.for_model(trained_for(recording), session="lab/other")
    with pytest.raises(ConfigError, match="none of the stream's 1 units"):
        DecoderService.for_model(trained_for(recording), session=session_key_of(recording), wire_units=["x/y/z"])
