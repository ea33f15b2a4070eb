"""Many recordings read together: vocabularies, normalisation, and windows turned into tokens.

A :class:`RecordingSet` opens recording files for windowed reads and knows, for each recording, its
global unit and session rows, the behavior scale of its brainset, the spans to leave out of the loss,
and which of its intervals count for evaluation. :meth:`RecordingSet.tokens` is the whole per-window
pipeline: read -> keep one split -> z-score -> (unit dropout) -> tokenize -> (sample 100 outputs).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from neuropoyo.errors import ConfigError, DataError, MissingKeyError
from neuropoyo.batching import output_sampling
from neuropoyo.data.intervals import Intervals
from neuropoyo.data.normalize import Normalizer, extreme_acceleration_spans
from neuropoyo.data.recording import Recording, TimeSeries
from neuropoyo.data.store import RecordingFile, open_recording
from neuropoyo.sampling import Window
from neuropoyo.model.config import POYOConfig
from neuropoyo.tokenizer import Tokenizer, latent_grid
from neuropoyo.training.augment import unit_dropout
from neuropoyo.vocab import Vocabulary, session_key_of, unit_keys

EXCLUDED = "excluded"  # interval name of spans left out of the training loss (weight 0)


@dataclass(frozen=True)
class DataConfig:
    """How recordings become training and evaluation windows (defaults: the paper's, A.2-A.5)."""

    eval_step_s: float = 0.5
    interval_weights: Mapping[str, float] = field(default_factory=lambda: {"reach": 5.0})
    # task -> interval names that count for evaluation; tasks not listed: the whole split.
    eval_intervals: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {"center_out": ("reach",)}
    )
    eval_successful_only: bool = True  # where trials have a `success` column
    # samples whose acceleration exceeds this many times its 99th percentile leave the loss (B.1)
    exclude_acceleration_factor: float | None = 2.0  # None keeps every sample
    unit_dropout_min: int = 30
    output_samples: int = 100

    def __post_init__(self):
        object.__setattr__(self, "interval_weights", dict(self.interval_weights))
        object.__setattr__(
            self, "eval_intervals", {k: tuple(v) for k, v in self.eval_intervals.items()}
        )

    def evaluation(self, task: str, trials: Intervals) -> tuple[tuple[str, ...] | None, bool]:
        """(interval names that count for evaluation or None for all, successful trials only?)
        for a recording of ``task`` with these ``trials``."""
        successful = self.eval_successful_only and "success" in trials.columns
        return self.eval_intervals.get(task), successful

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["eval_intervals"] = {k: list(v) for k, v in self.eval_intervals.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "data config") -> "DataConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown data option(s) {unknown}; known: {sorted(known)}")
        return cls(**data)


