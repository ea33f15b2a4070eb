"""Many recordings read together: vocabulary rows, behavior scales and the spans of each split.

A :class:`RecordingSet` opens recording files for windowed reads and knows, for each recording, its
global unit and session rows, the behavior scale of its brainset, the streams it decodes and the
options of its source (:mod:`neuropoyo.data.dataset`). It reads windows, keeping a bounded number
of files attached; the transforms (:mod:`neuropoyo.pipeline.transforms`) turn them into tokens.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict, defaultdict
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from neuropoyo.data.dataset import Dataset, SourceOptions
from neuropoyo.data.intervals import Intervals
from neuropoyo.data.normalize import Normalizer, Scale, extreme_acceleration_spans
from neuropoyo.data.recording import TimeSeries
from neuropoyo.data.splits import WHOLE_RECORDING
from neuropoyo.data.store import RecordingFile, open_recording
from neuropoyo.errors import ConfigError, DataError, MissingKeyError
from neuropoyo.pipeline.samplers import Window
from neuropoyo.pipeline.transforms import Sample
from neuropoyo.tokens.vocab import Vocabulary, session_key_of, unit_keys

DEFAULT_MAX_OPEN = 64  # recording files attached (memory-mapped) at a time, per process


class RecordingSet:
    """Recording files with their vocabulary rows, behavior scales and per-source options.

    recordings: a :class:`~neuropoyo.data.dataset.Dataset` (files with the options of their
    source) or recording files (default options). readouts: the model's readouts, behavior stream
    name -> dim, in its readout order (which gives each stream its decoder index); ``streams``
    (default all of them) are the ones read. Each recording decodes the streams its source names
    (default: every one of these it holds) and must hold at least one. unit_vocab / session_vocab:
    the model's vocabularies; ids of these recordings missing from them are appended (``grow``) or
    refused. normalizer: fitted on the training splits when not given, with each source's
    normalisation (default ``normalize``). train_spans: per recording, spans that replace its training split (e.g. a
    few-shot subset); the other splits stay as the files have them.

    Files are opened lazily: construction reads only their headers (units, intervals, layout), and
    at most ``max_open`` of them (None: no limit) stay attached for windowed reads at a time, in
    each process; the least recently read is closed first and opens again when read.
    """

    def __init__(
        self,
        recordings: Dataset | Sequence[str | Path],
        *,
        readouts: Mapping[str, int],
        unit_vocab: Vocabulary | None = None,
        session_vocab: Vocabulary | None = None,
        normalizer: Normalizer | None = None,
        normalize: str = "per_dim",
        grow: bool = True,
        train_spans: Sequence[Intervals] | None = None,
        streams: Sequence[str] | None = None,
        max_open: int | None = DEFAULT_MAX_OPEN,
    ):
        unknown = sorted(set(streams or ()) - set(readouts))
        if unknown:
            raise ValueError(f"recordings: streams {unknown} are not readouts of the model ({list(readouts)})")
        if max_open is not None and max_open < 1:
            raise ValueError(f"recordings: max_open must be >= 1 or None, got {max_open}")
        self.decoder_index = {name: i for i, name in enumerate(readouts) if streams is None or name in streams}
        self.readouts = {name: readouts[name] for name in self.decoder_index}
        if not isinstance(recordings, Dataset):
            paths = tuple(map(Path, recordings))
            recordings = Dataset(paths, (SourceOptions(),) * len(paths))
        self.options: list[SourceOptions] = list(recordings.options)
        self.files: list[RecordingFile] = [open_recording(p) for p in recordings.paths]
        ids = [f.recording_id for f in self.files]
        if len(set(ids)) != len(ids):
            raise DataError(f"recordings: duplicate recording ids in {list(map(str, recordings.paths))}")
        self.streams = [self._decoded_streams(f, o) for f, o in zip(self.files, self.options)]
        self.max_open = max_open
        self._attached: OrderedDict[int, None] = OrderedDict()  # recording -> None, least recent first
        self.unit_vocab = unit_vocab if unit_vocab is not None else Vocabulary()
        self.session_vocab = session_vocab if session_vocab is not None else Vocabulary()
        self._register(grow)
        if train_spans is not None and len(train_spans) != len(self.files):
            raise ValueError(f"recordings: {len(train_spans)} train_spans for {len(self.files)} recordings")
        self.train_spans = None if train_spans is None else [s.merged() for s in train_spans]
        self.normalizer = normalizer or self._fit_normalizer(normalize)
        self.trace_scales = [self._trace_scale(r) for r in range(len(self.files))]

    def __len__(self) -> int:
        return len(self.files)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_attached": OrderedDict()}  # a copy's files are closed

    @property
    def weights(self) -> list[float]:
        """The sampling weight of each recording (its source's)."""
        return [o.weight for o in self.options]

    def file(self, recording: int) -> RecordingFile:
        """Recording ``recording``'s file, about to be read: it becomes the most recently used, and
        the least recently used beyond ``max_open`` are closed."""
        if self.max_open is not None:
            self._attached[recording] = None
            self._attached.move_to_end(recording)
            while len(self._attached) > self.max_open:
                self.files[self._attached.popitem(last=False)[0]].close()
        return self.files[recording]

    def _decoded_streams(self, f: RecordingFile, options: SourceOptions) -> tuple[str, ...]:
        """The readout streams recording ``f`` decodes, in readout order; errors name the file."""
        if options.readouts is not None:
            foreign = [name for name in options.readouts if name not in self.readouts]
            if foreign:
                raise ConfigError(
                    f"{f.path}: the dataset decodes stream(s) {foreign} but the model's readouts are "
                    f"{list(self.readouts)}; add them to the model's readouts (e.g. --readout {foreign[0]})"
                )
            missing = [name for name in options.readouts if name not in f.behavior_names]
            if missing:
                raise MissingKeyError(
                    f"{f.path}: no behavior stream named {', '.join(missing)} (the dataset's readouts "
                    f"for it); found: {', '.join(f.behavior_names) or 'none'}"
                )
        wanted = self.readouts if options.readouts is None else options.readouts
        present = tuple(name for name in self.readouts if name in wanted and name in f.behavior_names)
        if not present:
            held = list(f.behavior_names)
            raise MissingKeyError(
                f"{f.path}: no behavior stream named {' or '.join(self.readouts)} (the model's "
                f"readouts); found: {', '.join(held) or 'none'}"
                + (f"; to decode {held[0]}, train with --readout {held[0]} (config key model.readouts)" if held else "")
            )
        for name in present:
            dim, found = self.readouts[name], f.behavior_dims[name]
            if found != dim:
                raise DataError(
                    f"{f.path}: behavior/{name} has {found} dimension(s) but the "
                    f"model's readout {name!r} has {dim}; set readouts: {{{name}: "
                    f"{found}}} in the model config"
                )
        return present

    def _register(self, grow: bool) -> None:
        keys = [k for f in self.files for k in unit_keys(f)]
        sessions = [session_key_of(f) for f in self.files]
        if grow:
            self.unit_vocab.extend(keys)
            self.session_vocab.extend(sessions)
        unknown = self.session_vocab.new_ids(sessions) or self.unit_vocab.new_ids(keys)
        if unknown:
            raise MissingKeyError(
                f"recordings: {len(unknown)} session/unit id(s) unknown to the model, e.g. "
                f"{unknown[0]!r}; a model decodes the sessions it was trained on — train on these "
                "recordings or adapt the model to them first"
            )
        self.unit_rows = [self.unit_vocab.index(unit_keys(f)) for f in self.files]
        self.session_rows = [int(self.session_vocab.index([session_key_of(f)])[0]) for f in self.files]

    def split_spans(self, split: str) -> list[Intervals]:
        """Each recording's spans of ``split`` (:data:`WHOLE_RECORDING`: its domain); an error names
        a file without that split."""
        if split == WHOLE_RECORDING:
            return [f.domain for f in self.files]
        for f in self.files:
            if split not in f.splits:
                raise MissingKeyError(
                    f"{f.path}: no {split!r} split (has {sorted(f.splits) or 'none'}); assign splits "
                    "with neuropoyo.data.splits.assign_splits or `neuropoyo prepare`"
                )
        if split == "train" and self.train_spans is not None:
            return list(self.train_spans)
        return [f.splits[split] for f in self.files]

    def readout_streams(self, recording: int) -> dict[str, TimeSeries]:
        """The whole readout streams recording ``recording`` holds (absolute times)."""
        f = self.file(recording)
        return {name: f.stream(name) for name in self.streams[recording]}

    def _fit_normalizer(self, normalize: str) -> Normalizer:
        """Scales from the training split alone, each brainset and stream with its source's scale."""
        samples: dict[str, dict[tuple[str, str], list[np.ndarray]]] = defaultdict(lambda: defaultdict(list))
        chosen: dict[tuple[str, str], tuple[str, Path]] = {}
        labels: dict[tuple[str, str], Scale] = {}
        for r, (f, spans) in enumerate(zip(self.files, self.split_spans("train"))):
            mode = self.options[r].normalize or normalize
            for name, stream in self.readout_streams(r).items():
                key = (f.info.brainset, name)
                first = chosen.setdefault(key, (mode, f.path))
                if first[0] != mode:
                    raise ConfigError(
                        f"dataset: brainset {key[0]!r}, stream {name!r} is scaled {first[0]} for "
                        f"{first[1]} but {mode} for {f.path}; recordings of one brainset share a scale, "
                        "so give their sources the same normalize: value"
                    )
                if stream.is_labels:  # class indices are not scaled
                    labels[key] = Scale((0.0,), (1.0,))
                else:
                    samples[mode][key].append(stream.values[spans.contains(stream.timestamps)])
        scales: dict[str, dict] = defaultdict(dict)
        for (brainset, name), scale in labels.items():
            scales[brainset][name] = scale
        for mode, group in samples.items():
            for brainset, streams in Normalizer.fit(group, scale=mode).scales.items():
                scales[brainset].update(streams)
        return Normalizer(dict(scales))

    def _trace_scale(self, recording: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(mean (R,), std (R,)) of each trace column over the recording's training frames (all its
        frames when the training split holds fewer than 2); None without traces. Label-free: the
        inputs are scaled per recording, so a new session brings its own scale."""
        f = self.files[recording]
        if not f.has_traces:
            return None
        traces = f.traces()
        values = traces.values[self.split_spans("train")[recording].contains(traces.timestamps)]
        if len(values) < 2:
            values = traces.values
        std = values.std(axis=0)
        return values.mean(axis=0), np.where(std > 0, std, 1.0).astype(np.float32)

    def excluded_spans(self, factor: float | None) -> list[Intervals]:
        """Per recording, the spans of extreme acceleration of any readout stream (B.1), with the
        threshold taken on the training split only; empty spans when ``factor`` is None."""
        spans = []
        for r, train in enumerate(self.split_spans("train")):
            excluded = Intervals.empty()
            if factor is not None:
                for stream in self.readout_streams(r).values():
                    if stream.is_labels:
                        continue
                    found = extreme_acceleration_spans(stream, factor=factor, reference=train)
                    excluded = excluded.union(found)
            spans.append(excluded)
        return spans

    def token_estimate(self, window: Window) -> int:
        """Input tokens of ``window`` before augmentation: its spikes and trace values plus a START
        and an END per unit (exact for a window inside one span of the recorded domain)."""
        f = self.file(window.recording)
        events = f.spike_count(window.start, window.end) + f.value_count(window.start, window.end)
        return events + 2 * len(self.unit_rows[window.recording])

    def read(self, window: Window) -> Sample:
        """The window's recording (times relative to its start) with its vocabulary rows."""
        data = self.file(window.recording).slice(window.start, window.end, streams=self.streams[window.recording])
        if self.train_spans is not None:
            train = self.train_spans[window.recording].slice(window.start, window.end)
            data = dataclasses.replace(data, splits={**data.splits, "train": train})
        return Sample(
            window=window,
            data=data,
            unit_rows=self.unit_rows[window.recording],
            session_row=self.session_rows[window.recording],
        )
