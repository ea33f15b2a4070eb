"""Evaluation report: per-recording R2, per-task summary, a text table, predictions CSV, figures.

``write_report`` lays out one folder::

    metrics.json                      the :func:`summarize` dict (the ``neuropoyo evaluate`` contract)
    predictions/<recording id>.csv    timestamp, true_<stream>_<d>, pred_<stream>_<d>, segment
    figures/r2_per_recording.png      R2 bars coloured by task
    figures/traces_<recording id>.png true vs predicted over the first evaluation segments

Figures need matplotlib (a core dependency); it is imported only when figures are drawn.
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
from neuropoyo.evaluation.metrics import r2_per_dim, r2_score
from neuropoyo.io import write_bytes_atomic, write_text_atomic

MAX_TRACE_SEGMENTS = 6


@dataclass(frozen=True, eq=False)
class RecordingResult:
    """Stitched predictions of one behavior stream of one recording.

    timestamps: (N,) float64 absolute seconds. true, predicted: (N, D) in the stream's units.
    segment: (N,) int evaluation segment (e.g. trial) of each sample. units: the stream's
    physical units (e.g. "m/s"), used only to label figures.
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

    def __post_init__(self):
        _check_file_name(self.recording_id)
        _check_arrays(self)


def _check_file_name(recording_id: str) -> None:
    """Recording ids name files, so they must be plain file names."""
    if recording_id in ("", ".", "..") or "/" in recording_id or "\\" in recording_id:
        raise ValueError(f"recording_id {recording_id!r} must be a non-empty file name without slashes")


def _check_arrays(result: RecordingResult) -> None:
    """Shapes agree, segments are integers, values are finite (R2 and JSON need that)."""
    where = f"{result.recording_id}/{result.stream}"
    true, predicted = np.asarray(result.true), np.asarray(result.predicted)
    if true.ndim != 2 or true.shape != predicted.shape:
        raise ValueError(f"{where}: true {true.shape}, predicted {predicted.shape}: need one (N, D)")
    for name in ("timestamps", "segment"):
        shape = np.shape(getattr(result, name))
        if shape != true.shape[:1]:
            raise ValueError(f"{where}: {name} has shape {shape}, expected ({true.shape[0]},)")
    if not np.issubdtype(np.asarray(result.segment).dtype, np.integer):
        raise ValueError(f"{where}: segment must hold integers, got {np.asarray(result.segment).dtype}")
    if not (np.isfinite(true).all() and np.isfinite(predicted).all()):
        raise ValueError(f"{where}: true and predicted must be finite; drop samples no window predicted")


def recording_metrics(result: RecordingResult) -> dict:
    """{"r2", "r2_per_dim", "task", "brainset", "stream", "samples"} of one recording.

    A circular stream (unit :data:`CIRCULAR_UNIT`) adds "angular_error_deg": the mean and median
    absolute angle between true and predicted directions, in degrees.
    """
    per_dim = r2_per_dim(result.true, result.predicted)
    metrics = {
        "r2": float(np.mean(per_dim)),
        "r2_per_dim": [float(v) for v in per_dim],
        "task": result.task,
        "brainset": result.brainset,
        "stream": result.stream,
        "samples": int(len(result.timestamps)),
    }
    if result.units == CIRCULAR_UNIT:
        error = np.degrees(angular_error(result.true, result.predicted))
        metrics["angular_error_deg"] = {"mean": float(error.mean()), "median": float(np.median(error))}
    return metrics


def summarize(results: Sequence[RecordingResult], *, split: str) -> dict:
    """The ``neuropoyo evaluate`` summary: overall mean R2, per-task mean/std, per-recording metrics.

    Means are uniform over recordings; std_r2 is the population std (0 for a single recording).
    """
    recordings = _metrics_by_recording(results)
    scores = [m["r2"] for m in recordings.values()]
    return {
        "split": split,
        "mean_r2": float(np.mean(scores)),
        "tasks": _task_summary(recordings),
        "recordings": recordings,
    }


def _metrics_by_recording(results: Sequence[RecordingResult]) -> dict:
    """recording id -> :func:`recording_metrics`, in input order; ids must be unique."""
    if not results:
        raise ValueError("summarize: no recordings to report on")
    ids = [r.recording_id for r in results]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"summarize: recordings listed more than once: {repeated}")
    return {r.recording_id: recording_metrics(r) for r in results}


def _task_summary(recordings: dict) -> dict:
    """task -> {"mean_r2", "std_r2", "recordings"}, tasks sorted by name."""
    by_task: dict[str, list[float]] = {}
    for metrics in recordings.values():
        by_task.setdefault(metrics["task"], []).append(metrics["r2"])
    return {
        task: {"mean_r2": float(np.mean(s)), "std_r2": float(np.std(s)), "recordings": len(s)}
        for task, s in sorted(by_task.items())
    }