class RecordingSet:
    """Recording files with their vocabulary rows, behavior scales and tokenizers.

    paths: recording files. config: DataConfig. latent_index, latent_timestamps (N,) and
    context_length_s: the model's latent grid and window length. readouts: behavior stream name ->
    (decoder index in the model, dim); every recording must hold at least one of the streams.
    unit_vocab / session_vocab: the model's vocabularies; ids of these recordings missing from them
    are appended (``grow``) or refused. normalizer: fitted on the training splits when not given.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        *,
        config: DataConfig,
        latent_index: np.ndarray,
        latent_timestamps: np.ndarray,
        context_length_s: float,
        readouts: Mapping[str, tuple[int, int]],
        unit_vocab: Vocabulary | None = None,
        session_vocab: Vocabulary | None = None,
        normalizer: Normalizer | None = None,
        grow: bool = True,
    ):
        self.config = config
        self.readouts = dict(readouts)
        self.files: list[RecordingFile] = [open_recording(p) for p in paths]
        ids = [f.recording_id for f in self.files]
        if len(set(ids)) != len(ids):
            raise DataError(f"recordings: duplicate recording ids in {list(map(str, paths))}")
        for f in self.files:
            self._check_streams(f)
        self.unit_vocab = unit_vocab if unit_vocab is not None else Vocabulary()
        self.session_vocab = session_vocab if session_vocab is not None else Vocabulary()
        self._register(grow)
        streams = [self._readout_streams(f) for f in self.files]  # read once, used twice
        self.normalizer = normalizer or self._fit_normalizer(streams)
        self.excluded = [self._excluded_spans(s) for s in streams]
        self.tokenizers = [
            self._tokenizer(f, latent_index, latent_timestamps, context_length_s) for f in self.files
        ]

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
            dim, found = self.readouts[name][1], f.behavior_dims[name]
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
        return [f.splits[split] for f in self.files]

    def _readout_streams(self, f: RecordingFile) -> dict[str, TimeSeries]:
        """The whole readout streams ``f`` holds (absolute times)."""
        return {name: f.stream(name) for name in self.readouts if name in f.behavior_names}

    def _fit_normalizer(self, streams: list[dict[str, TimeSeries]]) -> Normalizer:
        samples: dict[tuple[str, str], list[np.ndarray]] = defaultdict(list)
        for f, spans, held in zip(self.files, self.split_spans("train"), streams):
            for name, stream in held.items():
                samples[(f.info.brainset, name)].append(stream.values[spans.contains(stream.timestamps)])
        return Normalizer.fit(samples)

    def _excluded_spans(self, streams: dict[str, TimeSeries]) -> Intervals:
        threshold = self.config.exclude_acceleration_factor
        spans = Intervals.empty()
        if threshold is None:
            return spans
        for stream in streams.values():
            spans = spans.union(extreme_acceleration_spans(stream, factor=threshold))
        return spans

    def _tokenizer(
        self, f: RecordingFile, latent_index, latent_timestamps, context_length_s
    ) -> Tokenizer:
        c = self.config
        eval_intervals, successful = c.evaluation(f.info.task, f.trials)
        return Tokenizer(
            readouts={name: index for name, (index, _) in self.readouts.items()},
            latent_index=latent_index,
            latent_timestamps=latent_timestamps,
            context_length_s=context_length_s,
            interval_weights={**c.interval_weights, EXCLUDED: 0.0},
            eval_intervals=eval_intervals,
            eval_successful_only=successful,
        )

    def window(self, window: Window, split: str) -> Recording:
        """The recording inside ``window`` restricted to ``split`` and z-scored, times relative."""
        f = self.files[window.recording]
        data = f.slice(window.start, window.end)
        data = data.restrict(data.splits[split])
        if split == "train" and len(self.excluded[window.recording]):
            excluded = self.excluded[window.recording].slice(window.start, window.end)
            data = dataclasses.replace(data, intervals={**data.intervals, EXCLUDED: excluded})
        return self.normalizer.normalize(data, self.readouts)

    def tokens(
        self, window: Window, split: str, rng: np.random.Generator | None = None
    ) -> dict[str, np.ndarray]:
        """Tokens of one window. With ``rng`` (training): unit dropout and output sampling."""
        data = self.window(window, split)
        units = self.unit_rows[window.recording]
        if rng is not None:
            data, units = unit_dropout(data, units, rng, min_units=self.config.unit_dropout_min)
        tokens = self.tokenizers[window.recording].tokenize(
            data, unit_index=units, session_index=self.session_rows[window.recording]
        )
        if rng is not None:
            tokens = output_sampling(tokens, n=self.config.output_samples, rng=rng)
        return tokens


def recording_set_for(
    paths: Sequence[str | Path], *, model_config: POYOConfig, data_config: DataConfig, **kwargs
) -> RecordingSet:
    """A RecordingSet feeding a model of ``model_config`` (its readouts and latent grid)."""
    latent_index, latent_timestamps = latent_grid(
        num_latent_timestamps=model_config.num_latent_timestamps,
        latents_per_timestamp=model_config.latents_per_timestamp,
        context_length_s=model_config.context_length_s,
        timing=model_config.latent_timing,
    )
    readouts = {
        name: (i, model_config.readouts[name]) for i, name in enumerate(model_config.readout_names)
    }
    return RecordingSet(
        paths,
        config=data_config,
        latent_index=latent_index,
        latent_timestamps=latent_timestamps,
        context_length_s=model_config.context_length_s,
        readouts=readouts,
        **kwargs,
    )
