"""Embedding maps: PCA against a reference, recovered structure, CSV round-trip, the command."""

import csv
import dataclasses
import sys
import types

import numpy as np
import pytest
import torch
from conftest import NO_DROPOUT, TINY_MODEL

from neuropoyo.cli import main
from neuropoyo.data.normalize import Normalizer, Scale
from neuropoyo.data.recording import RecordingInfo
from neuropoyo.data.store import read_recording, write_recording
from neuropoyo.errors import CheckpointError, ConfigError, DataError
from neuropoyo.evaluation.embeddings import (
    UNKNOWN,
    EmbeddingMaps,
    default_out_dir,
    map_embeddings,
    pca_2d,
    umap_2d,
    write_maps,
)
from neuropoyo.model.config import POYOConfig
from neuropoyo.model.poyo import POYO
from neuropoyo.tokens.vocab import Vocabulary
from neuropoyo.trained import TrainedModel, load_model

SMALL = ["--animals", "2", "--days", "1", "--trials", "16", "--duration-s", "30"]
DIM = 8


def tiny_trained(session_ids, unit_ids, session_rows=None, unit_rows=None) -> TrainedModel:
    """A POYO of width 8 with the given vocabularies and (optionally) embedding rows."""
    torch.manual_seed(0)
    config = POYOConfig(**dict(
        TINY_MODEL, **NO_DROPOUT, num_units=len(unit_ids), num_sessions=len(session_ids), dim=DIM, head_dim=4,
        cross_heads=4, num_latent_timestamps=2,
    ))
    model = POYO(config)
    with torch.no_grad():
        if session_rows is not None:
            model.session_emb.weight.copy_(torch.as_tensor(session_rows))
        if unit_rows is not None:
            model.unit_emb.weight.copy_(torch.as_tensor(unit_rows))
    return TrainedModel(
        model=model,
        unit_vocab=Vocabulary(unit_ids),
        session_vocab=Vocabulary(session_ids),
        normalizer=Normalizer({"lab": {"hand_vel": Scale(mean=(0.0, 0.0), std=(1.0, 1.0))}}),
        settings={},
    )


def same_up_to_sign(a: np.ndarray, b: np.ndarray) -> bool:
    signs = np.sign(np.sum(a * b, axis=0))
    return np.allclose(a, b * signs, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pca_equals_the_projection_on_the_top_eigenvectors_of_the_covariance(seed):
    rows = np.random.default_rng(seed).normal(size=(9, 6)) * np.array([5, 3, 1, 1, 0.5, 0.2])
    xy, explained = pca_2d(rows)
    centred = rows - rows.mean(axis=0)
    values, vectors = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
    reference = centred @ vectors[:, [-1, -2]]
    assert same_up_to_sign(xy, reference)
    np.testing.assert_allclose(explained, values[[-1, -2]] / values.sum(), rtol=1e-10)
    farthest = np.abs(xy).argmax(axis=0)
    assert (xy[farthest, [0, 1]] > 0).all()  # the sign convention


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pca_is_unchanged_by_a_rotation_and_an_offset_of_the_rows(seed):
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(12, 5)) * np.array([4, 2, 1, 0.5, 0.1])
    rotation, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    moved = rows @ rotation + rng.normal(size=5) * 10
    xy, explained = pca_2d(rows)
    moved_xy, moved_explained = pca_2d(moved)
    np.testing.assert_allclose(moved_xy, xy, atol=1e-9)  # the sign convention holds too
    np.testing.assert_allclose(moved_explained, explained, rtol=1e-10)


