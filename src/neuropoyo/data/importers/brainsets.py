"""Import brainsets / torch_brain session files (the temporaldata HDF5 layout) with h5py alone.

``brainsets prepare <brainset>`` writes ``<brainset.id>/<session.id>.h5`` per session with
``torch_brain.data.Data.to_hdf5``: every group carries ``attrs["object"]`` (``Data``,
``IrregularTimeSeries``, ``RegularTimeSeries``, ``Interval`` or ``ArrayDict``), str arrays are
stored as ASCII bytes, description fields (``brainset.id``, ``session.id``, ``subject.species``,
...) are group attributes, and each time series has a ``domain`` group (start/end). What is read,
and the rules applied:

- **Spikes** (``spikes``: ``timestamps``, ``unit_index``) and **units** (``units.id`` strings; every
  other per-unit array becomes a unit column) are required.
- **Behavior** (``behavior``): series named ``group.field`` (``cursor.vel``, ``hand.vel``,
  ``finger.pos_3d``), stream name ``group_field`` (``cursor_vel``); by default the first of
  :data:`DEFAULT_BEHAVIOR` the file has. An ``IrregularTimeSeries`` gives its ``timestamps``; a
  ``RegularTimeSeries`` gives ``domain.start[0] + i / sampling_rate``, keeping only the samples its
  (possibly gappy) domain marks as real. No unit is recorded (temporaldata stores none).
- **Domain**: ``spikes.domain`` intersected with each behavior series' domain. temporaldata's
  automatic domains end on the last sample, so a span end that is a sample time is moved up to the
  next float to keep that sample in neuropoyo's half-open spans. Outside the domain is a gap, not
  silence: spikes, samples and trials there are dropped with one :class:`DroppedDataWarning` per
  file.
- **Repairs** (one :class:`RepairedDataWarning` per file counts them; ``strict=True`` makes each a
  :class:`DataError` instead): spike or sample times out of order are sorted; NaN/inf times, samples
  holding NaN, samples repeating a timestamp (the first of each time is kept) and trials of zero
  length are dropped.
- **Trials** (``trials``, optional): start/end plus every per-trial column (times stay absolute).
  Overlapping trials, trials ending before they start and NaN bounds are errors.
- **Sub-intervals**: every ``Interval`` inside ``movement_phases`` (name without its ``_period``
  suffix: ``reach``, ``hold``, ``return``, ``random``) and every other ``Interval`` at the root
  (``cursor_outlier_segments``, ``nlb_eval_intervals``, ...), start/end only.
- **Splits**: the file's ``train_domain`` / ``valid_domain`` / ``test_domain`` (those present),
  each cut to the domain; a file without any gets :func:`neuropoyo.data.splits.assign_splits`.
- **Metadata**: recording id = ``session.id`` (else the file stem), brainset = ``brainset.id``
  (else the stem's first ``_`` word), subject = ``subject.id``, species = ``subject.species``,
  task = ``session.task`` (e.g. ``REACHING``; else ``"unknown"``). Every attribute of the
  ``brainset``, ``subject``, ``session`` and ``device`` groups is kept in ``info.extra`` as
  ``<group>_<attribute>``. Times are kept as stored (relative to the root ``absolute_start``,
  0 for brainsets files).

**Vocabulary words.** :func:`neuropoyo.tokens.vocab.session_key_of` gives ``brainset.id/session.id`` and
:func:`neuropoyo.tokens.vocab.unit_keys` gives ``brainset.id/session.id/units.id``, the words torch_brain
puts in a POYO model's vocabularies for these files: torch_brain 0.1's ``Dataset`` (recording ids
``brainset/session``, unit ids prefixed ``brainset/session/``, the convention of the published POYO
checkpoints), and torch_brain 0.2's brainset datasets (e.g. ``PerichMillerPopulation2018``, whose
unit ids are ``session.id/units.id``) inside a ``NestedSpikingDataset`` keyed by ``brainset.id``
(recording ids ``brainset.id/<file stem>``, the stem being ``session.id``). A checkpoint importer
can therefore keep torch_brain's words as neuropoyo ids.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import h5py
import numpy as np

from neuropoyo.data.importers.common import (
    DroppedDataWarning,
    RepairedDataWarning,
    Repairs,
    brain_areas,
    existing_file,
    keep_recorded,
    prepare_files,
    sorted_trials,
    time_sorted,
)
from neuropoyo.data.intervals import Intervals
from neuropoyo.data.recording import (
    SPLIT_NAMES,
    Recording,
    RecordingInfo,
    Spikes,
    TimeSeries,
    Units,
)
from neuropoyo.data.splits import assign_splits
from neuropoyo.data.validate import validate_recording
from neuropoyo.errors import DataError, MissingKeyError

__all__ = [
    "DEFAULT_BEHAVIOR", "DroppedDataWarning", "RepairedDataWarning", "prepare_brainsets",
    "read_brainsets",
]

DEFAULT_BEHAVIOR = ("cursor.vel", "hand.vel")
_KIND = "brainsets"
_SERIES = ("IrregularTimeSeries", "RegularTimeSeries")
_NOT_FIELDS = ("timestamps", "timestamp_indices_1s")  # series datasets that are not behavior
_DESCRIPTIONS = ("brainset", "subject", "session", "device")
_PHASES, _PHASE_SUFFIX = "movement_phases", "_period"
_SPLIT_GROUPS = {name: f"{name}_domain" for name in SPLIT_NAMES}
_NOT_SUB_INTERVALS = ("domain", "trials", *_SPLIT_GROUPS.values())
_REWRITE = "write the file with torch_brain (Data.to_hdf5) or `brainsets prepare`"
# What h5py raises on damaged files, found by fuzzing (tests/test_fuzz_importers.py).
_DAMAGED = (OSError, KeyError, RuntimeError, ValueError, TypeError)


# ------------------------------------------------------------------------------------ layout


@contextmanager
def _open(path: Path) -> Iterator[h5py.File]:
    """The file open for reading, once checked to be a temporaldata ``Data`` file; what h5py raises
    on damaged contents while it is open is a DataError."""
    if not h5py.is_hdf5(path):
        raise DataError(f"{path}: not an HDF5 file; brainsets writes one .h5 file per session")
    try:
        with h5py.File(path, "r") as file:
            if _object(file) != "Data":
                raise DataError(
                    f"{path}: not a brainsets/temporaldata file (its root has no attrs['object'] "
                    f"== 'Data'); {_REWRITE}"
                )
            yield file
    except DataError:
        raise
    except _DAMAGED as error:
        raise DataError(
            f"{path}: damaged file, reading it failed ({type(error).__name__}: {error}); "
            f"{_REWRITE} again"
        ) from error


def _object(node) -> str | None:
    """The temporaldata class a group was written from (``attrs["object"]``), or None."""
    value = node.attrs.get("object") if isinstance(node, h5py.Group) else None
    return value.decode() if isinstance(value, bytes) else value


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _array(dataset: h5py.Dataset) -> np.ndarray:
    """A dataset's values, strings (fixed or variable length bytes) as a numpy str array."""
    if h5py.check_string_dtype(dataset.dtype) is not None:
        return np.asarray(dataset.asstr()[()], dtype=str)
    return dataset[()]


