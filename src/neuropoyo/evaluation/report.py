"""Evaluation report, one score per (recording, stream): R2 (continuous streams) or accuracy
(label streams, classification tasks), summaries, table, CSVs, figures.

``write_report`` lays out one folder::

    metrics.json                                the :func:`summarize` dict (the evaluate contract)
    predictions/<recording id>/<stream>.csv     timestamp, true_<stream>_<d>, pred_<stream>_<d>, segment
                                                (label streams: logit_<stream>_<k> and trial)
    figures/r2_per_recording.png                R2 bars per (recording, continuous stream), by task
    figures/traces/<recording id>/<stream>.png  true vs predicted over the first evaluation segments

metrics.json holds::

    {"split": "test",
     "mean_r2": float,                          mean over every continuous (recording, stream) score
     "mean_accuracy": float,                    mean over every label (recording, stream) score
     "tasks":   {task:   {"mean_r2", "std_r2", "n", "mean_accuracy", "std_accuracy", "n_accuracy"}},
     "streams": {stream: {... the same keys}},  over the recordings scored on that stream
     "recordings": {recording id: {
         "r2": float, "accuracy": float,        means over the recording's streams of each kind
         "task": str, "brainset": str,
         "streams": {stream: {"r2", "r2_per_dim", "samples", "units",
                              "median_error" | "angular_error_deg"}
                             | {"accuracy", "balanced_accuracy", "chance", "decisions",
                                "decided_per", "sample_accuracy", "samples", "classes"}}}}}

Each R2 key is there only when some continuous stream is, each accuracy key only when some label
stream is. Means are uniform over scores, std is the population std (0 for one score), n counts
scores; with one stream per recording every mean is over recordings. ``median_error`` is the median
Euclidean distance between true and predicted samples in the stream's ``units`` (a position error
in pixels or metres); a circular stream has ``angular_error_deg`` instead. A label stream's
samples of one trial are pooled into one decision (:func:`label_metrics`). Figures need matplotlib
(a core dependency); it is imported only when figures are drawn.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from neuropoyo.data.circular import CIRCULAR_UNIT, angular_error
from neuropoyo.data.recording import check_file_name
from neuropoyo.evaluation.metrics import (
    accuracy,
    balanced_accuracy,
    median_error,
    pooled_decisions,
    r2_per_dim,
    r2_score,
)
from neuropoyo.io import write_bytes_atomic, write_text_atomic

MAX_TRACE_SEGMENTS = 6


@dataclass(frozen=True, eq=False)
class RecordingResult:
    """Stitched predictions of one behavior stream of one recording.

    timestamps: (N,) float64 absolute seconds. true, predicted: (N, D) in the stream's units.
    segment: (N,) int evaluation segment (e.g. trial) of each sample. units: the stream's
    physical units (e.g. "m/s"), used to label figures.
    classes: the class names of a label stream (a classification task): true is then (N, 1) class
    indices and predicted (N, K) logits. trial: (N,) row of the recording's trial holding each
    sample (-1: none); a label stream's samples of one trial are pooled into one decision.
    """

    recording_id: str
    task: str
    brainset: str
    stream: str
    timestamps: np.ndarray
    true: np.ndarray
    predicted: np.ndarray
    segment: np.ndarray
    units: str = ""
    classes: tuple[str, ...] = ()
    trial: np.ndarray | None = None

    def __post_init__(self):
        check_file_name("recording_id", self.recording_id)  # both name files of the report
        check_file_name("stream", self.stream)
        _check_arrays(self)

    @property
    def is_labels(self) -> bool:
        return bool(self.classes)

    @classmethod
    def in_split(
        cls, info, stream: str, units: str, spans, timestamps, true, predicted, *, classes=(), trials=None
    ) -> "RecordingResult":
        """A result for the samples ``timestamps`` of a split, each sample's segment being the
        split span (``spans``, an Intervals) holding it. info: the recording's RecordingInfo.
        classes: of a label stream; trials: the recording's trials (Intervals), to pool its samples."""
        trial = None
        if classes and trials is not None:
            trial = np.searchsorted(trials.start, timestamps, side="right") - 1
            inside = (trial >= 0) & (timestamps < trials.end[np.maximum(trial, 0)])
            trial = np.where(inside, trial, -1)
        return cls(
            recording_id=info.recording_id,
            task=info.task,
            brainset=info.brainset,
            stream=stream,
            timestamps=timestamps,
            true=true,
            predicted=predicted,
            segment=np.searchsorted(spans.start, timestamps, side="right") - 1,
            units=units,
            classes=tuple(classes),
            trial=trial,
        )