def test_pca_of_one_row_is_the_origin_and_of_two_rows_a_line():
    xy, explained = pca_2d(np.array([[1.0, 2.0, 3.0]]))
    assert xy.shape == (1, 2) and (xy == 0).all() and (explained == 0).all()
    xy, explained = pca_2d(np.array([[1.0, 1.0], [3.0, 1.0]]))
    np.testing.assert_allclose(xy, [[-1.0, 0.0], [1.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(explained, [1.0, 0.0], atol=1e-12)


def two_animal_model(rng: np.random.Generator) -> tuple[TrainedModel, list[RecordingInfo]]:
    """Six sessions, three per animal, whose embeddings sit around +-3 along a random direction
    (noise 0.1): the first principal axis must split them by animal. The last session has no info."""
    direction = rng.normal(size=DIM)
    direction /= np.linalg.norm(direction)
    animals = ["alice", "alice", "alice", "bob", "bob", "bob"]
    sign = np.array([1.0 if a == "alice" else -1.0 for a in animals])
    rows = 3.0 * sign[:, None] * direction + 0.1 * rng.normal(size=(6, DIM))
    sessions = [f"lab_{'ab'[k % 2]}/{a}_day{k}" for k, a in enumerate(animals)]
    units = [f"{s}/{a}/n{j}" for s, a in zip(sessions, animals) for j in range(2)]
    infos = [
        RecordingInfo(recording_id=f"{a}_day{k}", brainset=f"lab_{'ab'[k % 2]}", subject=a, task="center_out")
        for k, a in enumerate(animals[:-1])
    ]
    return tiny_trained(sessions, units, session_rows=rows.astype(np.float32)), infos


def test_the_first_axis_separates_two_animals_and_labels_come_from_keys_and_infos():
    trained, infos = two_animal_model(np.random.default_rng(0))
    sessions, units = map_embeddings(trained, infos)
    x = sessions.xy[:, 0]
    assert len(set(np.sign(x[:3]))) == 1 and len(set(np.sign(x[3:]))) == 1 and np.sign(x[0]) != np.sign(x[3])
    assert sessions.explained[0] > 0.95
    assert sessions.labels["animal"] == ["alice"] * 3 + ["bob"] * 2 + [UNKNOWN]
    assert sessions.labels["task"] == ["center_out"] * 5 + [UNKNOWN]
    assert sessions.labels["lab"] == ["lab_a", "lab_b"] * 3
    assert sessions.labels["recording"] == [f"{a}_day{k}" for k, a in enumerate(["alice"] * 3 + ["bob"] * 3)]
    # units (never trained here: random rows) are all mapped, each with its session's labels
    assert units.ids == trained.unit_vocab.to_list() and units.xy.shape == (12, 2)
    assert units.labels["session"] == [s for s in sessions.ids for _ in range(2)]
    assert units.labels["animal"] == [a for a in sessions.labels["animal"] for _ in range(2)]


def test_unit_keys_find_the_longest_session_they_extend():
    sessions = ["lab/rec1", "lab/rec1/extra", "rec2"]  # the second: brainset "lab/rec1"
    units = ["lab/rec1/u0", "lab/rec1/extra/m/u1", "rec2/u2", "orphan/u3"]
    session_map, unit_map = map_embeddings(tiny_trained(sessions, units))
    assert session_map.labels["lab"] == ["lab", "lab/rec1", UNKNOWN]
    assert session_map.labels["recording"] == ["rec1", "extra", "rec2"]
    assert unit_map.labels["session"] == ["lab/rec1", "lab/rec1/extra", "rec2", UNKNOWN]
    assert unit_map.labels["recording"] == ["rec1", "extra", "rec2", UNKNOWN]


def test_a_model_with_one_session_maps_it_to_the_origin():
    session_map, unit_map = map_embeddings(tiny_trained(["lab/rec"], ["lab/rec/u0", "lab/rec/u1", "lab/rec/u2"]))
    assert session_map.xy.tolist() == [[0.0, 0.0]]
    assert unit_map.xy.shape == (3, 2) and unit_map.explained.sum() == pytest.approx(1.0)


def test_the_csv_reads_back_ids_labels_and_coordinates_exactly(tmp_path):
    trained, infos = two_animal_model(np.random.default_rng(1))
    session_ids = trained.session_vocab.to_list()
    session_ids[0] = "lab_a/alice, day 0"  # a comma and a space: the CSV must quote it
    trained.session_vocab = Vocabulary(session_ids)
    sessions, units = map_embeddings(trained, infos)
    paths = write_maps(EmbeddingMaps(sessions, units, [], [session_ids[-1]]), tmp_path)
    assert [p.name for p in paths] == ["sessions.csv", "units.csv", "sessions.png", "units.png"]
    for table, path in ((sessions, paths[0]), (units, paths[1])):
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        assert list(rows[0]) == ["id", *table.labels, "x", "y"]
        assert [r["id"] for r in rows] == table.ids
        for column, values in table.labels.items():
            assert [r[column] for r in rows] == values
        assert np.array_equal([[float(r["x"]), float(r["y"])] for r in rows], table.xy)
    for png in paths[2:]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_umap_is_called_with_the_rows_and_a_neighbourhood_that_fits(monkeypatch):
    calls = {}

    class FakeUMAP:  # stands in for umap-learn: returns the first two columns
        def __init__(self, **kwargs):
            calls.update(kwargs)

        def fit_transform(self, rows):
            return rows[:, :2]

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=FakeUMAP))
    trained, infos = two_animal_model(np.random.default_rng(2))
    sessions, _ = map_embeddings(trained, infos, method="umap", seed=7)
    np.testing.assert_array_equal(sessions.xy, trained.model.session_emb.weight.detach().double().numpy()[:, :2])
    assert sessions.explained is None and sessions.method == "umap"
    assert calls == {"n_components": 2, "n_neighbors": 11, "random_state": 7, "n_jobs": 1}  # last call: 12 units
    with pytest.raises(DataError, match="at least 4"):
        umap_2d(np.zeros((3, DIM)))


def test_umap_without_umap_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # import umap raises ImportError
    with pytest.raises(ConfigError, match=r"neuropoyo\[embeddings\]"):
        umap_2d(np.zeros((5, DIM)))


def test_a_table_that_disagrees_with_its_vocabulary_is_refused():
    trained = tiny_trained(["lab/a", "lab/b"], ["lab/a/u0"])
    trained.session_vocab = Vocabulary(["lab/a"])
    with pytest.raises(CheckpointError, match="session embedding has 2 rows but the session vocabulary 1"):
        map_embeddings(trained)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A POYO trained for 2 steps on 4 simulated recordings (2 animals x 2 tasks)."""
    root = tmp_path_factory.mktemp("embed")
    assert main(["simulate", "--out", str(root / "sim"), *SMALL]) == 0
    argv = ["train", "--config", "cpu-small", "--data", str(root / "sim"), "--out", str(root / "run")]
    assert main([*argv, "--max-steps", "2"]) == 0
    return root


def test_the_command_writes_maps_labelled_from_the_data_and_skips_unseen_recordings(trained_run, tmp_path, capsys):
    sim, run = trained_run / "sim", trained_run / "run"
    data = tmp_path / "data"
    data.mkdir()
    files = sorted(sim.glob("*.h5"))
    for path in files:
        (data / path.name).write_bytes(path.read_bytes())
    stranger = read_recording(files[0])
    info = dataclasses.replace(stranger.info, recording_id="never_seen")
    write_recording(dataclasses.replace(stranger, info=info), data / "never_seen.h5")
    capsys.readouterr()
    assert main(["embeddings", "--model", str(run), "--data", str(data), "--out", str(tmp_path / "maps")]) == 0
    out = capsys.readouterr().out
    assert f"skipped {data / 'never_seen.h5'}" in out and "unknown" not in out
    trained = load_model(run)
    with open(tmp_path / "maps" / "sessions.csv", newline="") as f:
        sessions = list(csv.DictReader(f))
    assert [r["id"] for r in sessions] == trained.session_vocab.to_list()
    expected = {(p.stem, read_recording(p).info.subject, read_recording(p).info.task) for p in files}
    assert {(r["recording"], r["animal"], r["task"]) for r in sessions} == expected
    with open(tmp_path / "maps" / "units.csv", newline="") as f:
        assert [r["id"] for r in csv.DictReader(f)] == trained.unit_vocab.to_list()
    for name in ("sessions.png", "units.png"):
        assert (tmp_path / "maps" / name).stat().st_size > 0
        assert str(tmp_path / "maps" / name) in out


def test_the_command_without_data_says_animal_and_task_are_unknown(trained_run, capsys):
    run = trained_run / "run"
    assert main(["embeddings", "--model", str(run)]) == 0
    out = capsys.readouterr().out
    assert "animal and task unknown for 4 of 4 sessions (pass their recording files with --data)" in out
    with open(run / "embeddings" / "sessions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["animal"] for r in rows} == {r["task"] for r in rows} == {UNKNOWN}
    assert {r["lab"] for r in rows} == {"sim_lab_a", "sim_lab_b"}
    assert default_out_dir(run / "model") == run / "model_embeddings"  # never inside a model directory


def test_the_command_explains_bad_input(trained_run, tmp_path, monkeypatch, capsys):
    assert main(["embeddings", "--model", str(tmp_path)]) == 2
    assert "no model here" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "umap", None)
    assert main(["embeddings", "--model", str(trained_run / "run"), "--method", "umap", "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "umap-learn" in err and "pip install 'neuropoyo[embeddings]'" in err
