"""Data directories: folders of ``<recording_id>.h5`` files, one recording per file."""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from neuropoyo.data.intervals import Intervals
from neuropoyo.data.recording import Recording, TimeSeries
from neuropoyo.data.splits import assign_splits, first_minutes, first_trials
from neuropoyo.data.store import SUFFIX, RecordingFile, read_recording, write_recording
from neuropoyo.data.validate import InvalidRecordingError
from neuropoyo.errors import DataError, MissingKeyError


def recording_path(out_dir: str | Path, recording_id: str) -> Path:
    return Path(out_dir) / f"{recording_id}{SUFFIX}"


GLOB_CHARACTERS = "*?["


def expand_recordings(pattern: str | Path) -> list[Path]:
    """The recording files ``pattern`` names, sorted: a file, a folder (its ``*.h5`` one level
    deep) or a glob (``data/*/*.h5``; ``**`` descends any depth) whose matching folders and
    ``*.h5`` files give their recordings, each file once. FileNotFoundError when it names nothing."""
    text = str(pattern)
    if any(c in text for c in GLOB_CHARACTERS) and not Path(text).exists():
        matches = [Path(m) for m in sorted(glob.glob(text, recursive=True))]
        if not matches:
            raise FileNotFoundError(f"{text}: no file or folder matches this pattern")
        found = [
            path
            for match in matches
            if match.is_dir() or match.suffix == SUFFIX
            for path in expand_recordings(match)
        ]
        return list(dict.fromkeys(found))  # a file matched itself and through its folder, once
    path = Path(text)
    if path.is_dir():
        return sorted(path.glob(f"*{SUFFIX}"))
    if path.is_file():
        return [path]
    raise FileNotFoundError(f"{path}: no such file or folder of recordings")


def find_recordings(paths: Sequence[str | Path]) -> list[Path]:
    """Recording files named by ``paths`` (files, folders searched one level deep, or globs), in
    the order given, each folder's or glob's files sorted."""
    found = [path for pattern in paths for path in expand_recordings(pattern)]
    if not found:
        raise no_recordings(paths)
    return found


def no_recordings(paths: Sequence[str | Path]) -> FileNotFoundError:
    """The error for ``paths`` naming no recording at all."""
    return FileNotFoundError(
        f"no {SUFFIX} recordings in {', '.join(map(str, paths))}; "
        "create some with `neuropoyo simulate --out DIR` or `neuropoyo prepare`"
    )


@dataclass
class FileCheck:
    """What :func:`check_recordings` found in one file: fatal problems (it cannot be used) and
    warnings (it can, but probably not as meant)."""

    path: Path
    fatal: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def behavior_holes(stream: TimeSeries, domain: Intervals, min_s: float) -> Intervals:
    """Stretches of at least ``min_s`` of recorded time (inside ``domain``) without a sample of
    ``stream``, sorted."""
    edges = np.concatenate([domain.start[:1], stream.timestamps, domain.end[-1:]])
    wide = np.flatnonzero(np.diff(edges) >= min_s)
    holes = Intervals(edges[wide], edges[wide + 1]).intersect(domain)
    return holes.select(holes.durations() >= min_s)


