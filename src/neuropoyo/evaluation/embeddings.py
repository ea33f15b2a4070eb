"""Embedding maps (paper Figure 5D): a trained model's session and unit embeddings in two dimensions.

:func:`embedding_maps` writes one folder::

    sessions.csv   id, lab, recording, animal, task, x, y            one row per session embedding row
    units.csv      id, session, lab, recording, animal, task, x, y   one row per unit embedding row
    sessions.png   the session map coloured by animal, task and lab
    units.png      the unit map coloured by recording and by animal

Lab (brainset) and recording come from the vocabulary keys (:func:`neuropoyo.tokens.vocab.session_key`);
animal (``RecordingInfo.subject``) and task from the recording files given as data, and are
:data:`UNKNOWN` for a session without one. Every row of the tables is mapped, trained or not.
Coordinates: PCA of the centred rows by default; UMAP with umap-learn (the ``embeddings`` extra).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from neuropoyo.data.directory import find_recordings
from neuropoyo.data.recording import RecordingInfo
from neuropoyo.data.store import open_recording
from neuropoyo.errors import CheckpointError, ConfigError, DataError
from neuropoyo.evaluation.report import new_figure, save_png
from neuropoyo.io import published_dir, write_text_atomic
from neuropoyo.tokens.vocab import Vocabulary, session_key
from neuropoyo.trained import TrainedModel, load_model, model_dir

METHODS = ("pca", "umap")
UNKNOWN = "unknown"
SESSION_COLUMNS = ("lab", "recording", "animal", "task")
SESSION_PANELS = ("animal", "task", "lab")  # what the session map is coloured by, one panel each
UNIT_PANELS = ("recording", "animal")
MAX_LEGEND = 20  # legend entries shown per panel; the rest are counted
UMAP_MIN_ROWS = 4  # fewer rows leave UMAP no neighbourhood graph to lay out
UMAP_NEIGHBOURS = 15


@dataclass(frozen=True, eq=False)
class EmbeddingMap:
    """2-D map of one embedding table; row i of every field is the table's row i.

    ids: (N,) vocabulary keys. labels: column name -> (N,) str. xy: (N, 2) float64 coordinates.
    explained: (2,) fraction of the rows' total variance along x and y (PCA), None for UMAP.
    """

    kind: str  # "session" or "unit"
    ids: list[str]
    labels: dict[str, list[str]]
    xy: np.ndarray
    method: str
    explained: np.ndarray | None


@dataclass(frozen=True, eq=False)
class EmbeddingMaps:
    """What :func:`embedding_maps` made: both maps, the data files skipped (their session is not
    in the model) and the model's sessions without a data file (animal and task unknown)."""

    sessions: EmbeddingMap
    units: EmbeddingMap
    skipped: list[Path]
    undescribed: list[str]


