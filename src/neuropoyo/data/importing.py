"""Rules shared by the importers of other formats (NWB, brainsets): input checks, dropping data
outside the recorded domain, disjoint trials, unit areas and writing a folder of recordings."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from neuropoyo.data.directory import recording_path, write_dataset
from neuropoyo.data.intervals import Intervals
from neuropoyo.data.recording import Recording, TimeSeries, Units
from neuropoyo.errors import DataError

AREA_COLUMNS = ("brain_area", "location")


class DroppedDataWarning(UserWarning):
    """Data in an imported file fell outside the recorded domain (or was NaN, or repeated a
    behavior timestamp) and was left out."""


def existing_file(path: str | Path, kind: str) -> Path:
    """``path`` as a Path; FileNotFoundError naming the ``kind`` of file when it is absent."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such {kind} file")
    return path


def sorted_trials(trials: Intervals, path: Path, fix: str) -> Intervals:
    """``trials`` sorted by start; DataError (ending with ``fix``) when two of them overlap."""
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


def _recorded_samples(name: str, stream: TimeSeries, domain: Intervals, dropped: list[str]):
    """``stream`` without samples outside ``domain``, holding NaN or repeating the timestamp of
    the sample kept before them (time-sorted input: the first of each timestamp stays); counts go
    to ``dropped``."""
    keep = domain.contains(stream.timestamps)
    if not keep.all():
        dropped.append(f"{int((~keep).sum())} {name} sample(s) outside the domain")
    if stream.values.dtype.kind == "f":
        nan = np.isnan(stream.values).any(axis=1)
        if nan.any():
            dropped.append(f"{int(nan.sum())} {name} sample(s) holding NaN")
        keep &= ~nan
    kept = np.flatnonzero(keep)
    repeated = kept[1:][np.diff(stream.timestamps[kept]) == 0]
    if repeated.size:
        dropped.append(f"{repeated.size} {name} sample(s) repeating a timestamp (kept the first)")
        keep[repeated] = False
    return stream.select(keep)


def keep_recorded(recording: Recording, path: Path) -> Recording:
    """``recording`` without spikes, samples and trials outside its domain (and without NaN or
    repeated-timestamp behavior samples), warning with counts.

    Called by an importer's read function, so the warning points at that function's caller.
    """
    domain, dropped = recording.domain, []
    inside = domain.contains(recording.spikes.times)
    if not inside.all():
        dropped.append(f"{int((~inside).sum())} spike(s) outside the domain")
    behavior = {
        name: _recorded_samples(name, stream, domain, dropped)
        for name, stream in recording.behavior.items()
    }
    overlapping = _overlapping(recording.trials, domain)
    if not overlapping.all():
        dropped.append(f"{int((~overlapping).sum())} trial(s) outside the domain")
    if dropped:
        warnings.warn(f"{path}: dropped {', '.join(dropped)}", DroppedDataWarning, stacklevel=3)
    return dataclasses.replace(
        recording,
        spikes=recording.spikes.select(inside),
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
