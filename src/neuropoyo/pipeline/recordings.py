"""Many recordings read together: vocabulary rows, behavior scales and the spans of each split.

A :class:`RecordingSet` opens recording files for windowed reads and knows, for each recording, its
global unit and session rows and the behavior scale of its brainset. It reads windows; the
transforms (:mod:`neuropoyo.pipeline.transforms`) turn them into tokens.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from neuropoyo.data.intervals import Intervals
from neuropoyo.data.normalize import Normalizer, extreme_acceleration_spans
from neuropoyo.data.recording import TimeSeries
from neuropoyo.data.store import RecordingFile, open_recording
from neuropoyo.errors import DataError, MissingKeyError
from neuropoyo.pipeline.samplers import Window
from neuropoyo.pipeline.transforms import Sample
from neuropoyo.vocab import Vocabulary, session_key_of, unit_keys


class RecordingSet:
    """Recording files with their vocabulary rows and behavior scales.

    paths: recording files. readouts: the model's readouts, behavior stream name -> dim, in its
    readout order (which gives each stream its decoder index); ``streams`` (default all of them)
    are the ones read, and every recording must hold at least one. unit_vocab / session_vocab: the model's
    vocabularies; ids of these recordings missing from them are appended (``grow``) or refused.
    normalizer: fitted on the training splits with ``scale`` when not given. train_spans: per
    recording, spans that replace its training split (e.g. a few-shot subset); the other splits
    stay as the files have them.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        readouts: Mapping[str, int],
        unit_vocab: Vocabulary | None = None,
        session_vocab: Vocabulary | None = None,
        normalizer: Normalizer | None = None,
        scale: str = "per_dim",
        grow: bool = True,
        train_spans: Sequence[Intervals] | None = None,
        streams: Sequence[str] | None = None,
    ):
        unknown = sorted(set(streams or ()) - set(readouts))
        if unknown:
            raise ValueError(f"recordings: streams {unknown} are not readouts of the model ({list(readouts)})")
        self.decoder_index = {name: i for i, name in enumerate(readouts) if streams is None or name in streams}
        self.readouts = {name: readouts[name] for name in self.decoder_index}
        self.files: list[RecordingFile] = [open_recording(p) for p in paths]
        ids = [f.recording_id for f in self.files]
        if len(set(ids)) != len(ids):
            raise DataError(f"recordings: duplicate recording ids in {list(map(str, paths))}")
        for f in self.files:
            self._check_streams(f)
        self.unit_vocab = unit_vocab if unit_vocab is not None else Vocabulary()
        self.session_vocab = session_vocab if session_vocab is not None else Vocabulary()
        self._register(grow)
        if train_spans is not None and len(train_spans) != len(self.files):
            raise ValueError(f"recordings: {len(train_spans)} train_spans for {len(self.files)} recordings")
        self.train_spans = None if train_spans is None else [s.merged() for s in train_spans]
        self.normalizer = normalizer or self._fit_normalizer(scale)

    def __len__(self) -> int:
        return len(self.files)

    def _check_streams(self, f: RecordingFile) -> None:
        present = [name for name in self.readouts if name in f.behavior_names]
        if not present:
            raise MissingKeyError(
                f"{f.path}: no behavior stream named {' or '.join(self.readouts)}; "
                f"found: {', '.join(f.behavior_names) or 'none'}"
            )
        for name in present:
            dim, found = self.readouts[name], f.behavior_dims[name]
            if found != dim:
                raise DataError(
                    f"{f.path}: behavior/{name} has {found} dimension(s) but the "
                    f"model's readout {name!r} has {dim}; set readouts: {{{name}: "
                    f"{found}}} in the model config"
                )

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
        """Each recording's spans of ``split``; an error names a file without that split."""
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
        f = self.files[recording]
        return {name: f.stream(name) for name in self.readouts if name in f.behavior_names}

    def _fit_normalizer(self, scale: str) -> Normalizer:
        """Scales from the training split alone."""
        samples: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
        for r, (f, spans) in enumerate(zip(self.files, self.split_spans("train"))):
            for name, stream in self.readout_streams(r).items():
                samples[(f.info.brainset, name)].append(stream.values[spans.contains(stream.timestamps)])
        return Normalizer.fit(samples, scale=scale)

    def excluded_spans(self, factor: float | None) -> list[Intervals]:
        """Per recording, the spans of extreme acceleration of any readout stream (B.1), with the
        threshold taken on the training split only; empty spans when ``factor`` is None."""
        spans = []
        for r, train in enumerate(self.split_spans("train")):
            excluded = Intervals.empty()
            if factor is not None:
                for stream in self.readout_streams(r).values():
                    found = extreme_acceleration_spans(stream, factor=factor, reference=train)
                    excluded = excluded.union(found)
            spans.append(excluded)
        return spans

    def token_estimate(self, window: Window) -> int:
        """Input tokens of ``window`` before augmentation: its spikes plus a START and an END per
        unit (exact for a window inside one span of the recorded domain)."""
        f = self.files[window.recording]
        return f.spike_count(window.start, window.end) + 2 * len(self.unit_rows[window.recording])

    def read(self, window: Window) -> Sample:
        """The window's recording (times relative to its start) with its vocabulary rows."""
        data = self.files[window.recording].slice(window.start, window.end)
        if self.train_spans is not None:
            train = self.train_spans[window.recording].slice(window.start, window.end)
            data = dataclasses.replace(data, splits={**data.splits, "train": train})
        return Sample(
            window=window,
            data=data,
            unit_rows=self.unit_rows[window.recording],
            session_row=self.session_rows[window.recording],
        )
