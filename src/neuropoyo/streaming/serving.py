"""What ``neuropoyo serve`` and ``neuropoyo replay`` run: a model directory served on a named
transport, a recording file replayed on one.

The pieces are in :mod:`.service` (when to decode, imperfect input, the loop), :mod:`.transport`
(LSL and Redis) and :mod:`.replay` (pacing a recording); these two functions put them together
from names, as a command line gives them.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from neuropoyo.data.store import read_recording
from neuropoyo.errors import ConfigError
from neuropoyo.io import write_text_atomic
from neuropoyo.streaming import transport
from neuropoyo.streaming.replay import LEAD_S, describe, replay, score_replayed
from neuropoyo.streaming.service import DecoderService, Update, serve
from neuropoyo.tokens.vocab import session_key_of, unit_keys
from neuropoyo.trained import load_model

DTYPES = {"float32": None, "bfloat16": torch.bfloat16}
Say = Callable[[str], None]


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def serve_model(
    model: str | Path,
    *,
    transport_name: str = "lsl",
    spikes: str = "neuropoyo-spikes",
    estimates: str = "neuropoyo-estimates",
    redis_url: str = "redis://localhost:6379/0",
    session: str | None = None,
    recording_info: str | Path | None = None,
    units: Sequence[str] | None = None,
    readout: str | None = None,
    update_ms: float = 10.0,
    max_wait_ms: float | None = None,
    gap_ms: float = 500.0,
    jump_s: float = 1.0,
    wait_s: float = 10.0,
    dtype: str = "float32",
    compile: bool = False,
    backend: str = "torch",
    threads: int | None = None,
    duration_s: float | None = None,
    record: str | Path | None = None,
    score: str | Path | None = None,
    stop: threading.Event | None = None,
    log: Callable[[dict], None] = print,
    say: Say = _say,
) -> dict:
    """Serve ``model`` on the spike stream ``spikes`` of ``transport_name`` ("lsl" or "redis"),
    publishing on ``estimates``, until ``stop`` is set or ``duration_s`` passes. The session and the
    wire's unit ids: ``session``/``units`` first, then ``recording_info``'s, then the stream's own.
    record: a CSV of every estimate and its timings; score: a recording file whose replay is being
    served, to report the R2 of the estimates. Returns the final record of :func:`.service.serve`
    (with "r2" and "scored_updates" when scoring)."""
    if transport_name not in ("lsl", "redis"):
        raise ConfigError(f"serve: transport must be lsl or redis, got {transport_name!r}")
    if threads:
        torch.set_num_threads(threads)
    trained = load_model(model)
    say(f"waiting for the {transport_name} spike stream {spikes!r}")
    if transport_name == "redis":
        source = transport.RedisSpikeSource(redis_url, spikes, wait_s=wait_s)
    else:
        source = transport.LSLSpikeSource(spikes, wait_s=wait_s)
    if recording_info is not None:
        info = read_recording(recording_info)
        session, units = session or session_key_of(info), units or unit_keys(info)
    session = session or source.description.session
    units = list(units or source.description.units) or None
    if not session:
        raise ConfigError("serve: the stream names no session: give the session or a recording-info file")
    service = DecoderService.for_model(
        trained, session=session, wire_units=units, readout=readout, dtype=DTYPES[dtype], compile=compile,
        backend=backend, update_ms=update_ms, max_wait_ms=max_wait_ms, gap_ms=gap_ms, jump_s=jump_s,
        **({"clock": transport.local_clock} if transport_name == "lsl" else {}),
    )
    readout = service.decoder.readout
    dims = trained.model.config.readouts[readout]
    if transport_name == "redis":
        sink = transport.RedisEstimateSink(redis_url, estimates, readout=readout)
    else:
        sink = transport.LSLEstimateSink(estimates, [f"{readout}_{k}" for k in range(dims)], 1e3 / update_ms,
                                         readout=readout, source_id=f"{estimates}@{session}")
    known = service.decoder.num_units
    say(f"serving {readout} of {session} from {transport_name} stream {spikes!r} on {estimates!r} every "
        f"{update_ms:g} ms ({known} of the stream's {len(service.wire_units)} units known to the model); "
        "Ctrl-C to stop")
    log({"event": "ready", "session": session, "readout": readout, "units": known,
         "unknown_units": len(service.wire_units) - known, "time_offset": source.description.time_offset})
    served: list[Update] = []
    try:
        final = serve(service, source, sink, stop=stop or threading.Event(), log=log, duration_s=duration_s,
                      on_update=served.append if (record or score) else None)
    finally:
        source.close()
        sink.close()
    if record:
        write_text_atomic(record, _csv(served, readout, dims))
    if score:
        offset = source.description.time_offset
        if offset is None:
            raise ConfigError("serve: scoring needs a replayed stream (one that states its time_offset)")
        times = np.array([u.time for u in served])
        values = np.stack([u.values for u in served]) if served else np.zeros((0, dims))
        final.update(score_replayed(read_recording(score), readout, times, values, offset))
        log({"event": "score", "r2": final["r2"], "scored_updates": final["scored_updates"]})
    return final


def _csv(served: list[Update], readout: str, dims: int) -> str:
    header = ",".join(["time", *(f"{readout}_{k}" for k in range(dims)), "arrived", "published", "decode_ms"])
    rows = [",".join(map(repr, [u.time, *map(float, u.values), u.arrived, u.published, u.decode_ms])) for u in served]
    return "\n".join([header, *rows]) + "\n"


def replay_file(
    path: str | Path,
    *,
    transport_name: str = "lsl",
    spikes: str = "neuropoyo-spikes",
    redis_url: str = "redis://localhost:6379/0",
    speed: float = 1.0,
    chunk_ms: float = 10.0,
    start_s: float | None = None,
    duration_s: float | None = None,
    wait_for_consumer_s: float = 10.0,
    stop: threading.Event | None = None,
    say: Say = _say,
) -> dict:
    """Publish the spikes of the recording file ``path`` on the stream ``spikes`` (see
    :func:`.replay.replay`); on LSL, first wait up to ``wait_for_consumer_s`` for a consumer (one
    that comes later joins where the clock is). Returns replay's figures."""
    if transport_name not in ("lsl", "redis"):
        raise ConfigError(f"replay: transport must be lsl or redis, got {transport_name!r}")
    recording = read_recording(path)
    start = recording.start if start_s is None else float(start_s)
    end = recording.end if duration_s is None else start + float(duration_s)
    clock = transport.local_clock if transport_name == "lsl" else time.monotonic
    offset = clock() + LEAD_S - start  # stream time = recording time + offset
    description = describe(recording, time_offset=offset, source=str(path))
    if transport_name == "redis":
        outlet = transport.RedisSpikeOutlet(redis_url, spikes, description)
    else:
        outlet = transport.LSLSpikeOutlet(spikes, description)
        say(f"replaying {recording.recording_id} on LSL stream {spikes!r}; waiting up to "
            f"{wait_for_consumer_s:g} s for a consumer")
        outlet.wait_for_consumer(wait_for_consumer_s)
    begin = max(start, clock() + 0.05 - offset)
    try:
        return replay(recording, outlet, time_offset=offset, speed=speed, chunk_ms=chunk_ms, start_s=begin,
                      duration_s=max(0.0, end - begin), stop=stop, clock=clock)
    finally:
        outlet.close()