def _datasets(group: h5py.Group) -> list[str]:
    return [name for name, node in group.items() if isinstance(node, h5py.Dataset)]


def _read(group: h5py.Group, names: Sequence[str], path: Path, need: str) -> dict[str, np.ndarray]:
    """name -> array for ``names`` of ``group``, which must exist and have one row per item."""
    where = group.name.strip("/")
    found = _datasets(group)
    missing = [name for name in names if name not in found]
    if missing:
        raise MissingKeyError(
            f"{path}: no {where}/{missing[0]} (it holds: {', '.join(found) or 'nothing'}); "
            f"neuropoyo needs {need}: {_REWRITE}"
        )
    arrays = {name: _array(group[name]) for name in names}
    rows = {name: len(a) if a.ndim else 0 for name, a in arrays.items()}
    first = names[0]
    for name in names[1:]:
        if rows[name] != rows[first]:
            raise DataError(
                f"{path}: {where}/{name} has {rows[name]} rows but {where}/{first} has "
                f"{rows[first]}; every array of {where} needs one row per item: {_REWRITE}"
            )
    return arrays


def _group(file: h5py.File, name: str, kinds: Sequence[str], path: Path, need: str) -> h5py.Group:
    """The group ``name`` written from one of ``kinds``; MissingKeyError naming ``need``."""
    node = file.get(name)
    if _object(node) not in kinds:
        found = ", ".join(sorted(k for k, v in file.items() if _object(v) in kinds)) or "none"
        raise MissingKeyError(
            f"{path}: no {name} group ({' or '.join(kinds)}; groups of that kind: {found}); "
            f"neuropoyo needs {need}: {_REWRITE}"
        )
    return node