def _check_arrays(result: RecordingResult) -> None:
    """Shapes agree, segments are integers, values are finite (R2 and JSON need that)."""
    where = f"{result.recording_id}/{result.stream}"
    true, predicted = np.asarray(result.true), np.asarray(result.predicted)
    if result.is_labels:
        if true.ndim != 2 or true.shape[1] != 1 or predicted.shape != (true.shape[0], len(result.classes)):
            raise ValueError(
                f"{where}: true {true.shape}, predicted {predicted.shape}: a label stream needs (N, 1) "
                f"labels and (N, {len(result.classes)}) logits"
            )
    elif true.ndim != 2 or true.shape != predicted.shape:
        raise ValueError(f"{where}: true {true.shape}, predicted {predicted.shape}: need one (N, D)")
    for name in ("timestamps", "segment") + (("trial",) if result.trial is not None else ()):
        shape = np.shape(getattr(result, name))
        if shape != true.shape[:1]:
            raise ValueError(f"{where}: {name} has shape {shape}, expected ({true.shape[0]},)")
    if not np.issubdtype(np.asarray(result.segment).dtype, np.integer):
        raise ValueError(f"{where}: segment must hold integers, got {np.asarray(result.segment).dtype}")
    if not (np.isfinite(true).all() and np.isfinite(predicted).all()):
        raise ValueError(f"{where}: true and predicted must be finite; drop samples no window predicted")


def stream_metrics(result: RecordingResult) -> dict:
    """{"r2", "r2_per_dim", "samples", "units", "median_error"} of one stream of one recording;
    median_error: the median Euclidean distance between true and predicted samples, in ``units``.

    A circular stream (unit :data:`CIRCULAR_UNIT`) has "angular_error_deg" instead: the mean and
    median absolute angle between true and predicted directions, in degrees. A label stream has
    :func:`label_metrics` instead.
    """
    if result.is_labels:
        return label_metrics(result)
    per_dim = r2_per_dim(result.true, result.predicted)
    metrics = {
        "r2": float(np.mean(per_dim)),
        "r2_per_dim": [float(v) for v in per_dim],
        "samples": int(len(result.timestamps)),
        "units": result.units,
    }
    if result.units == CIRCULAR_UNIT:
        error = np.degrees(angular_error(result.true, result.predicted))
        metrics["angular_error_deg"] = {"mean": float(error.mean()), "median": float(np.median(error))}
    else:
        metrics["median_error"] = median_error(result.true, result.predicted)
    return metrics


def label_metrics(result: RecordingResult) -> dict:
    """{"accuracy", "balanced_accuracy", "chance", "decisions", "decided_per", "sample_accuracy",
    "samples", "classes"} of a label stream: the samples of each trial pooled into one decision
    (:func:`~neuropoyo.evaluation.metrics.pooled_decisions`; "decided_per": "trial"), each sample
    its own decision where no trial holds it ("sample"); chance is 1 / number of classes."""
    labels = np.asarray(result.true)[:, 0].astype(np.int64)
    logits = np.asarray(result.predicted)
    groups = np.full(labels.size, -1) if result.trial is None else np.asarray(result.trial)
    decided, first = pooled_decisions(logits, groups)
    return {
        "accuracy": accuracy(labels[first], decided),
        "balanced_accuracy": balanced_accuracy(labels[first], decided),
        "chance": 1.0 / len(result.classes),
        "decisions": int(decided.size),
        "decided_per": "trial" if (groups >= 0).all() else "sample" if (groups < 0).all() else "trial or sample",
        "sample_accuracy": accuracy(labels, logits.argmax(axis=1)),
        "samples": int(labels.size),
        "classes": list(result.classes),
    }


def summarize(results: Sequence[RecordingResult], *, split: str) -> dict:
    """The ``neuropoyo evaluate`` summary (layout in the module docstring), recordings and their
    streams in input order."""
    recordings = _metrics_by_recording(results)
    scores = stream_scores(recordings)
    return {
        "split": split,
        **_means(m for _, _, _, m in scores),
        "tasks": _group_summary(scores, lambda rid, record, stream: record["task"]),
        "streams": _group_summary(scores, lambda rid, record, stream: stream),
        "recordings": recordings,
    }


def _means(metrics) -> dict:
    """{"mean_r2"} over the continuous streams' R2 and {"mean_accuracy"} over the label streams'
    accuracies among ``metrics``, each only when there are some."""
    metrics = list(metrics)
    means = {}
    for key, name in (("r2", "mean_r2"), ("accuracy", "mean_accuracy")):
        values = [m[key] for m in metrics if key in m]
        if values:
            means[name] = float(np.mean(values))
    return means


