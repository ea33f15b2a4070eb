"""Method comparison in the shape of the paper's Tables 2 and 3.

Rows are methods (POYO, Wiener filter, MLP, GRU, ...), columns are groups (task, brainset or
stream), cells are the mean +- std of R2 over the (recording, stream) scores of the group, so a
method scored on two streams is compared stream by stream, not by its mean over streams. Inputs
are the ``metrics.json`` files (layout in :mod:`neuropoyo.evaluation.report`) written by
``neuropoyo evaluate`` and ``neuropoyo baselines``. A second table gives the median error of each
(recording, stream) per method, in the stream's unit: errors of recordings in different units
(pixels, metres) are not averaged together. Label streams (classification tasks) have no R2: a
third table gives their accuracy per (recording, stream) and method, and the mean over them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from neuropoyo.errors import ConfigError, DataError
from neuropoyo.evaluation.report import new_figure, save_png, stream_scores

METRICS_FILE = "metrics.json"
GROUPS = ("task", "brainset", "stream")  # what comparison columns can be


@dataclass(frozen=True)
class Cell:
    mean: float
    std: float  # population std over the scores of the group (0 for one score)
    n: int  # (recording, stream) scores


def find_metrics(paths: Sequence[str | Path]) -> dict[str, dict]:
    """method name -> metrics summary, from metrics.json files or folders.

    A folder holding metrics.json is one method named after the folder (or the file's "method"
    field); a folder whose subfolders hold metrics.json gives one method per subfolder.
    """
    found: dict[str, dict] = {}
    for path in map(Path, paths):
        files = (
            [path]
            if path.is_file()
            else [path / METRICS_FILE]
            if (path / METRICS_FILE).is_file()
            else sorted(path.glob(f"*/{METRICS_FILE}"))
        )
        if not files:
            raise FileNotFoundError(
                f"{path}: no {METRICS_FILE} in it or its subfolders; run `neuropoyo evaluate` or "
                "`neuropoyo baselines` first"
            )
        for file in files:
            summary = json.loads(file.read_text())
            _check_layout(summary, file)
            method = summary.get("method") or file.parent.name
            if method in found:
                raise DataError(f"{file}: method {method!r} appears twice; rename one folder")
            found[method] = summary
    return found


def _check_layout(summary: dict, file: Path) -> None:
    """A summary lists recordings, each with its per-stream scores."""
    if not isinstance(summary.get("recordings"), dict):
        raise DataError(f"{file}: no 'recordings' table; is it a `neuropoyo evaluate` report?")
    old = [rid for rid, record in summary["recordings"].items() if "streams" not in record]
    if old:
        raise DataError(
            f"{file}: recordings {old} have no 'streams' scores (written by an older neuropoyo); "
            "re-run `neuropoyo evaluate` or `neuropoyo baselines` to rewrite it"
        )


def comparison(metrics: Mapping[str, dict], *, group_by: str = "task") -> dict[str, dict[str, Cell]]:
    """method -> group -> Cell of R2 over the (recording, stream) scores of that group."""
    if group_by not in GROUPS:
        raise ConfigError(f"compare: cannot group by {group_by!r}; choose from {', '.join(GROUPS)}")
    table: dict[str, dict[str, Cell]] = {}
    for method, summary in metrics.items():
        groups: dict[str, list[float]] = {}
        for _, record, stream, score in stream_scores(summary["recordings"]):
            if "r2" not in score:  # a label stream: in the accuracy table
                continue
            group = stream if group_by == "stream" else str(record.get(group_by, "all"))
            groups.setdefault(group, []).append(score["r2"])
        table[method] = {
            group: Cell(float(np.mean(r2)), float(np.std(r2)), len(r2))
            for group, r2 in sorted(groups.items())
        }
    return table


def _groups(table: Mapping[str, Mapping[str, Cell]]) -> list[str]:
    return sorted({group for cells in table.values() for group in cells})


def format_markdown(table: Mapping[str, Mapping[str, Cell]]) -> str:
    """A markdown table; the best mean of each column is in bold."""
    groups = _groups(table)
    best = {
        g: max((cells[g].mean for cells in table.values() if g in cells), default=np.nan)
        for g in groups
    }
    lines = [
        "| method | " + " | ".join(f"{g} (n)" for g in groups) + " |",
        "|---|" + "---:|" * len(groups),
    ]
    for method, cells in table.items():
        row = []
        for g in groups:
            if g not in cells:
                row.append("-")
                continue
            text = f"{cells[g].mean:.4f} +- {cells[g].std:.4f} ({cells[g].n})"
            row.append(f"**{text}**" if cells[g].mean == best[g] else text)
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def error_table(metrics: Mapping[str, dict]) -> dict[str, dict[str, float]]:
    """method -> "recording/stream (unit)" -> median error, for every score that has one."""
    return _score_table(metrics, "median_error", with_unit=True)


def accuracy_table(metrics: Mapping[str, dict]) -> dict[str, dict[str, float]]:
    """method -> "recording/stream" -> accuracy, for every label stream (classification task)."""
    return _score_table(metrics, "accuracy", with_unit=False)


def _score_table(metrics: Mapping[str, dict], key: str, *, with_unit: bool) -> dict[str, dict[str, float]]:
    """method -> "recording/stream" (then " (unit)" ``with_unit``) -> the score ``key``, where present."""
    table: dict[str, dict[str, float]] = {}
    for method, summary in metrics.items():
        table[method] = {}
        for rid, _, stream, score in stream_scores(summary["recordings"]):
            if key in score:
                unit = f" ({score['units'] or 'no unit'})" if with_unit else ""
                table[method][f"{rid}/{stream}{unit}"] = score[key]
    return table


def format_accuracy_markdown(accuracies: Mapping[str, Mapping[str, float]]) -> str:
    """A markdown table of accuracies, methods by (recording, label stream) then their mean, the
    highest of each column in bold; "" when no method has one."""
    rows = {
        method: {**cells, "mean": float(np.mean(list(cells.values())))} if cells else {}
        for method, cells in accuracies.items()
    }
    return _cells_markdown("accuracy", rows, best=max, number="{:.4f}")


def format_errors_markdown(errors: Mapping[str, Mapping[str, float]]) -> str:
    """A markdown table of median errors, methods by (recording, stream), the lowest of each column
    in bold; "" when no method has one."""
    return _cells_markdown("median error", errors, best=min, number="{:.4g}")


def _cells_markdown(title: str, rows: Mapping[str, Mapping[str, float]], *, best, number: str) -> str:
    """Methods by columns (sorted; a "mean" column last), ``best`` of each column in bold."""
    columns = sorted({column for cells in rows.values() for column in cells} - {"mean"})
    if not columns:
        return ""
    columns += ["mean"] if any("mean" in cells for cells in rows.values()) else []
    top = {c: best(cells[c] for cells in rows.values() if c in cells) for c in columns}
    lines = [f"| {title} | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for method, cells in rows.items():
        row = [
            "-" if c not in cells else f"**{number.format(cells[c])}**" if cells[c] == top[c] else number.format(cells[c])
            for c in columns
        ]
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def plot_comparison(table: Mapping[str, Mapping[str, Cell]], path: str | Path) -> Path:
    """Grouped bar chart of mean R2 (+- std) per method and group, saved as PNG."""
    groups, methods = _groups(table), list(table)
    figure = new_figure(1.5 + 1.6 * len(groups), 3.5)
    axes = figure.add_subplot()
    width = 0.8 / max(len(methods), 1)
    for i, method in enumerate(methods):
        cells = [table[method].get(g) for g in groups]
        axes.bar(
            np.arange(len(groups)) + i * width,
            [c.mean if c else np.nan for c in cells],
            width,
            yerr=[c.std if c else 0.0 for c in cells],
            label=method,
        )
    axes.set_xticks(np.arange(len(groups)) + width * (len(methods) - 1) / 2, groups)
    axes.set_ylabel("R2 (mean +- std over recording streams)")
    axes.legend(fontsize="small", loc="lower right")
    return save_png(figure, Path(path))