def pca_2d(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, D) rows -> (N, 2) coordinates on the first two principal axes of the centred rows, and
    (2,) the fraction of the total variance along each (0 where there is none).

    Each axis is signed so that the row farthest along it has a positive coordinate. Axes the rows
    do not span (N or D below 2, identical rows) give coordinates 0: one row lies at the origin.
    """
    rows = np.asarray(rows, dtype=np.float64)
    centred = rows - rows.mean(axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    xy, explained = np.zeros((len(rows), 2)), np.zeros(2)
    k = min(2, len(s))
    xy[:, :k] = u[:, :k] * s[:k]
    farthest = np.abs(xy).argmax(axis=0)
    xy *= np.where(xy[farthest, [0, 1]] < 0, -1.0, 1.0)
    total = float(np.sum(s**2))
    if total > 0:
        explained[:k] = s[:k] ** 2 / total
    return xy, explained


def umap_2d(rows: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """(N, D) rows -> (N, 2) UMAP coordinates (umap-learn, ``min(15, N - 1)`` neighbours)."""
    try:
        import umap
    except ImportError:
        raise ConfigError(
            "method 'umap' needs umap-learn, which is not installed: pip install 'neuropoyo[embeddings]' "
            "(or pip install umap-learn), or use method 'pca'"
        ) from None
    if len(rows) < UMAP_MIN_ROWS:
        raise DataError(
            f"UMAP needs at least {UMAP_MIN_ROWS} embedding rows, got {len(rows)}; use method 'pca'"
        )
    neighbours = min(UMAP_NEIGHBOURS, len(rows) - 1)
    # seeded UMAP runs on one thread; saying so spares its warning
    reducer = umap.UMAP(n_components=2, n_neighbors=neighbours, random_state=seed, n_jobs=1)
    return np.asarray(reducer.fit_transform(rows), dtype=np.float64)


def _split_session_key(key: str) -> tuple[str, str]:
    """(lab, recording) of a session key; lab UNKNOWN when the key has no brainset part."""
    lab, _, recording = key.rpartition("/")  # recording ids never hold '/'
    return lab or UNKNOWN, recording


def _session_of_unit(key: str, sessions: set[str]) -> str | None:
    """The longest session key that ``key`` extends (``<session>/<unit id>``); None if none."""
    prefix = key
    while "/" in prefix:
        prefix = prefix.rpartition("/")[0]
        if prefix in sessions:
            return prefix
    return None


def _session_labels(key: str, infos: dict[str, RecordingInfo]) -> dict[str, str]:
    lab, recording = _split_session_key(key)
    info = infos.get(key)
    return {
        "lab": lab,
        "recording": recording,
        "animal": (info.subject if info else "") or UNKNOWN,
        "task": (info.task if info else "") or UNKNOWN,
    }


def _table_rows(weight, vocab: Vocabulary, what: str) -> np.ndarray:
    """(N, D) float64 rows of an embedding table, checked against its vocabulary."""
    rows = weight.detach().cpu().double().numpy()
    if len(rows) != len(vocab):
        raise CheckpointError(
            f"the {what} embedding has {len(rows)} rows but the {what} vocabulary {len(vocab)} ids; "
            "the model directory's files come from different models"
        )
    if not np.isfinite(rows).all():
        raise CheckpointError(f"the {what} embedding holds NaN or infinite values: the model diverged")
    return rows


def _map(kind: str, ids, labels, rows: np.ndarray, method: str, seed: int) -> EmbeddingMap:
    xy, explained = pca_2d(rows) if method == "pca" else (umap_2d(rows, seed=seed), None)
    return EmbeddingMap(kind, ids, labels, xy, method, explained)


def map_embeddings(
    trained: TrainedModel, infos: Sequence[RecordingInfo] = (), *, method: str = "pca", seed: int = 0
) -> tuple[EmbeddingMap, EmbeddingMap]:
    """The (session map, unit map) of ``trained``; ``infos`` describe (some of) its sessions.

    method: "pca" or "umap"; seed: UMAP's random state.
    """
    if method not in METHODS:
        raise ConfigError(f"embedding map method {method!r}: choose one of {', '.join(METHODS)}")
    described = {session_key(i.brainset, i.recording_id): i for i in infos}
    session_ids, unit_ids = trained.session_vocab.to_list(), trained.unit_vocab.to_list()
    session_rows = _table_rows(trained.model.session_emb.weight, trained.session_vocab, "session")
    unit_rows = _table_rows(trained.model.unit_emb.weight, trained.unit_vocab, "unit")
    per_session = {key: _session_labels(key, described) for key in session_ids}
    no_session = dict.fromkeys(SESSION_COLUMNS, UNKNOWN)  # a unit key that extends no session key
    known = set(session_ids)
    unit_sessions = [_session_of_unit(key, known) for key in unit_ids]
    session_labels = {c: [per_session[k][c] for k in session_ids] for c in SESSION_COLUMNS}
    unit_labels = {"session": [s or UNKNOWN for s in unit_sessions]} | {
        c: [per_session.get(s, no_session)[c] for s in unit_sessions] for c in SESSION_COLUMNS
    }
    return (
        _map("session", session_ids, session_labels, session_rows, method, seed),
        _map("unit", unit_ids, unit_labels, unit_rows, method, seed),
    )


def session_infos(trained: TrainedModel, data: Sequence[str | Path]) -> tuple[list[RecordingInfo], list[Path]]:
    """The RecordingInfo of each recording file in ``data`` (files or folders) whose session the
    model knows, and the files whose session it does not (skipped)."""
    infos, skipped = [], []
    for path in find_recordings(data):
        with open_recording(path) as file:
            info = file.info
        if session_key(info.brainset, info.recording_id) in trained.session_vocab:
            infos.append(info)
        else:
            skipped.append(path)
    return infos, skipped


def map_csv(embedding_map: EmbeddingMap) -> str:
    """CSV text: id, the label columns, x, y; floats as %.17g so they read back exactly."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["id", *embedding_map.labels, "x", "y"])
    columns = list(embedding_map.labels.values())
    for row, (id_, (x, y)) in enumerate(zip(embedding_map.ids, embedding_map.xy)):
        writer.writerow([id_, *(c[row] for c in columns), f"{x:.17g}", f"{y:.17g}"])
    return text.getvalue()