def _metrics_by_recording(results: Sequence[RecordingResult]) -> dict:
    """recording id -> {"r2", "task", "brainset", "streams"}; (recording, stream) pairs must be
    unique and a recording's streams agree on its task and brainset."""
    if not results:
        raise ValueError("summarize: no recordings to report on")
    first: dict[str, RecordingResult] = {}
    streams: dict[str, dict[str, dict]] = {}
    for r in results:
        seen = first.setdefault(r.recording_id, r)
        if r.stream in streams.setdefault(r.recording_id, {}):
            raise ValueError(f"summarize: stream {r.stream!r} of recording {r.recording_id!r} listed twice")
        if (seen.task, seen.brainset) != (r.task, r.brainset):
            raise ValueError(
                f"summarize: recording {r.recording_id!r} has task/brainset {seen.task!r}/"
                f"{seen.brainset!r} in stream {seen.stream!r} but {r.task!r}/{r.brainset!r} in {r.stream!r}"
            )
        streams[r.recording_id][r.stream] = stream_metrics(r)
    return {
        rid: {
            **{name[len("mean_"):]: value for name, value in _means(by_stream.values()).items()},
            "task": first[rid].task,
            "brainset": first[rid].brainset,
            "streams": by_stream,
        }
        for rid, by_stream in streams.items()
    }


def stream_scores(recordings: dict) -> list[tuple[str, dict, str, dict]]:
    """(recording id, recording record, stream, stream metrics) for every score of a summary's
    ``recordings``, in order."""
    return [
        (rid, record, stream, metrics)
        for rid, record in recordings.items()
        for stream, metrics in record["streams"].items()
    ]


def _group_summary(scores, group) -> dict:
    """group name -> {"mean_r2", "std_r2", "n"} over the continuous scores and {"mean_accuracy",
    "std_accuracy", "n_accuracy"} over the label scores ``group(rid, record, stream)`` assigns to
    it (each part only when there are some), groups sorted by name."""
    groups: dict[str, list[dict]] = {}
    for rid, record, stream, metrics in scores:
        groups.setdefault(group(rid, record, stream), []).append(metrics)
    summary = {}
    for name, members in sorted(groups.items()):
        r2 = [m["r2"] for m in members if "r2" in m]
        hit = [m["accuracy"] for m in members if "accuracy" in m]
        summary[name] = {}
        if r2:
            summary[name].update(mean_r2=float(np.mean(r2)), std_r2=float(np.std(r2)), n=len(r2))
        if hit:
            summary[name].update(
                mean_accuracy=float(np.mean(hit)), std_accuracy=float(np.std(hit)), n_accuracy=len(hit)
            )
    return summary


def format_table(summary: dict) -> str:
    """Fixed-width text: one row per (recording, stream), then mean +- std per task (and per
    stream when there are several), then the overall mean."""
    every = stream_scores(summary["recordings"])
    scores = [score for score in every if "r2" in score[3]]
    labels = [score for score in every if "accuracy" in score[3]]
    lines = []
    if scores:
        lines += [*_score_rows(scores), *_angular_rows(scores), ""]
    if labels:
        lines += [*_label_rows(labels), ""]
    lines += _group_rows("task", summary["tasks"])
    if len(summary["streams"]) > 1:
        lines += ["", *_group_rows("stream", summary["streams"])]
    n_recordings = len(summary["recordings"])
    for items, key, what in ((scores, "mean_r2", "R2"), (labels, "mean_accuracy", "accuracy")):
        if items:
            over = f"{n_recordings} recordings" if len(items) == n_recordings else f"{len(items)} streams of {n_recordings} recordings"
            lines += ["", f"mean {what} over {over} ({summary['split']}): {summary[key]:.4f}"]
    return "\n".join(lines)


def _label_rows(scores) -> list[str]:
    """Header, rule and one row per (recording, label stream): accuracy of pooled decisions."""
    header = ("recording", "stream", "task", "accuracy", "balanced", "chance", "decisions", "per sample")
    rows = [
        (rid, stream, record["task"], f"{m['accuracy']:.4f}", f"{m['balanced_accuracy']:.4f}",
         f"{m['chance']:.4f}", f"{m['decisions']} per {m['decided_per']}", f"{m['sample_accuracy']:.4f}")
        for rid, record, stream, m in scores
    ]
    widths = [max(len(row[k]) for row in (header, *rows)) for k in range(len(header))]

    def line(cells):
        return "  ".join(c.ljust(w) if k < 3 else c.rjust(w) for k, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [line(header), "-" * len(line(header)), *(line(row) for row in rows)]


def _score_rows(scores) -> list[str]:
    """Header, rule and one aligned row per (recording, stream)."""
    header = ("recording", "stream", "task", "R2", "R2 per dim", "median error", "samples")
    rows = [
        (rid, stream, record["task"], f"{m['r2']:.4f}", _format_dims(m["r2_per_dim"]), format_error(m),
         str(m["samples"]))
        for rid, record, stream, m in scores
    ]
    widths = [max(len(row[k]) for row in (header, *rows)) for k in range(len(header))]
    right = (False, False, False, True, False, True, True)

    def line(cells):
        padded = (c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right))
        return "  ".join(padded).rstrip()

    return [line(header), "-" * len(line(header)), *(line(row) for row in rows)]


