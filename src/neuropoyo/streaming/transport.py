"""The wire: how spikes reach the decoder service and how its estimates leave, over Lab Streaming
Layer (pylsl) or Redis streams (BRAND-style graphs).

One format on both transports. A spike is a sample ``(unit, time)``: ``unit`` the spike's position
in the stream's unit list (int32), ``time`` seconds on the source's clock (float64). A sample whose
unit is :data:`TICK` (-1) carries no spike: it says the source has sent every spike before its
time, so the service may decode up to there without waiting (a source that sends no ticks is
decoded when a later spike, or ``max_wait_ms`` of silence, shows the time has passed). The stream
describes itself with a :class:`StreamDescription`: its unit ids, session, and for replays the
offset from recording time to stream time. Estimates are samples of ``D`` float32 values stamped
with the time they refer to (the end of the decoded window).

- LSL: spikes are an irregular-rate int32 stream of one channel whose sample time stamps are the
  spike times (type ``Spikes``); the description is in the stream's ``desc`` (``session``,
  ``time_offset``, ``recording``, ``units/unit``...). Estimates: one float32 channel per readout
  dimension at the update rate (type ``Behavior``). Times are LSL's ``local_clock()``
  (CLOCK_MONOTONIC on Linux); inlets apply LSL's clock correction, so sources on other hosts work.
- Redis: spikes are entries of a stream key with fields ``units`` (int32 little-endian bytes) and
  ``times`` (float64 little-endian bytes), many per entry; the description is JSON under the key
  ``<stream>:info``. Estimates: entries of the output key with fields ``time`` (float64 bytes),
  ``estimate`` (float32 bytes, D values) and ``readout``. Times are the producer's clock; on one
  host use ``time.monotonic()``, the clock LSL uses.

The transports' packages are imported when a transport is made (the ``serve`` extra).
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from neuropoyo.errors import ConfigError

TICK = -1  # the unit of a sample that carries time only
SPIKE_TYPE, ESTIMATE_TYPE = "Spikes", "Behavior"


@dataclass
class StreamDescription:
    """What a spike stream says of itself: unit ids in wire order, the session they belong to, and
    for a replay the offset such that stream time = recording time + ``time_offset``."""

    units: list[str] = field(default_factory=list)
    session: str = ""
    time_offset: float | None = None
    recording: str = ""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> "StreamDescription":
        data = json.loads(text)
        return cls(
            units=[str(u) for u in data.get("units", [])], session=str(data.get("session", "")),
            time_offset=None if data.get("time_offset") is None else float(data["time_offset"]),
            recording=str(data.get("recording", "")),
        )


class SpikeSource(Protocol):
    description: StreamDescription

    def pull(self, timeout_s: float) -> tuple[np.ndarray, np.ndarray]:
        """(units (S,) int64, times (S,) float64) received since the last pull; waits up to
        ``timeout_s`` for the first sample, and returns as soon as one is there."""

    def close(self) -> None: ...


class EstimateSink(Protocol):
    def push(self, time: float, estimate: np.ndarray) -> None: ...

    def close(self) -> None: ...


def _import(module: str):
    if module == "pylsl":  # liblsl reads its settings when loaded: quiet unless the user chose otherwise
        os.environ.setdefault("LSLAPICFG", str(Path(__file__).with_name("lsl_api.cfg")))
    try:
        return __import__(module)
    except ImportError as error:
        raise ConfigError(
            f"the {module} package is needed for this transport: pip install 'neuropoyo[serve]'"
        ) from error


# ----------------------------------------------------------------------------------------- LSL


def local_clock() -> float:
    """LSL's clock, in seconds: the time base of spikes and estimates on one host."""
    return _import("pylsl").local_clock()


class LSLSpikeOutlet:
    """Publishes spikes (and ticks) as an LSL stream named ``name``."""

    def __init__(self, name: str, description: StreamDescription, *, source_id: str | None = None):
        pylsl = _import("pylsl")
        info = pylsl.StreamInfo(name, SPIKE_TYPE, 1, pylsl.IRREGULAR_RATE, pylsl.cf_int32, source_id or name)
        desc = info.desc()
        desc.append_child_value("session", description.session)
        desc.append_child_value("recording", description.recording)
        if description.time_offset is not None:
            desc.append_child_value("time_offset", repr(description.time_offset))
        units = desc.append_child("units")
        for unit in description.units:
            units.append_child_value("unit", unit)
        self._outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=60)

    def wait_for_consumer(self, timeout_s: float) -> bool:
        return bool(self._outlet.wait_for_consumers(timeout_s))

    def push(self, units: np.ndarray, times: np.ndarray) -> None:
        if len(units):
            self._outlet.push_chunk(np.asarray(units, np.int32).reshape(-1, 1), list(map(float, times)))

    def close(self) -> None:
        del self._outlet


