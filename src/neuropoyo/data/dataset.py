"""Datasets of many recordings: folders, files, globs, or a dataset file with per-source options.

``--data`` takes any mix of recording files, folders (their ``*.h5``), globs (``'data/*/*.h5'``,
quoted so the shell leaves them alone) and dataset files (``.yaml``/``.yml``). A dataset file lists
sources; each names recordings (paths, folders or globs, relative to the file's folder) and the
options that apply to them::

    sources:
      - recordings: chewie/*.h5          # one pattern or a list of them
        readouts: [cursor_vel]           # the behavior streams decoded (default: every readout the file holds)
        normalize: lab_scalar            # behavior normalisation (default: the run's loss.normalize)
        interval_weights: {reach: 5.0}   # loss weights of named intervals (default: loss.interval_weights)
        evaluation_intervals: [reach]    # the samples scored (default: evaluation.intervals of the task)
        weight: 2.0                      # w times the recording's training windows per epoch (default 1)
      - recordings: [mihi/day1.h5, mihi/day2.h5]

Unknown keys are errors naming the file and the key; the old spellings ``streams`` and ``scale``
are read as ``readouts`` and ``normalize`` with a warning. A recording named twice is an error. A source
without options reads exactly as a folder given on the command line. A training run records its
:class:`Dataset` (absolute paths, options) in ``run.json``; ``--resume`` and ``evaluate`` read it back
with :func:`run_dataset`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
import warnings
from typing import Any, ClassVar, Mapping, Sequence

from neuropoyo.data.directory import expand_recordings, no_recordings
from neuropoyo.data.normalize import SCALES
from neuropoyo.data.store import SUFFIX
from neuropoyo.errors import ConfigError, DataError, RenamedWarning
from neuropoyo.settings import from_mapping, read_yaml, weights_by_name

DATASET_SUFFIXES = (".yaml", ".yml")
RUN_INFO = "run.json"  # a training run's record: config, dataset, version (neuropoyo.training.loop)
WHOLE_SPLIT = "all"  # evaluation interval name meaning every sample of the split


def _names(value: Any, field: str) -> tuple[str, ...]:
    """A non-empty list of non-empty names (a single name is taken as a list of one)."""
    names = (value,) if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"{field} must be a name or a non-empty list of names, got {value!r}")
    return tuple(names)


@dataclass(frozen=True)
class SourceOptions:
    """How the recordings of one source are used; None: the run config's setting.

    readouts: the behavior streams decoded (readouts of the model, each held by every recording of
        the source); None: every readout the recording holds.
    normalize: behavior z-scoring (``per_dim`` or ``lab_scalar``, see LossConfig); recordings of one
        brainset share a scale, so they must agree on it.
    interval_weights: interval name -> loss weight, replacing ``loss.interval_weights``.
    evaluation_intervals: the interval names whose samples are scored (``all``: the whole split,
        ``trials``: the trials), replacing ``evaluation.intervals`` for these recordings.
    weight: sampling weight >= 0; a recording gets ``ceil(weight * d / context)`` training windows
        per epoch for d seconds of training data (0: never trained on, still evaluated).
    """

    readouts: tuple[str, ...] | None = None
    normalize: str | None = None
    interval_weights: Mapping[str, float] | None = None
    evaluation_intervals: tuple[str, ...] | None = None
    weight: float = 1.0
    RENAMED: ClassVar[dict[str, str]] = {"streams": "readouts", "scale": "normalize"}

    def __post_init__(self):
        if self.readouts is not None:
            object.__setattr__(self, "readouts", _names(self.readouts, "readouts"))
        if self.normalize is not None and self.normalize not in SCALES:
            raise ConfigError(f"normalize must be one of {', '.join(SCALES)}; got {self.normalize!r}")
        if self.interval_weights is not None:
            weights = weights_by_name(self.interval_weights, field="interval_weights")
            object.__setattr__(self, "interval_weights", weights)
        if self.evaluation_intervals is not None:
            names = _names(self.evaluation_intervals, "evaluation_intervals")
            if WHOLE_SPLIT in names and len(names) > 1:
                raise ConfigError(
                    f"evaluation_intervals {list(names)}: {WHOLE_SPLIT!r} (the whole split) cannot be "
                    "combined with other names"
                )
            object.__setattr__(self, "evaluation_intervals", names)
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) or not (
            math.isfinite(self.weight) and self.weight >= 0
        ):
            raise ConfigError(f"weight must be a finite number >= 0, got {self.weight!r}")
        object.__setattr__(self, "weight", float(self.weight))

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON-ready values (lists, not tuples)."""
        data = dataclasses.asdict(self)
        for key in ("readouts", "evaluation_intervals"):
            if data[key] is not None:
                data[key] = list(data[key])
        return data