def _spans(group: h5py.Group, path: Path) -> Intervals:
    """An ``Interval`` group's start/end, sorted by start and merged where they overlap."""
    arrays = _read(group, ("start", "end"), path, "start and end times")
    spans = Intervals(arrays["start"], arrays["end"])
    spans = spans.select(np.argsort(spans.start, kind="stable"))
    return spans if spans.is_disjoint() else spans.merged()


def _table(group: h5py.Group, skip: Sequence[str], path: Path, need: str) -> dict[str, np.ndarray]:
    """Every dataset of a table group (ArrayDict, Interval) but ``skip``, one row per item."""
    names = [*skip, *(n for n in _datasets(group) if n not in skip)]
    return _read(group, names, path, need)


# --------------------------------------------------------------------------- series and domain


def _closed_ends(domain: Intervals, timestamps: np.ndarray) -> Intervals:
    """``domain`` with span ends that are sample times moved up to the next float."""
    end = np.where(np.isin(domain.end, timestamps), np.nextafter(domain.end, np.inf), domain.end)
    return Intervals(domain.start, end)


def _series_domain(group: h5py.Group, path: Path) -> Intervals:
    """The spans a series covers (its ``domain`` group)."""
    if _object(group.get("domain")) != "Interval":
        raise MissingKeyError(
            f"{path}: no {group.name.strip('/')}/domain; neuropoyo needs the spans each series "
            f"covers: {_REWRITE}"
        )
    return _spans(group["domain"], path)


def _samples(
    group: h5py.Group, field: str, path: Path, repairs: Repairs
) -> tuple[TimeSeries, Intervals]:
    """One field of a series group as (behavior stream, the series' domain)."""
    domain = _series_domain(group, path)
    if _object(group) == "IrregularTimeSeries":
        arrays = _read(group, ("timestamps", field), path, "one timestamp per sample")
        what = f"{group.name.strip('/').replace('/', '.')}.{field} sample"
        timestamps, values = time_sorted(arrays["timestamps"], (arrays[field],), what, repairs)
        return TimeSeries(timestamps, values), _closed_ends(domain, timestamps)
    values = _read(group, (field,), path, "the behavior values")[field]
    if "sampling_rate" not in group.attrs:
        raise MissingKeyError(
            f"{path}: {group.name.strip('/')} has no sampling_rate attribute; neuropoyo needs it "
            f"to time a RegularTimeSeries: {_REWRITE}"
        )
    rate = float(group.attrs["sampling_rate"])
    first = domain.start[0]
    rows = Intervals(np.round((domain.start - first) * rate), np.round((domain.end - first) * rate))
    real = rows.contains(np.arange(len(values)))
    timestamps = first + np.arange(len(values), dtype=np.float64) / rate
    return TimeSeries(timestamps[real], values[real]), domain


def _series_fields(file: h5py.File) -> list[str]:
    """``group.field`` of every behavior-like series field in the file (spikes left out)."""
    found = []

    def visit(name: str, node) -> None:
        if _object(node) in _SERIES and name != "spikes":
            prefix = name.replace("/", ".")
            found.extend(f"{prefix}.{f}" for f in _datasets(node) if f not in _NOT_FIELDS)

    file.visititems(visit)
    return found