def format_table(summary: dict) -> str:
    """Fixed-width text: one row per recording, then per-task mean +- std, then the overall mean."""
    lines = _recording_rows(summary["recordings"])
    lines += _angular_rows(summary["recordings"])
    lines += ["", *_task_rows(summary["tasks"]), ""]
    n = len(summary["recordings"])
    lines.append(f"mean R2 over {n} recordings ({summary['split']}): {summary['mean_r2']:.4f}")
    return "\n".join(lines)


def _recording_rows(recordings: dict) -> list[str]:
    """Header, rule and one aligned row per recording."""
    header = ("recording", "task", "R2", "R2 per dim", "samples")
    rows = [
        (rid, m["task"], f"{m['r2']:.4f}", _format_dims(m["r2_per_dim"]), str(m["samples"]))
        for rid, m in recordings.items()
    ]
    widths = [max(len(row[k]) for row in (header, *rows)) for k in range(len(header))]
    right = (False, False, True, False, True)

    def line(cells):
        padded = (c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right))
        return "  ".join(padded).rstrip()

    return [line(header), "-" * len(line(header)), *(line(row) for row in rows)]


def _angular_rows(recordings: dict) -> list[str]:
    """One line per circular stream: its mean and median angular error."""
    return [
        f"{rid}: angular error {m['angular_error_deg']['mean']:.1f} deg mean, "
        f"{m['angular_error_deg']['median']:.1f} deg median ({m['stream']} as cos, sin)"
        for rid, m in recordings.items()
        if "angular_error_deg" in m
    ]


def _format_dims(values: list[float]) -> str:
    return " ".join(f"{v:.4f}" for v in values)


def _task_rows(tasks: dict) -> list[str]:
    """One 'task  mean +- std  (n recordings)' row per task."""
    width = max(len("task"), *(len(t) for t in tasks))
    rows = [f"{'task'.ljust(width)}  R2 mean +- std"]
    for task, t in tasks.items():
        score = f"{t['mean_r2']:.4f} +- {t['std_r2']:.4f}"
        rows.append(f"{task.ljust(width)}  {score}  (n={t['recordings']})")
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


def write_predictions(results: Sequence[RecordingResult], folder: Path) -> list[Path]:
    """One ``<recording id>.csv`` per result in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    return [write_text_atomic(folder / f"{r.recording_id}.csv", predictions_csv(r)) for r in results]


def predictions_csv(result: RecordingResult) -> str:
    """CSV text with a header row; floats as %.17g so float64 values read back exactly."""
    dims = range(np.shape(result.true)[1])
    header = [
        "timestamp",
        *(f"true_{result.stream}_{d}" for d in dims),
        *(f"pred_{result.stream}_{d}" for d in dims),
        "segment",
    ]
    values = np.column_stack([result.timestamps, result.true, result.predicted]).astype(np.float64)
    text = io.StringIO()
    text.write(",".join(header) + "\n")
    for row, segment in zip(values, np.asarray(result.segment)):
        text.write(",".join(f"{v:.17g}" for v in row) + f",{int(segment)}\n")
    return text.getvalue()


def write_figures(results: Sequence[RecordingResult], summary: dict, folder: Path) -> list[Path]:
    """R2 bar chart and one traces figure per recording; [] with a warning without matplotlib."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        warnings.warn(
            "matplotlib is not installed: skipping report figures (pip install matplotlib)",
            stacklevel=3,
        )
        return []
    folder.mkdir(parents=True, exist_ok=True)
    paths = [save_png(plot_r2_per_recording(summary), folder / "r2_per_recording.png")]
    for result in results:
        paths.append(save_png(plot_traces(result), folder / f"traces_{result.recording_id}.png"))
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
    """Horizontal bars of R2 per recording, coloured by task, with the overall mean in the title."""
    from matplotlib.patches import Patch

    recordings = summary["recordings"]
    ids = list(recordings)
    colours = {task: f"C{k % 10}" for k, task in enumerate(summary["tasks"])}
    figure = new_figure(7.0, 1.5 + 0.3 * len(ids))
    axes = figure.add_subplot()
    rows = np.arange(len(ids))
    scores = [recordings[i]["r2"] for i in ids]
    axes.barh(rows, scores, color=[colours[recordings[i]["task"]] for i in ids])
    axes.set_yticks(rows, ids)
    axes.invert_yaxis()
    axes.axvline(0.0, color="black", linewidth=0.8)
    axes.set_xlabel("R2")
    axes.set_title(f"R2 per recording ({summary['split']}): mean {summary['mean_r2']:.3f}")
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
    """One row per dimension: true (black) vs predicted (orange) over the first segments."""
    timestamps, segment = np.asarray(result.timestamps), np.asarray(result.segment)
    true, predicted = np.asarray(result.true), np.asarray(result.predicted)
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
    axes[0].set_title(f"{result.recording_id} ({result.task}): R2 {r2_score(true, predicted):.3f}")
    centres = [(x[0] + x[-1]) / 2 for _, _, x in layout]
    axes[-1].set_xticks(centres, [str(s) for s, _, _ in layout])
    axes[-1].set_xlabel("evaluation segment (each on its own time scale in seconds, gaps between)")
    return figure