def format_error(metrics: dict) -> str:
    """A stream's median error with its unit (``107 pixels``), "-" when it has none (circular)."""
    if "median_error" not in metrics:
        return "-"
    return f"{metrics['median_error']:.4g} {metrics['units']}".rstrip()


def _angular_rows(scores) -> list[str]:
    """One line per circular stream: its mean and median angular error."""
    return [
        f"{rid}: angular error {m['angular_error_deg']['mean']:.1f} deg mean, "
        f"{m['angular_error_deg']['median']:.1f} deg median ({stream} as cos, sin)"
        for rid, _, stream, m in scores
        if "angular_error_deg" in m
    ]


def _format_dims(values: list[float]) -> str:
    return " ".join(f"{v:.4f}" for v in values)


def _group_rows(title: str, groups: dict) -> list[str]:
    """One '<group>  mean +- std  (n=scores)' row per group."""
    width = max(len(title), *(len(g) for g in groups))
    rows = [f"{title.ljust(width)}  R2 (or accuracy) mean +- std"]
    for name, g in groups.items():
        parts = []
        if "mean_r2" in g:
            parts.append(f"{g['mean_r2']:.4f} +- {g['std_r2']:.4f}  (n={g['n']})")
        if "mean_accuracy" in g:
            parts.append(f"accuracy {g['mean_accuracy']:.4f} +- {g['std_accuracy']:.4f}  (n={g['n_accuracy']})")
        rows.append(f"{name.ljust(width)}  " + "; ".join(parts))
    return rows


def write_report(results: Sequence[RecordingResult], out_dir: str | Path, *, split: str) -> dict:
    """Write predictions CSVs, figures and, last, metrics.json under ``out_dir``; returns the summary.

    Every file is written atomically; metrics.json comes last, so its presence marks a full report.
    """
    out_dir = Path(out_dir)
    summary = summarize(results, split=split)
    write_predictions(results, out_dir / "predictions")
    write_figures(results, summary, out_dir / "figures")
    write_text_atomic(out_dir / "metrics.json", json.dumps(summary, indent=2, allow_nan=False) + "\n")
    return summary


def result_path(folder: Path, result: RecordingResult, suffix: str) -> Path:
    """``folder/<recording id>/<stream><suffix>``, its folder created."""
    path = folder / result.recording_id / f"{result.stream}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def write_predictions(results: Sequence[RecordingResult], folder: Path) -> list[Path]:
    """One ``<recording id>/<stream>.csv`` per result in ``folder``."""
    return [write_text_atomic(result_path(folder, r, ".csv"), predictions_csv(r)) for r in results]


def predictions_csv(result: RecordingResult) -> str:
    """CSV text with a header row; floats as %.17g so float64 values read back exactly. A label
    stream has its class index (true_<stream>_0), one logit per class (logit_<stream>_<k>, k
    indexing its classes) and the trial of each sample (-1: none) as a last column."""
    columns = range(np.shape(result.predicted)[1])
    predicted = "logit" if result.is_labels else "pred"
    header = [
        "timestamp",
        *(f"true_{result.stream}_{d}" for d in range(np.shape(result.true)[1])),
        *(f"{predicted}_{result.stream}_{d}" for d in columns),
        "segment",
    ]
    values = np.column_stack([result.timestamps, result.true, result.predicted]).astype(np.float64)
    groups = [np.asarray(result.segment)]
    if result.trial is not None:
        header.append("trial")
        groups.append(np.asarray(result.trial))
    text = io.StringIO()
    text.write(",".join(header) + "\n")
    for row, *group in zip(values, *groups):
        text.write(",".join(f"{v:.17g}" for v in row) + "".join(f",{int(g)}" for g in group) + "\n")
    return text.getvalue()


