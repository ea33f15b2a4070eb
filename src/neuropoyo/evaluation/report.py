"""Evaluation report, one score per (recording, stream): R2, summaries, table, CSVs, figures.

``write_report`` lays out one folder::

    metrics.json                                the :func:`summarize` dict (the evaluate contract)
    predictions/<recording id>/<stream>.csv     timestamp, true_<stream>_<d>, pred_<stream>_<d>, segment
    figures/r2_per_recording.png                R2 bars per (recording, stream), coloured by task
    figures/traces/<recording id>/<stream>.png  true vs predicted over the first evaluation segments

metrics.json holds::

    {"split": "test",
     "mean_r2": float,                          mean over every (recording, stream) score
     "tasks":   {task:   {"mean_r2", "std_r2", "n"}},   over the scores of the task's recordings
     "streams": {stream: {"mean_r2", "std_r2", "n"}},   over the recordings scored on that stream
     "recordings": {recording id: {
         "r2": float,                           mean over the recording's streams
         "task": str, "brainset": str,
         "streams": {stream: {"r2", "r2_per_dim", "samples", "units"[, "angular_error_deg"]}}}}}

Means are uniform over scores, std is the population std (0 for one score), n counts scores; with
one stream per recording every mean is over recordings. Figures need matplotlib (a core
dependency); it is imported only when figures are drawn.
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
from neuropoyo.evaluation.metrics import r2_per_dim, r2_score
from neuropoyo.io import write_bytes_atomic, write_text_atomic

MAX_TRACE_SEGMENTS = 6


@dataclass(frozen=True, eq=False)
class RecordingResult:
    """Stitched predictions of one behavior stream of one recording.

    timestamps: (N,) float64 absolute seconds. true, predicted: (N, D) in the stream's units.
    segment: (N,) int evaluation segment (e.g. trial) of each sample. units: the stream's
    physical units (e.g. "m/s"), used to label figures.
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
        check_file_name("recording_id", self.recording_id)  # both name files of the report
        check_file_name("stream", self.stream)
        _check_arrays(self)

    @classmethod
    def in_split(cls, info, stream: str, units: str, spans, timestamps, true, predicted) -> "RecordingResult":
        """A result for the samples ``timestamps`` of a split, each sample's segment being the
        split span (``spans``, an Intervals) holding it. info: the recording's RecordingInfo."""
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
        )


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


def stream_metrics(result: RecordingResult) -> dict:
    """{"r2", "r2_per_dim", "samples", "units"} of one stream of one recording.

    A circular stream (unit :data:`CIRCULAR_UNIT`) adds "angular_error_deg": the mean and median
    absolute angle between true and predicted directions, in degrees.
    """
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
    return metrics


def summarize(results: Sequence[RecordingResult], *, split: str) -> dict:
    """The ``neuropoyo evaluate`` summary (layout in the module docstring), recordings and their
    streams in input order."""
    recordings = _metrics_by_recording(results)
    scores = stream_scores(recordings)
    return {
        "split": split,
        "mean_r2": float(np.mean([m["r2"] for _, _, _, m in scores])),
        "tasks": _group_summary(scores, lambda rid, record, stream: record["task"]),
        "streams": _group_summary(scores, lambda rid, record, stream: stream),
        "recordings": recordings,
    }


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
            "r2": float(np.mean([m["r2"] for m in by_stream.values()])),
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
    """group name -> {"mean_r2", "std_r2", "n"} over the scores ``group(rid, record, stream)``
    assigns to it, groups sorted by name."""
    groups: dict[str, list[float]] = {}
    for rid, record, stream, metrics in scores:
        groups.setdefault(group(rid, record, stream), []).append(metrics["r2"])
    return {
        name: {"mean_r2": float(np.mean(s)), "std_r2": float(np.std(s)), "n": len(s)}
        for name, s in sorted(groups.items())
    }


def format_table(summary: dict) -> str:
    """Fixed-width text: one row per (recording, stream), then mean +- std per task (and per
    stream when there are several), then the overall mean."""
    scores = stream_scores(summary["recordings"])
    lines = [*_score_rows(scores), *_angular_rows(scores), "", *_group_rows("task", summary["tasks"])]
    if len(summary["streams"]) > 1:
        lines += ["", *_group_rows("stream", summary["streams"])]
    n_recordings = len(summary["recordings"])
    over = (
        f"{n_recordings} recordings"
        if len(scores) == n_recordings
        else f"{len(scores)} streams of {n_recordings} recordings"
    )
    lines += ["", f"mean R2 over {over} ({summary['split']}): {summary['mean_r2']:.4f}"]
    return "\n".join(lines)


def _score_rows(scores) -> list[str]:
    """Header, rule and one aligned row per (recording, stream)."""
    header = ("recording", "stream", "task", "R2", "R2 per dim", "samples")
    rows = [
        (rid, stream, record["task"], f"{m['r2']:.4f}", _format_dims(m["r2_per_dim"]), str(m["samples"]))
        for rid, record, stream, m in scores
    ]
    widths = [max(len(row[k]) for row in (header, *rows)) for k in range(len(header))]
    right = (False, False, False, True, False, True)

    def line(cells):
        padded = (c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right))
        return "  ".join(padded).rstrip()

    return [line(header), "-" * len(line(header)), *(line(row) for row in rows)]


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
    rows = [f"{title.ljust(width)}  R2 mean +- std"]
    for name, g in groups.items():
        rows.append(f"{name.ljust(width)}  {g['mean_r2']:.4f} +- {g['std_r2']:.4f}  (n={g['n']})")
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
    paths = [save_png(plot_r2_per_recording(summary), folder / "r2_per_recording.png")]
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

    scores = stream_scores(summary["recordings"])
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
    axes[0].set_title(
        f"{result.recording_id} {result.stream} ({result.task}): R2 {r2_score(true, predicted):.3f}"
    )
    centres = [(x[0] + x[-1]) / 2 for _, _, x in layout]
    axes[-1].set_xticks(centres, [str(s) for s, _, _ in layout])
    axes[-1].set_xlabel("evaluation segment (each on its own time scale in seconds, gaps between)")
    return figure
