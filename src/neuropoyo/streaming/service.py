"""The decoder service: spikes in from a stream, a behavior estimate out at a fixed update rate.

:class:`DecoderService` holds a :class:`StreamingDecoder` and decides, from the samples it is given,
when to decode and what to do with imperfect input; :func:`serve` is the loop that feeds it from a
transport (:mod:`.transport`) and publishes its estimates. A rig's own Python loop may call
:meth:`DecoderService.step` itself (or :meth:`~DecoderService.receive`, :meth:`~DecoderService.due`
and :meth:`~DecoderService.update`, the three parts of a step).

Timing. Updates lie on a grid ``t0 + k * update_ms`` in the source's time; the estimate at ``u`` is
the decoder's on the window ``[u - T, u)`` and is stamped ``u``. The first update is one context
length ``T`` after the first sample (a full window). Update ``u`` runs as soon as the source has
shown its time passed ``u`` (a spike or a tick at or after ``u``), or, with ``max_wait_ms``, once the
service's clock reads ``u + max_wait_ms`` with no such sample (sources that send no ticks).

Imperfect input, each counted in :attr:`DecoderService.counts` and reported as an event:

- a spike older than the last update (it missed the windows it belonged to): dropped, ``late_spikes``;
- spikes out of order but in time: sorted, ``reordered_spikes``;
- a unit the model does not know, or a wire position outside the stream's unit list: dropped,
  ``unknown_unit_spikes`` (an ``unknown_unit`` event names each unit once);
- no samples for ``gap_ms`` of the service's clock (the source stalled or vanished): estimates
  pause (``gaps``). If the input comes back with its times continuing (it was held up, nothing
  lost), the service catches up. If its times skip more than ``gap_ms`` (samples were lost, or the
  source restarted), the decoder starts afresh with a full window, since windows that overlap the
  gap would read missing data as silence; the grid points that passed are ``skipped_updates``;
- samples whose time moved against the service's clock by more than ``jump_s`` (a source restarted
  on another clock, a clock step): the decoder starts afresh from the new times, ``clock_jumps``;
- a sample with a non-finite time: dropped, ``invalid_samples``;
- the service itself falling behind (several updates due at once): only the newest is decoded and
  published, ``dropped_updates``; a late estimate is of no use to a closed loop.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from neuropoyo.errors import ConfigError
from neuropoyo.streaming.decoder import StreamingDecoder
from neuropoyo.streaming.transport import TICK, EstimateSink, SpikeSource
from neuropoyo.trained import TrainedModel


TIME_TOLERANCE_S = 1e-6  # a sample this close before a grid time counts as at it (float rounding)


@dataclass
class Counts:
    """What the service has seen, from its start."""

    spikes: int = 0  # spikes decoded (pushed to the decoder)
    updates: int = 0  # estimates published
    late_spikes: int = 0
    reordered_spikes: int = 0
    unknown_unit_spikes: int = 0
    invalid_samples: int = 0
    skipped_updates: int = 0  # grid times that passed in a gap
    dropped_updates: int = 0  # grid times passed over to catch up after falling behind
    gaps: int = 0
    clock_jumps: int = 0


@dataclass
class Update:
    """One published estimate: ``time`` (source time it refers to), ``values`` (D,), when its last
    input arrived and when it was published (service clock, s), and the decoder's time (ms)."""

    time: float
    values: np.ndarray
    arrived: float
    decode_ms: float
    published: float = math.nan


def session_units(trained: TrainedModel, session: str) -> list[str]:
    """The model's unit ids of ``session`` (``brainset/recording``), in vocabulary order."""
    prefix = f"{session}/"
    units = [unit for unit in trained.unit_vocab.to_list() if unit.startswith(prefix)]
    if session not in trained.session_vocab or not units:
        raise ConfigError(
            f"the model knows no session {session!r} (it knows {_some(trained.session_vocab.to_list())}); "
            "adapt it to the recording first (neuropoyo finetune)"
        )
    return units


def _some(ids: Sequence[str], n: int = 5) -> str:
    ids = list(ids)
    return ", ".join(ids[:n]) + (f" and {len(ids) - n} more" if len(ids) > n else "")