def _axis_labels(embedding_map: EmbeddingMap) -> tuple[str, str]:
    if embedding_map.explained is None:
        return "UMAP 1", "UMAP 2"
    return tuple(f"PC{k + 1} ({v:.0%} of variance)" for k, v in enumerate(embedding_map.explained))


def _colours(n: int) -> list:
    """n distinguishable colours: matplotlib's cycle up to 10, tab20 up to 20, then turbo."""
    from matplotlib import colormaps

    if n <= 10:
        return [f"C{k}" for k in range(n)]
    if n <= 20:
        return [colormaps["tab20"](k) for k in range(n)]
    return [colormaps["turbo"](v) for v in np.linspace(0.0, 1.0, n)]


def plot_map(embedding_map: EmbeddingMap, panels: Sequence[str], note: str = ""):
    """One scatter panel per label column in ``panels``, points coloured by that column."""
    from matplotlib.lines import Line2D

    figure = new_figure(6.0 * len(panels), 4.8)
    marker_size = 60 if len(embedding_map.ids) <= 200 else 10
    xlabel, ylabel = _axis_labels(embedding_map)
    for axes, column in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        labels = np.asarray(embedding_map.labels[column])
        names = sorted(set(labels.tolist()))
        colours = dict(zip(names, _colours(len(names))))
        for name in names:
            points = embedding_map.xy[labels == name]
            axes.scatter(points[:, 0], points[:, 1], s=marker_size, color=colours[name], alpha=0.8, linewidths=0)
        handles = [
            Line2D([], [], marker="o", linestyle="", color=colours[n], label=n) for n in names[:MAX_LEGEND]
        ]
        if len(names) > MAX_LEGEND:
            handles.append(Line2D([], [], linestyle="", label=f"and {len(names) - MAX_LEGEND} more"))
        axes.legend(handles=handles, title=column, fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        axes.set_title(f"coloured by {column}")
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
    method = "PCA" if embedding_map.method == "pca" else "UMAP"
    title = f"{embedding_map.kind} embeddings ({len(embedding_map.ids)} rows), {method}"
    figure.suptitle(f"{title}\n{note}" if note else title)
    return figure


def _missing_note(undescribed: Sequence[str], n_sessions: int) -> str:
    if not undescribed:
        return ""
    if len(undescribed) == n_sessions:
        return "animal and task unknown: no recording file given for any session (pass them with --data)"
    return f"animal and task unknown for {len(undescribed)} of {n_sessions} sessions (no recording file)"


def write_maps(maps: EmbeddingMaps, out_dir: str | Path) -> list[Path]:
    """sessions.csv, units.csv, sessions.png and units.png in ``out_dir``, each written atomically."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    note = _missing_note(maps.undescribed, len(maps.sessions.ids))
    return [
        write_text_atomic(out_dir / "sessions.csv", map_csv(maps.sessions)),
        write_text_atomic(out_dir / "units.csv", map_csv(maps.units)),
        save_png(plot_map(maps.sessions, SESSION_PANELS, note), out_dir / "sessions.png"),
        save_png(plot_map(maps.units, UNIT_PANELS, note), out_dir / "units.png"),
    ]


def default_out_dir(model: str | Path) -> Path:
    """Where maps go without an output folder: ``RUN/embeddings`` for a run directory, else a
    folder ``<model dir>_embeddings`` beside the model directory (never inside it)."""
    model = Path(model)
    is_run = model_dir(model) != published_dir(model)
    return model / "embeddings" if is_run else model.with_name(f"{model.name}_embeddings")


def embedding_maps(
    model: str | Path,
    out_dir: str | Path | None = None,
    *,
    data: Sequence[str | Path] = (),
    method: str = "pca",
    seed: int = 0,
) -> tuple[EmbeddingMaps, list[Path]]:
    """Map the session and unit embeddings of the model at ``model`` (run or model directory) and
    write the maps to ``out_dir`` (default :func:`default_out_dir`; layout in the module docstring).

    data: recording files or folders that give the sessions' animal and task. method: "pca" or
    "umap"; seed: UMAP's random state. Returns the maps and the files written.
    """
    trained = load_model(model)
    infos, skipped = session_infos(trained, data) if data else ([], [])
    sessions, units = map_embeddings(trained, infos, method=method, seed=seed)
    described = {session_key(i.brainset, i.recording_id) for i in infos}
    maps = EmbeddingMaps(sessions, units, skipped, [k for k in sessions.ids if k not in described])
    return maps, write_maps(maps, default_out_dir(model) if out_dir is None else out_dir)