@dataclass(frozen=True)
class Dataset:
    """Recording files, each with the options of its source (``options[i]`` for ``paths[i]``)."""

    paths: tuple[Path, ...]
    options: tuple[SourceOptions, ...]

    def __post_init__(self):
        if len(self.paths) != len(self.options):
            raise ValueError(f"dataset: {len(self.options)} options for {len(self.paths)} recordings")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def weights(self) -> tuple[float, ...]:
        return tuple(o.weight for o in self.options)

    def without_evaluation_intervals(self) -> "Dataset":
        """The same recordings scoring the model's evaluation intervals (e.g. under --eval-intervals)."""
        options = tuple(dataclasses.replace(o, evaluation_intervals=None) for o in self.options)
        return Dataset(self.paths, options)

    def to_dict(self) -> dict[str, Any]:
        """{"sources": [...]} with absolute paths, consecutive recordings of equal options in one
        source; :func:`dataset_from_dict` reads it back."""
        sources: list[dict[str, Any]] = []
        for path, options in zip(self.paths, self.options):
            fields = options.to_dict()
            if sources and {k: v for k, v in sources[-1].items() if k != "recordings"} == fields:
                sources[-1]["recordings"].append(str(path.resolve()))
            else:
                sources.append({"recordings": [str(path.resolve())], **fields})
        return {"sources": sources}


def dataset_from_dict(data: Any, *, source: str, base: Path | None = None) -> Dataset:
    """The dataset of a mapping ``{sources: [...]}`` (a dataset file's content); relative patterns
    are read from ``base`` (default: the working directory). Errors name ``source`` and the key."""
    if not isinstance(data, Mapping) or "sources" not in data:
        raise ConfigError(
            f"{source}: a dataset file holds 'sources:', a list of {{recordings: PATTERN, ...options}}; "
            f"got {type(data).__name__ if not isinstance(data, Mapping) else sorted(data)}"
        )
    unknown = sorted(set(data) - {"sources"})
    if unknown:
        raise ConfigError(f"{source}: unknown dataset key(s) {unknown}; a dataset file holds 'sources'")
    sources = data["sources"]
    if not isinstance(sources, list) or not sources:
        raise ConfigError(f"{source}: sources must be a non-empty list, got {sources!r}")
    paths: list[Path] = []
    options: list[SourceOptions] = []
    for k, entry in enumerate(sources):
        where = f"sources[{k}]"
        if not isinstance(entry, Mapping) or "recordings" not in entry:
            raise ConfigError(f"{source}: {where} must be a mapping with 'recordings' (a path, folder or glob)")
        patterns = _names(entry["recordings"], f"{source}: {where}.recordings")
        given = {key: value for key, value in entry.items() if key != "recordings"}
        found = from_mapping(SourceOptions, given, source=source, section=where)
        for pattern in patterns:
            full = Path(pattern).expanduser()
            full = full if base is None else base / full
            try:
                matched = expand_recordings(full)
            except FileNotFoundError as error:
                raise FileNotFoundError(f"{source}: {where}.recordings: {error}") from None
            if not matched:
                raise FileNotFoundError(f"{source}: {where}.recordings: no {SUFFIX} file in {full}")
            paths.extend(matched)
            options.extend([found] * len(matched))
    return _checked(Dataset(tuple(paths), tuple(options)))


def read_dataset_file(path: str | Path) -> Dataset:
    """The dataset of a dataset YAML file, its patterns relative to its folder."""
    path = Path(path)
    return dataset_from_dict(read_yaml(path), source=str(path), base=path.parent)


def _checked(dataset: Dataset) -> Dataset:
    """``dataset``, or a DataError naming a recording file listed twice."""
    seen: set[Path] = set()
    for path in dataset.paths:
        key = path.resolve()
        if key in seen:
            raise DataError(f"{path}: recording listed twice in the dataset; name each file once")
        seen.add(key)
    return dataset


def is_dataset_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in DATASET_SUFFIXES and Path(path).is_file()


def load_dataset(data: Dataset | Sequence[str | Path]) -> Dataset:
    """The recordings of ``data``: a Dataset as it is, or paths, each a recording file, a folder,
    a glob or a dataset file (see the module docs); recordings outside dataset files take the
    default options."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (str, Path)):
        raise TypeError(f"load_dataset: pass a list of paths, not the single path {str(data)!r}")
    paths: list[Path] = []
    options: list[SourceOptions] = []
    for item in data:
        part = (
            read_dataset_file(item)
            if is_dataset_file(item)
            else Dataset(tuple(found := expand_recordings(item)), (SourceOptions(),) * len(found))
        )
        paths.extend(part.paths)
        options.extend(part.options)
    if not paths:
        raise no_recordings(data)
    return _checked(Dataset(tuple(paths), tuple(options)))


def recording_paths(data: Sequence[str | Path]) -> list[Path]:
    """The recording files of ``data`` (as :func:`load_dataset`), for commands without per-source options."""
    return list(load_dataset(data).paths)


def run_dataset(run_dir: str | Path) -> Dataset:
    """The dataset a training run recorded in ``run_dir/run.json`` (the model folders inside a run
    look one level up); older runs recorded a plain list of files, or options under their old names."""
    run_dir = Path(run_dir)
    for folder in (run_dir, run_dir.parent):
        path = folder / RUN_INFO
        if path.is_file():
            info = json.loads(path.read_text())
            if info.get("dataset") is not None:
                with warnings.catch_warnings():  # neuropoyo wrote the file: no user to tell
                    warnings.simplefilter("ignore", RenamedWarning)
                    return dataset_from_dict(info["dataset"], source=str(path))
            if info.get("data"):
                return load_dataset(info["data"])
            break
    raise FileNotFoundError(
        f"{run_dir}: no {RUN_INFO} recording the run's data; name the recordings with --data"
    )