def _behavior(
    file: h5py.File, specs: Sequence[str] | None, path: Path, repairs: Repairs
) -> tuple[dict[str, TimeSeries], list[Intervals]]:
    """stream name -> behavior stream for ``specs`` (None: the default), with their domains."""
    found = _series_fields(file)
    if specs is None:
        specs = next(([spec] for spec in DEFAULT_BEHAVIOR if spec in found), None)
        if specs is None:
            raise MissingKeyError(
                f"{path}: no behavior series {' or '.join(DEFAULT_BEHAVIOR)}; found: "
                f"{', '.join(found) or 'none'}; pass --behavior GROUP.FIELD naming one of those"
            )
    streams, domains = {}, []
    for spec in specs:
        if spec not in found:
            raise MissingKeyError(
                f"{path}: no behavior series {spec}; found: {', '.join(found) or 'none'}; "
                "pass --behavior GROUP.FIELD naming one of those"
            )
        group, _, field = spec.rpartition(".")
        stream, domain = _samples(file[group.replace(".", "/")], field, path, repairs)
        streams[spec.replace(".", "_")] = stream
        domains.append(domain)
    return streams, domains


def _spikes(file: h5py.File, path: Path, repairs: Repairs) -> tuple[Spikes, Intervals]:
    """All spikes sorted by time, with ``spikes.domain`` (ends closed over the last spike)."""
    group = _group(file, "spikes", ("IrregularTimeSeries",), path, "spike times")
    arrays = _read(group, ("timestamps", "unit_index"), path, "one unit index per spike")
    times, unit_index = time_sorted(
        arrays["timestamps"], (arrays["unit_index"],), "spike", repairs
    )
    domain = _closed_ends(_series_domain(group, path), times)
    return Spikes(times, unit_index), domain


def _units(file: h5py.File, n_indexed: int, path: Path) -> Units:
    """The unit table: ``units.id`` plus every other per-unit array as a column."""
    group = _group(file, "units", ("ArrayDict",), path, "one string id per unit")
    columns = _table(group, ("id",), path, "one string id per unit")
    ids = columns.pop("id").astype(str)
    if n_indexed > len(ids):
        raise DataError(
            f"{path}: spikes/unit_index refers to unit {n_indexed - 1} but units/id lists "
            f"{len(ids)} unit(s); every spike must point to a row of units: {_REWRITE}"
        )
    return Units(ids, columns)


def _domain(spikes_domain: Intervals, behavior_domains: Iterable[Intervals]) -> Intervals:
    domain = spikes_domain.merged()
    for other in behavior_domains:
        domain = domain.intersect(other.merged())
    return domain


# ------------------------------------------------------------------------- intervals and splits


def _trials(file: h5py.File, path: Path, repairs: Repairs) -> Intervals:
    group = file.get("trials")
    if _object(group) != "Interval":
        return Intervals.empty()
    columns = _table(group, ("start", "end"), path, "start and end times per trial")
    trials = Intervals(columns.pop("start"), columns.pop("end"), columns)
    return sorted_trials(trials, path, "fix trials/start and trials/end", repairs)


def _sub_intervals(file: h5py.File, path: Path) -> dict[str, Intervals]:
    """Named spans: the ``movement_phases`` intervals, then the root's other intervals."""
    named = {}
    phases = file.get(_PHASES)
    if _object(phases) == "Data":
        for name, node in phases.items():
            if _object(node) == "Interval" and name != "domain":
                named[name.removesuffix(_PHASE_SUFFIX)] = _spans(node, path)
    for name, node in file.items():
        if _object(node) == "Interval" and name not in _NOT_SUB_INTERVALS:
            named[name] = _spans(node, path)
    return named


def _file_splits(file: h5py.File, domain: Intervals, path: Path) -> dict[str, Intervals]:
    """The file's own ``<split>_domain`` intervals cut to ``domain`` (empty when it has none)."""
    return {
        name: _spans(file[group], path).intersect(domain)
        for name, group in _SPLIT_GROUPS.items()
        if _object(file.get(group)) == "Interval"
    }