def check_recordings(paths: Sequence[Path], *, context_s: float = 1.0) -> list[FileCheck]:
    """Every problem of every file, none stopping the others. Fatal: unreadable, not a recording,
    or any :func:`~neuropoyo.data.validate.recording_problems`. Warnings: units without a spike,
    no behavior stream, behavior missing for a whole window of recorded time, less recorded time
    than one context window of ``context_s``."""
    checks = []
    for path in paths:
        check = FileCheck(Path(path))
        checks.append(check)
        try:
            recording = read_recording(path)
        except InvalidRecordingError as error:
            check.fatal.extend(error.problems)
            continue
        except OSError as error:
            check.fatal.append(f"file: cannot be read ({type(error).__name__}: {error})")
            continue
        seen = np.concatenate([recording.spikes.unit_index, recording.traces.unit_index])
        silent = np.setdiff1d(np.arange(len(recording.units)), seen)
        if silent.size:
            ids = ", ".join(map(str, recording.units.ids[silent[:5]]))
            check.warnings.append(
                f"units: {silent.size} of {len(recording.units)} units never fire (e.g. {ids}); "
                "they get START/END tokens only"
            )
        if not recording.behavior:
            check.warnings.append("behavior: no stream; there is nothing to train a readout on or to score")
        for name, stream in recording.behavior.items():
            holes = behavior_holes(stream, recording.domain, context_s)
            if len(holes):
                k = int(np.argmax(holes.durations()))
                check.warnings.append(
                    f"behavior/{name}: no samples in {len(holes)} stretch(es) of recorded time of "
                    f">= {context_s:g} s, {holes.total_duration():.1f} s in all (longest "
                    f"{holes.durations()[k]:.1f} s from {holes.start[k]:.3f} s); windows there "
                    "have no targets: mark such gaps outside the recorded domain (prepare nwb "
                    "--domain behavior) if they are not data"
                )
        recorded = recording.domain.total_duration()
        if recorded < context_s:
            check.warnings.append(
                f"domain: {recorded:.3f} s recorded, shorter than one {context_s:g} s context window; "
                "no training window fits"
            )
    return checks


def stream_dims(paths: Sequence[Path], names: Sequence[str]) -> dict[str, int]:
    """Behavior stream name -> its number of columns, read from the first of ``paths`` holding it."""
    dims: dict[str, int] = {}
    for path in paths:
        with RecordingFile(path) as f:
            dims = f.behavior_dims | dims  # the first file holding a stream gives its width
    missing = [name for name in names if name not in dims]
    if missing:
        raise MissingKeyError(
            f"no recording holds a behavior stream named {', '.join(missing)}; the recordings hold "
            f"{', '.join(sorted(dims)) or 'none'}"
        )
    return {name: dims[name] for name in names}


def stream_classes(paths: Sequence[Path], names: Sequence[str]) -> dict[str, list[str]]:
    """Label stream name -> its class names, for those of ``names`` that are label streams (a
    classification task); DataError when two recordings name the classes of a stream differently."""
    classes: dict[str, tuple[str, ...]] = {}
    for path in paths:
        with RecordingFile(path) as f:
            for name, own in f.behavior_classes.items():
                if name in names and classes.setdefault(name, own) != own:
                    raise DataError(
                        f"{path}: stream {name!r} has classes {list(own)} but another recording has "
                        f"{list(classes[name])}; recordings decoded by one readout share its classes"
                    )
    return {name: list(c) for name, c in classes.items()}


def few_shot_spans(
    paths: Sequence[Path], *, trials: int | None = None, minutes: float | None = None
) -> list[Intervals] | None:
    """The training spans of each recording cut to its first ``trials`` trials or ``minutes``
    minutes (one of them; None when both are None: the whole training split)."""
    if trials is not None and minutes is not None:
        raise ValueError("few_shot_spans: give trials or minutes, not both")
    if trials is None and minutes is None:
        return None
    spans = []
    for path in paths:
        with RecordingFile(path) as f:
            train = f.splits["train"]
            if trials is not None:
                spans.append(first_trials(train, f.trials, trials, source=str(path)))
            else:
                spans.append(first_minutes(train, minutes, source=str(path)))
    return spans


def write_dataset(
    recordings: Iterable[Recording], out_dir: str | Path, *, split_seed: int = 0
) -> list[Path]:
    """Assign splits (unless present) and write each recording atomically to ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for recording in recordings:
        if not recording.splits:
            recording = assign_splits(recording, seed=split_seed)
        paths.append(write_recording(recording, recording_path(out_dir, recording.recording_id)))
    return paths