class LSLSpikeSource:
    """Reads the LSL spike stream named ``name`` (resolved within ``wait_s``); a source that
    vanishes is reconnected by LSL when a stream of the same source id comes back. Times from
    another host are put on this host's clock (LSL's clock correction); on one host they are
    taken as sent."""

    def __init__(self, name: str, *, wait_s: float = 10.0):
        pylsl = _import("pylsl")
        found = pylsl.resolve_byprop("name", name, minimum=1, timeout=wait_s)
        if not found:
            raise ConfigError(f"no LSL stream named {name!r} found within {wait_s:g} s (is the source running?)")
        info = found[0]
        if info.type() != SPIKE_TYPE or info.channel_count() != 1:
            raise ConfigError(
                f"LSL stream {name!r} is of type {info.type()!r} with {info.channel_count()} channels; "
                f"a spike stream is of type {SPIKE_TYPE!r} with one int32 channel (the unit)"
            )
        remote = info.hostname() != socket.gethostname()
        flags = pylsl.proc_clocksync if remote else pylsl.proc_none
        self._inlet = pylsl.StreamInlet(info, max_buflen=60, recover=True, processing_flags=flags)
        self.description = _lsl_description(self._inlet.info(timeout=wait_s).desc())
        self._wait_s, self._open = wait_s, False

    def pull(self, timeout_s: float) -> tuple[np.ndarray, np.ndarray]:
        if not self._open:  # the data connection opens at the first pull: the consumer is ready then
            self._inlet.open_stream(timeout=self._wait_s)
            self._open = True
        samples, stamps = self._inlet.pull_chunk(timeout=timeout_s, max_samples=65536, min_samples=1)
        if not stamps:
            return np.zeros(0, np.int64), np.zeros(0)
        return np.asarray(samples, np.int64).reshape(-1), np.asarray(stamps, np.float64)

    def close(self) -> None:
        self._inlet.close_stream()


def _lsl_description(desc) -> StreamDescription:
    units, unit = [], desc.child("units").child("unit")
    while not unit.empty():
        units.append(unit.child_value())
        unit = unit.next_sibling("unit")
    offset = desc.child_value("time_offset")
    return StreamDescription(
        units=units, session=desc.child_value("session"), time_offset=float(offset) if offset else None,
        recording=desc.child_value("recording"),
    )


class LSLEstimateSink:
    """Publishes estimates as an LSL stream: ``len(labels)`` float32 channels at ``rate_hz``."""

    def __init__(self, name: str, labels: Sequence[str], rate_hz: float, *, readout: str, source_id: str):
        pylsl = _import("pylsl")
        info = pylsl.StreamInfo(name, ESTIMATE_TYPE, len(labels), rate_hz, pylsl.cf_float32, source_id)
        desc = info.desc()
        desc.append_child_value("readout", readout)
        channels = desc.append_child("channels")
        for label in labels:
            channels.append_child("channel").append_child_value("label", label)
        self._outlet = pylsl.StreamOutlet(info, chunk_size=1)

    def push(self, time: float, estimate: np.ndarray) -> None:
        self._outlet.push_sample(np.asarray(estimate, np.float32), time, True)

    def close(self) -> None:
        del self._outlet


# --------------------------------------------------------------------------------------- Redis


def redis_client(url: str):
    """A Redis client for ``url`` (e.g. ``redis://localhost:6379/0``), checked with a PING."""
    redis = _import("redis")
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as error:
        raise ConfigError(f"cannot reach Redis at {url}: {error}") from error
    return client


class RedisSpikeOutlet:
    """Appends spikes (and ticks) to the Redis stream ``key``; the description under ``key:info``."""

    def __init__(self, url: str, key: str, description: StreamDescription):
        self._client, self._key = redis_client(url), key
        self._client.set(f"{key}:info", description.to_json())

    def push(self, units: np.ndarray, times: np.ndarray) -> None:
        if len(units):
            fields = {"units": np.asarray(units, "<i4").tobytes(), "times": np.asarray(times, "<f8").tobytes()}
            self._client.xadd(self._key, fields, maxlen=100_000, approximate=True)

    def close(self) -> None:
        self._client.delete(f"{self._key}:info")  # a later consumer waits for the next source's
        self._client.close()


class RedisSpikeSource:
    """Reads the Redis stream ``key`` from entries added after it was opened, once its source has
    described it under ``key:info`` (waiting up to ``wait_s``; then without a description)."""

    def __init__(self, url: str, key: str, *, wait_s: float = 10.0):
        self._client, self._key = redis_client(url), key
        deadline = time.monotonic() + wait_s
        while (info := self._client.get(f"{key}:info")) is None and time.monotonic() < deadline:
            time.sleep(0.05)  # the source describes itself when it starts
        self.description = StreamDescription.from_json(info) if info else StreamDescription()
        newest = self._client.xrevrange(key, count=1)
        self._last = newest[0][0] if newest else b"0-0"

    def pull(self, timeout_s: float) -> tuple[np.ndarray, np.ndarray]:
        block = max(1, int(timeout_s * 1e3))
        reply = self._client.xread({self._key: self._last}, count=10_000, block=block)
        units, times = [], []
        for _, entries in reply or []:
            for entry_id, fields in entries:
                self._last = entry_id
                units.append(np.frombuffer(fields[b"units"], "<i4"))
                times.append(np.frombuffer(fields[b"times"], "<f8"))
        if not units:
            return np.zeros(0, np.int64), np.zeros(0)
        return np.concatenate(units).astype(np.int64), np.concatenate(times)

    def close(self) -> None:
        self._client.close()


class RedisEstimateSink:
    """Appends estimates to the Redis stream ``key``."""

    def __init__(self, url: str, key: str, *, readout: str):
        self._client, self._key, self._readout = redis_client(url), key, readout

    def push(self, time: float, estimate: np.ndarray) -> None:
        fields = {"time": np.float64(time).tobytes(), "estimate": np.asarray(estimate, "<f4").tobytes(),
                  "readout": self._readout}
        self._client.xadd(self._key, fields, maxlen=100_000, approximate=True)

    def close(self) -> None:
        self._client.close()