# ----------------------------------------------------------------------------------- metadata


def _descriptions(file: h5py.File) -> dict[str, dict[str, str]]:
    """group -> attribute -> text for the description groups the file has."""
    return {
        group: {
            key: _text(value)
            for key, value in file[group].attrs.items()
            if key not in ("object", "absolute_start")
        }
        for group in _DESCRIPTIONS
        if _object(file.get(group)) == "Data"
    }


def _recording_id(described: dict[str, dict[str, str]], path: Path) -> str:
    return described.get("session", {}).get("id") or path.stem


def _info(file: h5py.File, path: Path, units: Units, recording_id, brainset, task) -> RecordingInfo:
    described = _descriptions(file)
    session, subject = described.get("session", {}), described.get("subject", {})
    return RecordingInfo(
        recording_id=recording_id or _recording_id(described, path),
        brainset=brainset or described.get("brainset", {}).get("id") or path.stem.split("_")[0],
        subject=subject.get("id", ""),
        task=task or session.get("task") or "unknown",
        species=subject.get("species", ""),
        brain_areas=brain_areas(units),
        extra={
            **{
                f"{group}_{key}": value
                for group, attrs in described.items()
                for key, value in attrs.items()
            },
            "source_file": path.name,
        },
    )


# --------------------------------------------------------------------------------------- API


def read_brainsets(
    path: str | Path,
    *,
    behavior: str | Sequence[str] | None = None,
    recording_id: str | None = None,
    brainset: str | None = None,
    task: str | None = None,
    split_seed: int = 0,
    strict: bool = False,
) -> Recording:
    """One brainsets session file as a Recording (rules in the module docstring).

    behavior: ``group.field`` series to load (``()`` for none; None: the first of
    :data:`DEFAULT_BEHAVIOR` present). split_seed: seed of the splits assigned when the file has
    no ``train_domain`` / ``valid_domain`` / ``test_domain``. strict: refuse a file that needs a
    repair (DataError) instead of repairing it with a warning.
    """
    path = existing_file(path, _KIND)
    repairs = Repairs(path, strict)
    specs = (behavior,) if isinstance(behavior, str) else behavior
    with _open(path) as file:
        spikes, spikes_domain = _spikes(file, path, repairs)
        units = _units(file, int(spikes.unit_index.max(initial=-1)) + 1, path)
        streams, behavior_domains = _behavior(file, specs, path, repairs)
        domain = _domain(spikes_domain, behavior_domains)
        recording = Recording(
            info=_info(file, path, units, recording_id, brainset, task),
            spikes=spikes,
            units=units,
            behavior=streams,
            domain=domain,
            trials=_trials(file, path, repairs),
            intervals=_sub_intervals(file, path),
        )
        splits = _file_splits(file, domain, path)
    recording = keep_recorded(recording, path, repairs)
    repairs.warn()
    if splits:
        recording = recording.with_splits(splits)
    else:
        recording = assign_splits(recording, seed=split_seed)
    validate_recording(recording, str(path))
    return recording


def _target_id(path: Path, recording_id: str | None) -> str:
    """The recording id a file will be written under, read without loading its data."""
    if recording_id:
        return recording_id
    with _open(path) as file:
        return _recording_id(_descriptions(file), path)


def prepare_brainsets(
    files: Iterable[str | Path], out_dir: str | Path, *, split_seed: int = 0, **options
) -> list[Path]:
    """Read each file with :func:`read_brainsets` (``options`` passed on), write it to ``out_dir``.

    Returns the written ``<recording_id>.h5`` paths. All files are checked to be brainsets files
    with distinct recording ids before anything is written.
    """
    return prepare_files(
        files,
        out_dir,
        kind=_KIND,
        recording_id=lambda file: _target_id(file, options.get("recording_id")),
        read=lambda file: read_brainsets(file, split_seed=split_seed, **options),
        split_seed=split_seed,
    )
