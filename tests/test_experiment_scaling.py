"""neuropoyo experiment scaling: the grid, its files, resuming, parameter and token counts, and
bad options (tiny model, a few steps: the real run is in benchmarks/RESULTS.md)."""

import csv
import json

import numpy as np
import pytest
from conftest import simulated, tiny_run_config

from neuropoyo.cli import main
from neuropoyo.data.directory import write_dataset
from neuropoyo.data.store import open_recording, read_recording
from neuropoyo.errors import ConfigError
from neuropoyo.experiments import scaling as experiment
from neuropoyo.experiments.scaling import ScalingPlan, batch_tokens, tokens_seen
from neuropoyo.pipeline import (
    RecordingSet,
    WindowDataset,
    training_pipeline,
    window_loader,
)
from neuropoyo.trained import load_model
from neuropoyo.training.loop import epoch_batches

CONFIG = tiny_run_config(lr=1e-3, max_steps=3)
EMBEDDING_TABLES = ("unit_emb.", "session_emb.", "token_type_emb.", "latent_emb.", "task_emb.")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """3 animals, one day of 16 trials each."""
    recordings = simulated(animals=3, trials=16)
    return write_dataset(recordings, tmp_path_factory.mktemp("scaling") / "data")


def ids(paths):
    return [open_recording(p).recording_id for p in paths]


def test_the_grid_runs_resumes_and_writes_its_files(data, tmp_path, monkeypatch):
    plan = ScalingPlan(config=CONFIG, depths=(1, 2), recordings=(1, 2), seeds=(3,))
    results = experiment.run_scaling(tmp_path, plan, data, log=lambda _: None)
    rid = ids(data)
    rows = results["rows"]
    assert results["recordings"] == rid[:2]
    assert [(r["kind"], r["depth"], r["recordings"]) for r in rows] == [
        ("single", 1, 1), ("single", 1, 1), ("multi", 1, 1), ("multi", 1, 2), ("multi", 2, 1), ("multi", 2, 2),
    ]
    singles = {next(iter(r["r2_per_recording"])): r for r in rows if r["kind"] == "single"}
    assert list(singles) == rid[:2]
    assert rows[2] == {**singles[rid[0]], "kind": "multi", "single_session_r2": singles[rid[0]]["r2"]}  # reused
    for row in rows[2:]:
        assert list(row["r2_per_recording"]) == rid[: row["recordings"]]
    run = json.loads((tmp_path / "runs" / "seed3" / "depth2_dim32" / "2_recordings" / "run.json").read_text())
    assert run["config"]["training"]["seed"] == 3
    for row in rows:
        assert row["seed"] == 3
        assert row["r2"] == pytest.approx(np.mean(list(row["r2_per_recording"].values())))
        assert row["steps"] == 3 and [step for step, _, _ in row["curve"]] == [1, 2, 3]
        tokens = [t for _, t, _ in row["curve"]]
        assert 0 < tokens[0] < tokens[1] < tokens[2] == row["tokens"]
    for row in rows[3::2]:  # trained on two recordings
        assert row["single_session_r2"] == pytest.approx((singles[rid[0]]["r2"] + singles[rid[1]]["r2"]) / 2)
    with open(tmp_path / "scaling.csv") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == [*experiment.CSV_FIELDS, *(f"r2_{r}" for r in rid[:2])]
    assert [(t["kind"], int(t["depth"]), int(t["recordings"]), int(t["tokens"])) for t in table] == [
        (r["kind"], r["depth"], r["recordings"], r["tokens"]) for r in rows
    ]
    assert table[0][f"r2_{rid[1]}"] == "" and float(table[3][f"r2_{rid[1]}"]) == rows[3]["r2_per_recording"][rid[1]]
    assert (tmp_path / "scaling.png").stat().st_size > 0
    assert "| depth2_dim32 | " in (tmp_path / "table.md").read_text() and "Test R2, seed 3." in (tmp_path / "table.md").read_text()

    def refuse(*args, **kwargs):
        raise AssertionError("a finished fit was run again")

    monkeypatch.setattr(experiment, "train", refuse)
    again = experiment.run_scaling(tmp_path, plan, data, log=lambda _: None)
    assert again == json.loads((tmp_path / "scaling.json").read_text()) == results
    longer = ScalingPlan(config=CONFIG, depths=(1, 2), recordings=(1, 2), steps=4, seeds=(3,))
    with pytest.raises(ConfigError, match=r"single/.*\.json was fitted with another run file, number of steps"):
        experiment.run_scaling(tmp_path, longer, data, log=lambda _: None)
    with pytest.raises(ConfigError, match="set of recordings"):
        experiment.run_scaling(tmp_path, plan, [data[1], data[0]], log=lambda _: None)  # another order


