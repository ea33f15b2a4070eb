"""Rules shared by the importers of other formats (NWB, brainsets): input checks, dropping data
outside the recorded domain, the repairs a file may need (and strict imports refuse), disjoint
trials, unit areas and writing a folder of recordings."""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, TypeVar

import numpy as np

from neuropoyo.data.directory import recording_path, write_dataset
from neuropoyo.data.intervals import Intervals
from neuropoyo.data.recording import Recording, TimeSeries, Traces, Units
from neuropoyo.errors import DataError

AREA_COLUMNS = ("brain_area", "location")
Sampled = TypeVar("Sampled", TimeSeries, Traces)  # rows of values on timestamps


class DroppedDataWarning(UserWarning):
    """Data in an imported file fell outside the recorded domain and was left out."""


class RepairedDataWarning(UserWarning):
    """An imported file needed repairs (times out of order sorted; NaN times, NaN behavior rows or
    trace frames, repeated behavior or frame timestamps or empty trials dropped); a strict import
    refuses such files."""


@dataclass
class Repairs:
    """The repairs made while importing one file (``path``; or the name of the function whose
    arguments are imported, e.g. "from_arrays"). ``strict``: the first one needed is a DataError."""

    path: Path | str
    strict: bool = False
    made: list[str] = field(default_factory=list)

    def need(self, count: int, problem: str, repair: str, fix: str) -> None:
        """Repair ``count`` items with ``problem`` (e.g. "spike time(s) out of order") by ``repair``
        ("sorted"); under ``strict``, a DataError naming the file and ``fix`` instead."""
        if not count:
            return
        if self.strict:
            raise DataError(
                f"{self.path}: {count} {problem}; {fix} (or import without --strict: the "
                f"importer then repairs them: {repair})"
            )
        self.made.append(f"{count} {problem} ({repair})")

    def warn(self) -> None:
        """One RepairedDataWarning listing the repairs made, pointing at the importer's caller."""
        if self.made:
            warnings.warn(
                f"{self.path}: repaired {', '.join(self.made)}; strict=True (--strict) refuses "
                "files that need repairs",
                RepairedDataWarning,
                stacklevel=3,
            )