def write_figures(results: Sequence[RecordingResult], summary: dict, folder: Path) -> list[Path]:
    """R2 bar chart and one ``traces/<recording id>/<stream>.png`` per result; [] with a warning
    without matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        warnings.warn(
            "matplotlib is not installed: skipping report figures (pip install matplotlib)",
            stacklevel=3,
        )
        return []
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    if "mean_r2" in summary:
        paths.append(save_png(plot_r2_per_recording(summary), folder / "r2_per_recording.png"))
    for result in results:
        paths.append(save_png(plot_traces(result), result_path(folder / "traces", result, ".png")))
    return paths


def new_figure(width: float, height: float):
    """A matplotlib Figure drawn by the Agg canvas, without touching pyplot's global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_png(figure, path: Path) -> Path:
    """Render ``figure`` to PNG bytes and write them atomically."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return write_bytes_atomic(path, buffer.getvalue())


def plot_r2_per_recording(summary: dict):
    """Horizontal bars of R2 per (recording, stream), coloured by task, overall mean in the title."""
    from matplotlib.patches import Patch

    scores = [score for score in stream_scores(summary["recordings"]) if "r2" in score[3]]
    colours = {task: f"C{k % 10}" for k, task in enumerate(summary["tasks"])}
    figure = new_figure(7.0, 1.5 + 0.3 * len(scores))
    axes = figure.add_subplot()
    rows = np.arange(len(scores))
    axes.barh(
        rows,
        [m["r2"] for _, _, _, m in scores],
        color=[colours[record["task"]] for _, record, _, _ in scores],
    )
    axes.set_yticks(rows, [f"{rid} / {stream}" for rid, _, stream, _ in scores])
    axes.invert_yaxis()
    axes.axvline(0.0, color="black", linewidth=0.8)
    axes.set_xlabel("R2")
    axes.set_title(f"R2 per recording and stream ({summary['split']}): mean {summary['mean_r2']:.3f}")
    handles = [Patch(color=c, label=t) for t, c in colours.items()]
    axes.legend(handles=handles, title="task", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return figure


def segment_layout(timestamps: np.ndarray, segment: np.ndarray, max_segments: int) -> list[tuple]:
    """Place the first ``max_segments`` segments (by id) side by side with gaps between them.

    Returns (segment id, (M,) sample rows sorted by time, (M,) x positions in seconds) per segment;
    each segment starts one gap (a tenth of the longest segment, at least 1 ms) after the last.
    """
    ids = np.unique(segment)[:max_segments]
    rows = [np.flatnonzero(segment == s) for s in ids]
    rows = [r[np.argsort(timestamps[r], kind="stable")] for r in rows]
    spans = [timestamps[r[-1]] - timestamps[r[0]] for r in rows]
    gap = max(0.1 * max(spans), 1e-3)
    layout, start = [], 0.0
    for s, r, span in zip(ids, rows, spans):
        layout.append((int(s), r, start + timestamps[r] - timestamps[r[0]]))
        start += span + gap
    return layout


def plot_traces(result: RecordingResult, *, max_segments: int = MAX_TRACE_SEGMENTS):
    """One row per dimension: true (black) vs predicted (orange) over the first segments; a label
    stream's true class index vs the most likely class of each sample."""
    timestamps, segment = np.asarray(result.timestamps), np.asarray(result.segment)
    true, predicted = np.asarray(result.true), np.asarray(result.predicted)
    if result.is_labels:
        predicted = predicted.argmax(axis=1)[:, None].astype(np.float64)
    layout = segment_layout(timestamps, segment, max_segments)
    n_dims = true.shape[1]
    figure = new_figure(max(6.0, 1.8 * len(layout)), 0.8 + 1.6 * n_dims)
    axes = figure.subplots(n_dims, 1, sharex=True, squeeze=False)[:, 0]
    unit_label = f" ({result.units})" if result.units else ""
    for d, ax in enumerate(axes):
        for k, (_, rows, x) in enumerate(layout):
            ax.plot(x, true[rows, d], color="black", lw=1.0, label="true" if k == 0 else None)
            ax.plot(x, predicted[rows, d], color="C1", lw=1.0, label="predicted" if k == 0 else None)
        ax.set_ylabel(f"{result.stream}[{d}]{unit_label}")
    axes[0].legend(loc="upper right", fontsize="small")
    score = (
        f"sample accuracy {np.mean(true == predicted):.3f}" if result.is_labels
        else f"R2 {r2_score(true, predicted):.3f}"
    )
    axes[0].set_title(f"{result.recording_id} {result.stream} ({result.task}): {score}")
    centres = [(x[0] + x[-1]) / 2 for _, _, x in layout]
    axes[-1].set_xticks(centres, [str(s) for s, _, _ in layout])
    axes[-1].set_xlabel("evaluation segment (each on its own time scale in seconds, gaps between)")
    return figure
