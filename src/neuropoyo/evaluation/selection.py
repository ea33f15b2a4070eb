"""Which behavior samples of a split count for evaluation (paper A.5).

POYO (``neuropoyo evaluate``) and the baselines score exactly the samples :func:`evaluation_mask`
keeps: those inside the named intervals configured for the recording's task (e.g. the reaching
segments of center-out sessions) and, where trials have a ``success`` column, inside a successful
trial. :class:`EvaluationConfig` holds these choices and the sliding-window step.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from neuropoyo.data.intervals import Intervals
from neuropoyo.errors import ConfigError
from neuropoyo.settings import from_mapping

TRIALS = "trials"  # interval name meaning the recording's trials
WHOLE_SPLIT = "all"  # interval name meaning every sample of the split
ANY_TASK = "*"  # task key for every task not listed by name


def normalize_task(task: str) -> str:
    """Task name as looked up in the config: lower case, spaces and dashes as underscores."""
    return task.strip().lower().replace(" ", "_").replace("-", "_")


def _check_names(task: str, names) -> tuple[str, ...]:
    """The interval names of one task as a tuple, or a ConfigError saying what is wrong."""
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise ConfigError(
            f"evaluation: intervals[{task!r}] must be a list of interval names, got {names!r}"
        )
    names = tuple(names)
    if not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise ConfigError(
            f"evaluation: intervals[{task!r}] must hold non-empty interval names, got {list(names)}"
        )
    if WHOLE_SPLIT in names and len(names) > 1:
        raise ConfigError(
            f"evaluation: intervals[{task!r}] = {list(names)}: {WHOLE_SPLIT!r} (the whole split) "
            "cannot be combined with other names"
        )
    return names


@dataclass(frozen=True)
class EvaluationConfig:
    """How a split is scored (defaults: the paper's, A.5: center-out reaches, whole random-target
    sessions, successful trials only).

    intervals: task -> names of the intervals whose samples count (``"trials"`` = the recording's
        trials, ``"all"`` = the whole split); the task ``"*"`` stands for every task not listed.
        Task names are compared after :func:`normalize_task`. A task not covered scores its whole
        split, with a warning.
    successful_only: also require a successful trial, where trials have a ``success`` column.
    step_s: step of the sliding evaluation windows, in seconds.
    """

    intervals: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: {"center_out": ("reach",), "random_target": (WHOLE_SPLIT,)}
    )
    successful_only: bool = True
    step_s: float = 0.5

    def __post_init__(self):
        if not isinstance(self.intervals, Mapping):
            raise ConfigError(
                f"evaluation: intervals must map task names to lists of interval names, got "
                f"{self.intervals!r}"
            )
        intervals: dict[str, tuple[str, ...]] = {}
        for task, names in self.intervals.items():
            if not isinstance(task, str) or not task.strip():
                raise ConfigError(f"evaluation: task names must be non-empty strings, got {task!r}")
            key = task if task == ANY_TASK else normalize_task(task)
            if key in intervals:
                raise ConfigError(
                    f"evaluation: tasks {sorted(t for t in self.intervals if normalize_task(t) == key)} "
                    f"are the same task {key!r}; list it once"
                )
            intervals[key] = _check_names(task, names)
        if not isinstance(self.successful_only, bool):
            raise ConfigError(
                f"evaluation: successful_only must be true or false, got {self.successful_only!r}"
            )
        if isinstance(self.step_s, bool) or not isinstance(self.step_s, (int, float)) or not (
            math.isfinite(self.step_s) and self.step_s > 0
        ):
            raise ConfigError(f"evaluation: step_s must be a number of seconds > 0, got {self.step_s!r}")
        object.__setattr__(self, "intervals", intervals)
        object.__setattr__(self, "step_s", float(self.step_s))

    def with_intervals(self, names: Sequence[str]) -> "EvaluationConfig":
        """The same config scoring ``names`` for every task (e.g. from ``--eval-intervals``);
        ``["all"]`` scores the whole split."""
        return dataclasses.replace(self, intervals={ANY_TASK: _check_names(ANY_TASK, names)})

    def names_for(self, task: str) -> tuple[str, ...] | None:
        """The interval names that count for ``task``; None when the config does not cover it."""
        return self.intervals.get(normalize_task(task), self.intervals.get(ANY_TASK))

    def to_dict(self) -> dict:
        return {
            "intervals": {task: list(names) for task, names in self.intervals.items()},
            "successful_only": self.successful_only,
            "step_s": self.step_s,
        }

    @classmethod
    def from_dict(cls, data: Mapping | None, source: str = "evaluation config") -> "EvaluationConfig":
        """From a mapping (None: the defaults); unknown keys are refused, listing the known ones."""
        return from_mapping(cls, data, source=source, section="evaluation")


def in_spans(times: np.ndarray, spans: Intervals) -> np.ndarray:
    """(P,) bool: whether each time lies in ``spans`` (which may overlap)."""
    return spans.merged().contains(times)


def evaluation_mask(
    times: np.ndarray,
    *,
    task: str,
    trials: Intervals,
    intervals: Mapping[str, Intervals],
    config: EvaluationConfig,
    source: str,
) -> np.ndarray:
    """(P,) bool: whether each of ``times`` (P,) counts for evaluation.

    trials: the recording's trials with their columns; intervals: its named intervals; both
    restricted to the split being scored. source names the recording in warnings. A time counts
    when it lies in one of the intervals configured for ``task`` (see :class:`EvaluationConfig`)
    and, with ``successful_only`` and a ``success`` column, in a successful trial. A recording
    that has none of its task's intervals falls back to its trials (its whole split without
    trials), with a warning.
    """
    times = np.asarray(times, dtype=np.float64)
    names = config.names_for(task)
    if names is None:
        warnings.warn(
            f"{source}: task {task!r} has no evaluation intervals configured, so its whole split is "
            f"scored; set evaluation intervals[{normalize_task(task)!r}] (or {ANY_TASK!r}) in the "
            "config, or pass --eval-intervals",
            stacklevel=2,
        )
        names = (WHOLE_SPLIT,)
    elif not any(n in (WHOLE_SPLIT, TRIALS) or n in intervals for n in names):
        fallback = TRIALS if len(trials) else WHOLE_SPLIT
        warnings.warn(
            f"{source}: task {task!r} is scored in {list(names)} but the recording has none of these "
            f"intervals (it has {sorted(intervals) or 'none'}); scoring "
            f"{'its trials' if fallback == TRIALS else 'its whole split'} instead",
            stacklevel=2,
        )
        names = (fallback,)
    if names == (WHOLE_SPLIT,):
        mask = np.ones(times.shape, dtype=bool)
    else:
        mask = np.zeros(times.shape, dtype=bool)
        for name in names:
            spans = trials if name == TRIALS else intervals.get(name)
            if spans is not None:
                mask |= in_spans(times, spans)
    if config.successful_only and "success" in trials.columns:
        mask &= in_spans(times, trials.select(trials.columns["success"].astype(bool)))
    return mask


def split_evaluation_mask(recording, spans: Intervals, times: np.ndarray, config: EvaluationConfig) -> np.ndarray:
    """:func:`evaluation_mask` of ``times`` inside the split ``spans`` of ``recording`` (a Recording
    or a RecordingFile: anything with ``info``, ``trials`` and ``intervals``), its trials and
    intervals cut to the split first."""
    return evaluation_mask(
        times,
        task=recording.info.task,
        trials=recording.trials.intersect(spans),
        intervals={name: s.intersect(spans) for name, s in recording.intervals.items()},
        config=config,
        source=recording.info.recording_id,
    )