class DecoderService:
    """Decides when to decode a spike stream and keeps going through imperfect input.

    decoder: the streaming decoder (its units are ``decoder_units``, by id).
    wire_units: (W,) the unit ids of the stream's wire positions (a position whose id is not in
        ``decoder_units`` is an unknown unit).
    update_ms: time between estimates, in the source's time.
    max_wait_ms: decode ``u`` once the service's clock reads ``u + max_wait_ms`` even when no
        later sample arrived (None: only when one does).
    gap_ms: input silence, on the service's clock, that counts as a gap.
    jump_s: disagreement between the source's time and the service's clock that counts as a jump.
    clock: the service's clock in seconds (LSL's ``local_clock``, CLOCK_MONOTONIC on Linux).
    """

    def __init__(
        self,
        decoder: StreamingDecoder,
        *,
        decoder_units: Sequence[str],
        wire_units: Sequence[str],
        update_ms: float = 10.0,
        max_wait_ms: float | None = None,
        gap_ms: float = 500.0,
        jump_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if update_ms <= 0 or gap_ms <= 0 or jump_s <= 0 or (max_wait_ms is not None and max_wait_ms < 0):
            raise ConfigError("serve: update-ms, gap-ms and jump-s must be > 0 and max-wait-ms >= 0")
        if len(decoder_units) != decoder.num_units:
            raise ConfigError(f"serve: {len(decoder_units)} unit ids for a decoder of {decoder.num_units} units")
        position = {unit: k for k, unit in enumerate(decoder_units)}
        self.wire_units = list(wire_units)
        self._wire_to_decoder = np.array([position.get(unit, -1) for unit in self.wire_units] + [-1], np.int64)
        self.decoder, self.clock = decoder, clock
        self.update_s, self.gap_s, self.jump_s = update_ms / 1e3, gap_ms / 1e3, jump_s
        self.max_wait_s = None if max_wait_ms is None else max_wait_ms / 1e3
        self.counts = Counts()
        self.events: list[dict] = []  # notable events since the caller last took them
        self._reported_unknown: set[int] = set()
        self._start_over()

    @classmethod
    def for_model(
        cls,
        trained: TrainedModel,
        *,
        session: str,
        wire_units: Sequence[str] | None = None,
        readout: str | None = None,
        dtype: torch.dtype | None = None,
        compile: bool = False,
        backend: str = "torch",
        **timing,
    ) -> "DecoderService":
        """A service for ``session`` of ``trained``: the decoder's units are the wire units the model
        knows (all of the session's units when ``wire_units`` is None, in the model's order), the
        estimates in the stream's own units (the model's scale for the session's brainset). dtype,
        compile, backend: the decoder's (see :class:`StreamingDecoder`)."""
        known = session_units(trained, session)
        wire = known if wire_units is None else list(wire_units)
        units = [unit for unit in wire if unit in trained.unit_vocab and unit.startswith(f"{session}/")]
        if not units:
            raise ConfigError(
                f"none of the stream's {len(wire)} units ({_some(wire)}) is a unit of session {session!r} "
                f"that the model knows ({_some(known)})"
            )
        decoder = StreamingDecoder(
            trained.model, unit_index=trained.unit_vocab.index(units),
            session_index=int(trained.session_vocab.index([session])[0]),
            readout=readout, dtype=dtype, compile=compile, backend=backend,
        )
        scale = trained.normalizer.scale(session.rpartition("/")[0], decoder.readout)
        decoder.set_scale(scale.mean, scale.std)
        return cls(decoder, decoder_units=units, wire_units=wire, **timing)

    # ------------------------------------------------------------------------------- state

    def _start_over(self) -> None:
        """Forget the stream: an empty decoder, no grid until the next sample."""
        self.decoder.reset()
        self._pending_units: list[np.ndarray] = []
        self._pending_times: list[np.ndarray] = []
        self._grid_start = math.nan  # the first update time
        self._next = 0  # index of the next update on the grid
        self._last_time = -math.inf  # the last update's time: older spikes are late
        self._newest = -math.inf  # the newest sample time seen
        self._newest_arrival = math.nan  # when it arrived (service clock)
        self._newest_spike = -math.inf  # the newest spike time taken
        self._stalled = False

    def _event(self, kind: str, **fields) -> None:
        self.events.append({"event": kind, "clock": self.clock(), **fields})

    def take_events(self) -> list[dict]:
        events, self.events = self.events, []
        return events

    @property
    def next_update(self) -> float:
        """The source time of the next estimate (NaN before the first sample)."""
        return self._grid_start + self._next * self.update_s

    # ------------------------------------------------------------------------------- input

    def receive(self, units: np.ndarray, times: np.ndarray, arrived: float | None = None) -> None:
        """Take samples from the wire: units (S,) wire positions or TICK, times (S,) source seconds."""
        units = np.asarray(units, np.int64).reshape(-1)
        times = np.asarray(times, np.float64).reshape(-1)
        if times.size == 0:
            return
        arrived = self.clock() if arrived is None else arrived
        finite = np.isfinite(times)
        if not finite.all():
            self.counts.invalid_samples += int((~finite).sum())
            units, times = units[finite], times[finite]
            if times.size == 0:
                return
        if self._jumped(arrived, times):
            self.counts.clock_jumps += 1
            self._event("clock_jump", moved_s=round(float(times.max() - self._expected(arrived)), 6))
            self._start_over()
        elif math.isfinite(self._newest) and times.min() > self._newest + self.gap_s:
            self._resume(arrived, times)
        elif self._stalled:  # the input was only held up (or the service was): nothing was lost
            self._stalled = False
            self._event("resumed", silent_s=round(arrived - self._newest_arrival, 3), skipped_updates=0)
        if math.isnan(self._grid_start):
            self._grid_start = float(times.min()) + self.decoder.context_length_s
        if times.max() >= self._newest:
            self._newest, self._newest_arrival = float(times.max()), arrived
        spikes = units != TICK
        units, times = units[spikes], times[spikes]
        late = times < self._last_time
        if late.any():
            self.counts.late_spikes += int(late.sum())
            units, times = units[~late], times[~late]
        rows = self._wire_to_decoder[np.where((units >= 0) & (units < len(self.wire_units)), units, -1)]
        unknown = rows < 0
        if unknown.any():
            self.counts.unknown_unit_spikes += int(unknown.sum())
            for wire in set(units[unknown].tolist()) - self._reported_unknown:
                self._reported_unknown.add(wire)
                name = self.wire_units[wire] if 0 <= wire < len(self.wire_units) else None
                self._event("unknown_unit", wire=wire, unit=name)
            rows, times = rows[~unknown], times[~unknown]
        if times.size:
            before = np.maximum.accumulate(np.r_[self._newest_spike, times])
            self.counts.reordered_spikes += int((times < before[:-1]).sum())
            self._newest_spike = float(before[-1])
            self._pending_units.append(rows)
            self._pending_times.append(times)

    def _expected(self, now: float) -> float:
        """The source time the service expects at its clock reading ``now``."""
        return self._newest + (now - self._newest_arrival)

    def _jumped(self, arrived: float, times: np.ndarray) -> bool:
        """Samples far from where the source's time should be by now (both ways)."""
        if not math.isfinite(self._newest):
            return False
        expected = self._expected(arrived)
        if times.max() > self._newest + self.jump_s and times.max() > expected + self.jump_s:
            return True  # ahead of the clock: a faster-than-real-time source never gets this far
        return times.max() < self._newest - self.jump_s  # behind what it already sent

    def _resume(self, arrived: float, times: np.ndarray) -> None:
        """Input after a gap in the source's time: the grid points that passed are skipped, the
        decoder starts afresh."""
        if not self._stalled:
            self.counts.gaps += 1  # a gap seen in the times only (the service had no chance to see it)
        silent = arrived - self._newest_arrival
        restart = float(times.min()) + self.decoder.context_length_s  # the first update after it
        passed = 0 if math.isnan(self._grid_start) else max(0, round((restart - self.next_update) / self.update_s))
        self.counts.skipped_updates += passed
        self._event("resumed", silent_s=round(silent, 3), skipped_updates=passed)
        self._start_over()

    def check_gap(self, now: float | None = None) -> bool:
        """Whether the input has been silent for ``gap_ms`` at service time ``now`` (reports the
        pause once; estimates wait until input comes back)."""
        now = self.clock() if now is None else now
        if not self._stalled and math.isfinite(self._newest) and now - self._newest_arrival > self.gap_s:
            self._stalled = True
            self.counts.gaps += 1
            self._event("gap", since_s=round(now - self._newest_arrival, 3), source_time=self._newest)
        return self._stalled

    # ------------------------------------------------------------------------------ output

    def due(self, now: float | None = None) -> list[float]:
        """The update times ready at service time ``now``, oldest first."""
        now = self.clock() if now is None else now
        if math.isnan(self._grid_start) or self.check_gap(now):
            return []
        ready, k = [], self._next
        while True:
            u = self._grid_start + k * self.update_s
            if u > self._newest + TIME_TOLERANCE_S and not (
                self.max_wait_s is not None and now >= u + self.max_wait_s and u <= self._newest + self.gap_s
            ):
                return ready
            ready.append(u)
            k += 1

    def step(self, units: np.ndarray, times: np.ndarray, now: float | None = None) -> list[Update]:
        """Receive a batch of samples (possibly none) at service time ``now`` and decode what is due:
        the newest due update of each continuous stretch of the batch (a batch pulled after a
        stall may hold the end of one stretch and the start of the next, across a gap or a jump)."""
        now = self.clock() if now is None else now
        units = np.asarray(units, np.int64).reshape(-1)
        times = np.asarray(times, np.float64).reshape(-1)
        breaks = np.flatnonzero(np.abs(np.diff(times)) > self.gap_s) + 1
        published = []
        for part_units, part_times in zip(np.split(units, breaks), np.split(times, breaks)):
            self.receive(part_units, part_times, now)
            ready = self.due(now)
            if ready:
                published.append(self.update(ready[-1]))
        return published

    def update(self, u: float) -> Update:
        """Decode the window ending at ``u``, a grid time from :meth:`due`: push the pending spikes
        before ``u``, then estimate. Grid times before ``u`` not decoded yet are dropped (a service
        that fell behind publishes the newest estimate, not stale ones): ``dropped_updates``."""
        k = round((u - self._grid_start) / self.update_s)
        if k < self._next or u != self._grid_start + k * self.update_s:
            raise ValueError(f"update: {u!r} s is not a grid time at or after the next update {self.next_update!r} s")
        self.counts.dropped_updates += k - self._next
        rows, times = self._take_pending(u)
        start = time.perf_counter()
        self.decoder.push(rows, times)
        values = self.decoder.estimate(u)
        decode_ms = (time.perf_counter() - start) * 1e3
        self.counts.spikes += times.size
        self.counts.updates += 1
        self._last_time, self._next = u, k + 1
        return Update(time=u, values=values, arrived=self._newest_arrival, decode_ms=decode_ms)

    def _take_pending(self, u: float) -> tuple[np.ndarray, np.ndarray]:
        """The pending spikes before ``u``, sorted by time (stable); the rest stay pending."""
        if not self._pending_times:
            return np.zeros(0, np.int64), np.zeros(0)
        rows, times = np.concatenate(self._pending_units), np.concatenate(self._pending_times)
        order = np.argsort(times, kind="stable")
        rows, times = rows[order], times[order]
        cut = int(np.searchsorted(times, u, side="left"))
        self._pending_units, self._pending_times = ([rows[cut:]], [times[cut:]]) if cut < times.size else ([], [])
        return rows[:cut], times[:cut]


# ---------------------------------------------------------------------------------- the loop


@dataclass
class Latencies:
    """Per-update timings (ms) of one reporting period or of the whole run."""

    decode: list[float]
    input_to_publish: list[float]  # from the arrival of the update's last input to its publication
    publish: list[float]

    @staticmethod
    def empty() -> "Latencies":
        return Latencies([], [], [])

    def summary(self) -> dict[str, float]:
        out = {}
        for name, values in asdict(self).items():
            if values:
                out[f"{name}_ms_p50"] = round(float(np.median(values)), 3)
                out[f"{name}_ms_p99"] = round(float(np.percentile(values, 99)), 3)
                out[f"{name}_ms_max"] = round(float(np.max(values)), 3)
        return out


def serve(
    service: DecoderService,
    source: SpikeSource,
    sink: EstimateSink,
    *,
    stop: threading.Event,
    log: Callable[[dict], None],
    on_update: Callable[[Update], None] | None = None,
    duration_s: float | None = None,
    poll_ms: float = 1.0,
) -> dict:
    """Run ``service`` on ``source`` until ``stop`` is set (or ``duration_s`` passes), publishing
    the newest due estimate to ``sink`` whenever one is due; ``log`` gets each event and, every second, a ``stats`` record of that
    second (counts and latency percentiles); returns the final record (counts and latencies of the
    whole run)."""
    clock = service.clock
    begun = last_report = clock()
    period, whole = Latencies.empty(), Latencies.empty()
    reported = Counts()
    while not stop.is_set() and (duration_s is None or clock() - begun < duration_s):
        units, times = source.pull(poll_ms / 1e3)
        for update in service.step(units, times, clock()):
            decoded = clock()
            sink.push(update.time, update.values)
            update.published = clock()
            for latencies in (period, whole):
                latencies.decode.append(update.decode_ms)
                latencies.input_to_publish.append((update.published - update.arrived) * 1e3)
                latencies.publish.append((update.published - decoded) * 1e3)
            if on_update is not None:
                on_update(update)
        for event in service.take_events():
            log(event)
        now = clock()
        if now - last_report >= 1.0:
            counts = asdict(service.counts)
            log({"event": "stats", "clock": now, **{k: v - getattr(reported, k) for k, v in counts.items()},
                 **period.summary()})
            reported, period, last_report = Counts(**counts), Latencies.empty(), now
    for event in service.take_events():
        log(event)
    final = {"event": "final", "clock": clock(), "seconds": round(clock() - begun, 3),
             **asdict(service.counts), **whole.summary()}
    log(final)
    return final