def existing_file(path: str | Path, kind: str) -> Path:
    """``path`` as a Path; FileNotFoundError naming the ``kind`` of file when it is absent."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {kind} file")
    return path


def time_sorted(
    times: np.ndarray,
    paired: tuple[np.ndarray, ...],
    what: str,
    repairs: Repairs,
    *,
    out_of_order: int | None = None,
) -> tuple[np.ndarray, ...]:
    """(times, *paired) without NaN/inf times and sorted by time (stable).

    Both are repairs of the items ``what`` names (e.g. "spike"): dropping the non-finite times, and
    sorting ``out_of_order`` items (default: the decreasing steps between finite times; pass the
    count when the stored order is not meant to be global, e.g. spike times stored per unit).
    """
    finite = np.isfinite(times)
    repairs.need(
        int((~finite).sum()), f"{what} time(s) NaN or infinite", "dropped",
        f"remove them from {what} times",
    )
    times, paired = times[finite], tuple(array[finite] for array in paired)
    if out_of_order is None:
        out_of_order = int((np.diff(times) < 0).sum())
    repairs.need(
        out_of_order, f"{what} time(s) out of order", "sorted",
        f"sort {what} times (and their paired values with the same permutation)",
    )
    order = np.argsort(times, kind="stable")
    return (times[order], *(array[order] for array in paired))


def sorted_trials(trials: Intervals, path: Path | str, fix: str, repairs: Repairs) -> Intervals:
    """``trials`` sorted by start without empty ones (a repair: dropped); DataError (ending with
    ``fix``) for trials with NaN/inf bounds, ending before they start, or overlapping."""
    bad = ~(np.isfinite(trials.start) & np.isfinite(trials.end)) | (trials.end < trials.start)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: {int(bad.sum())} trial(s) with NaN/inf bounds or ending before they start "
            f"(first: row {i}, [{trials.start[i]}, {trials.end[i]})); {fix}"
        )
    empty = trials.end == trials.start
    repairs.need(
        int(empty.sum()), "trial(s) of zero length", "dropped",
        f"{fix}: give every trial a positive length",
    )
    trials = trials.select(~empty)
    trials = trials.select(np.argsort(trials.start, kind="stable"))
    overlap = np.flatnonzero(trials.start[1:] < trials.end[:-1])
    if overlap.size:
        i = int(overlap[0])
        raise DataError(
            f"{path}: trials {i} [{trials.start[i]}, {trials.end[i]}) and {i + 1} "
            f"[{trials.start[i + 1]}, {trials.end[i + 1]}) overlap ({overlap.size} overlap(s) in "
            f"all); neuropoyo needs disjoint trials: {fix}"
        )
    return trials


def brain_areas(units: Units) -> tuple[str, ...]:
    """Distinct non-empty area names of the units (first of AREA_COLUMNS present), sorted."""
    column = next((units.columns[c] for c in AREA_COLUMNS if c in units.columns), None)
    if column is None:
        return ()
    return tuple(sorted({str(area) for area in column if str(area)}))


# ------------------------------------------------------------------------------------ domain


def _overlapping(spans: Intervals, domain: Intervals) -> np.ndarray:
    """(K,) bool: whether each span overlaps the sorted, disjoint ``domain``."""
    k = np.searchsorted(domain.end, spans.start, side="right")
    hit = k < len(domain)
    hit[hit] = domain.start[k[hit]] < spans.end[hit]
    return hit


def _recorded_samples(
    name: str, what: str, stream: Sampled, domain: Intervals, dropped: list[str], repairs: Repairs
) -> Sampled:
    """``stream`` (a behavior TimeSeries or Traces, named ``name``; its rows are ``what``:
    "sample", "frame") without rows outside ``domain`` (counts go to ``dropped``), and, as repairs,
    without rows holding NaN or repeating the timestamp of the row kept before them (time-sorted
    input: the first of each timestamp stays)."""
    keep = domain.contains(stream.timestamps)
    if not keep.all():
        dropped.append(f"{int((~keep).sum())} {name} {what}(s) outside the domain")
    if stream.values.dtype.kind == "f":
        nan = keep & np.isnan(stream.values).any(axis=1)
        repairs.need(
            int(nan.sum()), f"{name} {what}(s) holding NaN", "dropped",
            f"drop the NaN rows of {name} (and mark their span as a gap of the recorded domain)",
        )
        keep &= ~nan
    kept = np.flatnonzero(keep)
    repeated = kept[1:][np.diff(stream.timestamps[kept]) == 0]
    repairs.need(
        repeated.size, f"{name} {what}(s) repeating a timestamp", "dropped, kept the first",
        f"keep one {name} {what} per timestamp",
    )
    keep[repeated] = False
    return stream.select(keep)


def keep_recorded(recording: Recording, path: Path | str, repairs: Repairs) -> Recording:
    """``recording`` without spikes, samples, frames and trials outside its domain, warning with
    counts, and without NaN or repeated-timestamp behavior samples and trace frames (``repairs``).

    Called by an importer's read function, so the warning points at that function's caller.
    """
    domain, dropped = recording.domain, []
    inside = domain.contains(recording.spikes.times)
    if not inside.all():
        dropped.append(f"{int((~inside).sum())} spike(s) outside the domain")
    behavior = {
        name: _recorded_samples(name, "sample", stream, domain, dropped, repairs)
        for name, stream in recording.behavior.items()
    }
    traces = _recorded_samples("traces", "frame", recording.traces, domain, dropped, repairs)
    overlapping = _overlapping(recording.trials, domain)
    if not overlapping.all():
        dropped.append(f"{int((~overlapping).sum())} trial(s) outside the domain")
    if dropped:
        warnings.warn(f"{path}: dropped {', '.join(dropped)}", DroppedDataWarning, stacklevel=3)
    return dataclasses.replace(
        recording,
        spikes=recording.spikes.select(inside),
        traces=traces,
        behavior=behavior,
        trials=recording.trials.select(overlapping),
    )


# ----------------------------------------------------------------------------------- writing


def _check_targets(ids: list[tuple[Path, str]], out_dir: Path) -> None:
    """Raise when two files share a recording id or a file would be written over itself."""
    seen: dict[str, Path] = {}
    for file, name in ids:
        if name in seen:
            raise DataError(
                f"{seen[name]} and {file} both give recording id {name!r}; give one of them "
                "another recording id or prepare them into different folders"
            )
        seen[name] = file
        if recording_path(out_dir, name).resolve() == file.resolve():
            raise DataError(
                f"{file}: preparing it into {out_dir} would overwrite it; pick another --out folder"
            )


def prepare_files(
    files: Iterable[str | Path],
    out_dir: str | Path,
    *,
    kind: str,
    recording_id: Callable[[Path], str],
    read: Callable[[Path], Recording],
    split_seed: int = 0,
) -> list[Path]:
    """Read each file with ``read`` and write it to ``out_dir/<recording id>.h5``.

    All files are checked to exist (``kind`` names them in the error) and to give distinct
    recording ids (``recording_id(file)``) before anything is written. Returns the written paths.
    """
    files = [existing_file(file, kind) for file in files]
    _check_targets([(file, recording_id(file)) for file in files], Path(out_dir))
    return write_dataset((read(file) for file in files), out_dir, split_seed=split_seed)
