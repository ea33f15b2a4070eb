"""``neuropoyo replay``: publish a recording's spikes on a stream as a rig would, in real time or
faster, so the decoder service can be tried end to end on one machine.

Stream time is recording time plus an offset chosen so that, at ``speed`` 1, a spike is sent when
the stream clock reads its time. The spikes are sent in chunks of ``chunk_ms`` of recording time,
each followed by a tick at the chunk's end (see :mod:`.transport`), after a first tick at the start;
at ``speed`` s a chunk leaves
every ``chunk_ms / s`` milliseconds, its times unchanged (a faster replay runs ahead of the clock).
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Protocol

import numpy as np

from neuropoyo.data.recording import Recording
from neuropoyo.errors import ConfigError
from neuropoyo.evaluation.metrics import r2_score
from neuropoyo.streaming.transport import TICK, StreamDescription
from neuropoyo.tokens.vocab import session_key_of, unit_keys

LEAD_S = 0.5  # stream time runs this far ahead of the clock at the start (consumers connect meanwhile)


class SpikeOutlet(Protocol):
    def push(self, units: np.ndarray, times: np.ndarray) -> None: ...


def describe(recording: Recording, *, time_offset: float | None = None, source: str = "") -> StreamDescription:
    """The stream description of ``recording``'s spikes: unit ids in the unit table's order (the wire
    positions are the recording's unit indices)."""
    return StreamDescription(
        units=unit_keys(recording), session=session_key_of(recording), time_offset=time_offset, recording=source
    )


def replay(
    recording: Recording,
    outlet: SpikeOutlet,
    *,
    time_offset: float,
    speed: float = 1.0,
    chunk_ms: float = 10.0,
    start_s: float | None = None,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> dict:
    """Send the spikes of ``[start_s, start_s + duration_s)`` (recording seconds; default: the whole
    recording) to ``outlet`` with times ``t + time_offset``, chunk by chunk, paced by ``clock``
    (``time.monotonic``, LSL's clock on Linux) so the chunk ending at ``b`` leaves when the clock
    reads ``time_offset + start + (b - start) / speed``. Returns {"spikes", "chunks", "late_ms_p99"
    (how far behind schedule chunks left)}."""
    if speed <= 0 or chunk_ms <= 0:
        raise ConfigError("replay: speed and chunk-ms must be > 0")
    if recording.has_traces:
        raise ConfigError(
            f"replay: {recording.recording_id} holds traces (calcium imaging or binned counts); the wire "
            "format carries spikes only, so replay and serve decode spike recordings"
        )
    start = recording.start if start_s is None else float(start_s)
    end = recording.end if duration_s is None else min(recording.end, start + float(duration_s))
    if not recording.start <= start < end:
        raise ConfigError(
            f"replay: {recording.recording_id} spans {recording.start:.3f}-{recording.end:.3f} s; "
            f"start-s {start:.3f} leaves nothing to send"
        )
    spikes, chunk_s = recording.spikes, chunk_ms / 1e3
    bounds = np.append(np.arange(start, end, chunk_s), end)[1:]
    edges = np.searchsorted(spikes.times, np.r_[start, bounds], side="left")
    t0 = time_offset + start
    outlet.push(np.array([TICK]), np.array([t0]))  # the stream's time starts here: updates fall on chunk ends
    lateness, sent = [], 0
    for k, bound in enumerate(bounds):
        if stop is not None and stop.is_set():
            break
        due = t0 + (bound - start) / speed
        while (wait := due - clock()) > 0:
            time.sleep(min(wait, 0.05))
        lateness.append((clock() - due) * 1e3)
        lo, hi = edges[k], edges[k + 1]
        units = np.append(spikes.unit_index[lo:hi], TICK)
        times = np.append(spikes.times[lo:hi], bound) + time_offset
        outlet.push(units, times)
        sent += hi - lo
    return {"spikes": int(sent), "chunks": len(lateness),
            "late_ms_p99": round(float(np.percentile(lateness, 99)), 3) if lateness else 0.0}


def score_replayed(recording: Recording, readout: str, times: np.ndarray, values: np.ndarray, time_offset: float) -> dict:
    """R2 of estimates served on a replay of ``recording``: times (N,) stream seconds, values (N, D),
    scored against the behavior at ``times - time_offset`` inside the recording's domain."""
    if readout not in recording.behavior:
        raise ConfigError(f"{recording.recording_id}: no behavior stream {readout!r} to score the estimates against")
    at = np.asarray(times, np.float64) - time_offset
    inside = recording.domain.contains(at)
    if inside.sum() < 2:
        return {"r2": None, "scored_updates": int(inside.sum())}
    stream = recording.behavior[readout]
    truth = np.stack([np.interp(at[inside], stream.timestamps, column) for column in stream.values.T], axis=1)
    return {"r2": r2_score(truth, np.asarray(values)[inside]), "scored_updates": int(inside.sum())}