def test_parameter_counts_are_the_models_own(data, tmp_path):
    plan = ScalingPlan(config=CONFIG, depths=(0, 2), widths=(16, 32), recordings=(2,), seeds=(0,))
    rows = experiment.run_scaling(tmp_path, plan, data, log=lambda _: None)["rows"]
    multi = [r for r in rows if r["kind"] == "multi"]
    assert [(r["dim"], r["depth"]) for r in multi] == [(16, 0), (16, 2), (32, 0), (32, 2)]
    for row in multi:
        model = load_model(tmp_path / "runs" / "seed0" / row["model"] / "2_recordings").model
        assert (model.config.dim, model.config.depth) == (row["dim"], row["depth"])
        named = dict(model.named_parameters())
        assert row["params"] == sum(p.numel() for p in named.values())
        assert row["non_embedding_params"] == sum(
            p.numel() for name, p in named.items() if not name.startswith(EMBEDDING_TABLES)
        )
    assert len({r["non_embedding_params"] for r in multi}) == 4


def direct_count(windows, opened) -> int:
    """For each recorded span inside each window: its spikes plus a START and an END token per
    unit of the recording."""
    count = 0
    for window in windows:
        recording = opened[window.recording]
        times = recording.spikes.times
        for start, end in zip(recording.domain.start, recording.domain.end):
            start, end = max(start, window.start), min(end, window.end)
            if end > start:
                count += int(np.sum((times >= start) & (times < end))) + 2 * len(recording.units)
    return count


def test_tokens_are_the_spikes_and_delimiters_of_the_batches(data):
    config = CONFIG.with_training(batch_size=6)
    recordings = RecordingSet(data, readouts=config.model.readouts, normalize=config.loss.normalize)
    batches = iter(epoch_batches(recordings, config))
    first, second = next(batches), next(batches)
    opened = [read_recording(p) for p in data]
    expected = direct_count(first, opened)
    assert tokens_seen(config, data, [1, 2]) == {1: expected, 2: expected + direct_count(second, opened)}
    pipeline = training_pipeline(recordings, context_length_s=1.0, loss=config.loss, augment=config.augment)
    loader = window_loader(WindowDataset(recordings, pipeline, seed=0), [first, first[:2]], num_workers=0)
    (_, batch), (_, smaller) = loader
    assert batch_tokens(batch) == expected
    assert batch_tokens(smaller) == direct_count(first[:2], opened) < smaller["input_mask"].numel()  # no padding


def test_bad_options_are_clear_errors(data, tmp_path, capsys):
    with pytest.raises(ConfigError, match="need one or more depths"):
        ScalingPlan(config=CONFIG, depths=())
    with pytest.raises(ConfigError, match="recording counts >= 1"):
        ScalingPlan(config=CONFIG, recordings=(0, 2))
    with pytest.raises(ConfigError, match="widths >= 1"):
        ScalingPlan(config=CONFIG, widths=())
    with pytest.raises(ConfigError, match="seeds must be distinct integers >= 0"):
        ScalingPlan(config=CONFIG, seeds=())
    plan = ScalingPlan(config=CONFIG, depths=(1,), recordings=(1, 5), seeds=(0,))
    with pytest.raises(ConfigError, match="up to 5 recordings but the data hold 3"):
        experiment.run_scaling(tmp_path, plan, data, log=lambda _: None)
    assert not (tmp_path / "runs").exists()  # refused before any fit
    out = str(tmp_path / "x")
    with pytest.raises(SystemExit) as stop:
        main(["experiment", "scaling", "--out", out, "--data", str(data[0].parent), "--depths", "1", "two"])
    assert stop.value.code == 2 and "argument --depths: expected an integer, got 'two'" in capsys.readouterr().err
    assert main(["experiment", "scaling", "--out", out, "--data", str(data[0].parent), "--recordings", "4"]) == 2
    assert "the data hold 3" in capsys.readouterr().err
    assert main(["experiment", "scaling", "--out", out, "--data", str(data[0].parent), "--animals", "2"]) == 2
    assert "drop them with --data" in capsys.readouterr().err


def test_the_table_gives_the_spread_over_seeds_and_paired_differences():
    def row(kind, seed, r2, recordings, single=None):
        per = {"a": r2} if recordings == 1 else {"a": r2 - 0.05, "b": r2 + 0.05}
        fields = {"kind": kind, "seed": seed, "model": "depth1_dim32", "depth": 1, "dim": 32, "params": 1000,
                  "non_embedding_params": 600, "recordings": recordings, "steps": 3, "tokens": 500, "r2": r2,
                  "r2_per_recording": per, "curve": [[3, 500, r2]]}
        return fields if single is None else {**fields, "single_session_r2": single}

    rows = [row("single", 0, 0.5, 1), row("multi", 0, 0.7, 2, single=0.6),
            row("single", 1, 0.7, 1), row("multi", 1, 0.6, 2, single=0.7)]
    table = experiment.format_table(rows, ["a", "b"])
    assert "Test R2, mean ± sd over 2 seeds." in table
    # multi 0.7, 0.6; single-session averages 0.6, 0.7; paired gains +0.1 and -0.1
    assert "| depth1_dim32 | 1,000 (600) | 2 | 3 | 500 | 0.6500 ± 0.0707 | 0.6500 ± 0.0707 | +0.0000 ± 0.1414 (1/2 above 0) |" in table
    assert "| a | 0.6000 ± 0.1414 | 0.6000 ± 0.0707 |" in table  # per recording: 0.65 and 0.55
    assert experiment.plot_scaling(rows) is not None
