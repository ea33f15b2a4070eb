"""Datasets of many recordings: --data as folders, files, globs and dataset YAML files with
per-source options (streams, scale, loss weights, evaluation intervals, sampling weight), each
taking effect where it should, recorded in run.json for --resume and evaluate."""

from __future__ import annotations

import csv
import json
import math
import shutil

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL, simulated, tiny_run_config
from hypothesis import given, settings
from hypothesis import strategies as st
from test_training import (
    _train_cut_after_first_checkpoint as train_cut_after_first_checkpoint,
)

from neuropoyo import trained as trained_module
from neuropoyo.cli import main
from neuropoyo.data.dataset import (
    Dataset,
    SourceOptions,
    dataset_from_dict,
    load_dataset,
    read_dataset_file,
    run_dataset,
)
from neuropoyo.data.directory import find_recordings, write_dataset
from neuropoyo.data.intervals import Intervals
from neuropoyo.data.simulate import TASKS
from neuropoyo.errors import ConfigError, DataError
from neuropoyo.evaluation.evaluate import evaluate
from neuropoyo.evaluation.selection import EvaluationConfig, split_evaluation_mask
from neuropoyo.pipeline import (
    AugmentConfig,
    LossConfig,
    RandomWindowSampler,
    RecordingSet,
    Window,
    WindowDataset,
    random_windows,
    training_pipeline,
)
from neuropoyo.pipeline.samplers import windows_per_epoch
from neuropoyo.training import loop as loop_module
from neuropoyo.training.config import RunConfig

READOUTS = {"hand_vel": 2, "hand_pos": 2}


@pytest.fixture(scope="module")
def sim_root(tmp_path_factory):
    """root/co/<center-out>.h5 and root/rt/<random-target>.h5 of one simulated animal (lab a)."""
    root = tmp_path_factory.mktemp("sim")
    for recording in simulated(tasks=TASKS):
        write_dataset([recording], root / {"center_out": "co", "random_target": "rt"}[recording.info.task])
    assert sorted(p.parent.name for p in root.glob("*/*.h5")) == ["co", "rt"]
    return root


def write_spec(path, text: str):
    path.write_text(text)
    return path


# --- the dataset file: schema, patterns, errors ------------------------------------------------


def test_a_dataset_file_reads_patterns_relative_to_its_folder_with_typed_options(sim_root, tmp_path):
    spec = write_spec(
        sim_root / "mix.yaml",
        "sources:\n"
        "  - recordings: co/*.h5\n"
        "    readouts: hand_vel\n"
        "    normalize: lab_scalar\n"
        "    interval_weights: {reach: 2}\n"
        "    evaluation_intervals: [all]\n"
        "    weight: 3\n"
        "  - recordings: [rt]\n",
    )
    dataset = read_dataset_file(spec)
    assert dataset.paths == tuple(sorted((sim_root / "co").glob("*.h5")) + sorted((sim_root / "rt").glob("*.h5")))
    assert dataset.options == (
        SourceOptions(readouts=("hand_vel",), normalize="lab_scalar", interval_weights={"reach": 2.0},
                      evaluation_intervals=("all",), weight=3.0),
        SourceOptions(),
    )
    assert dataset.weights == (3.0, 1.0)
    again = dataset_from_dict(json.loads(json.dumps(dataset.to_dict())), source="run.json")
    assert again == Dataset(tuple(p.resolve() for p in dataset.paths), dataset.options)
    assert load_dataset([spec]) == dataset  # --data mix.yaml
    assert load_dataset([str(sim_root / "*" / "*.h5")]).paths == dataset.paths  # a quoted glob
    assert load_dataset([str(sim_root / "**")]).paths == dataset.paths  # folders matched by a glob
    assert find_recordings([str(sim_root / "r*")]) == list(dataset.paths[1:])


@pytest.mark.parametrize(
    "text, error, message",
    [
        ("sources:\n  - recordings: co\n    weigth: 2\n", ConfigError, r"mix.yaml: unknown sources\[0\] option\(s\) \['weigth'\]"),
        ("source: []\n", ConfigError, r"mix.yaml: a dataset file holds 'sources:'"),
        ("sources: []\nextra: 1\n", ConfigError, r"mix.yaml: unknown dataset key\(s\) \['extra'\]"),
        ("sources:\n  - readouts: [hand_vel]\n", ConfigError, r"mix.yaml: sources\[0\] must be a mapping with 'recordings'"),
        ("sources:\n  - recordings: co\n    normalize: zscore\n", ConfigError, "mix.yaml: normalize must be one of per_dim, lab_scalar"),
        ("sources:\n  - recordings: co\n    weight: -1\n", ConfigError, "mix.yaml: weight must be a finite number >= 0"),
        ("sources:\n  - recordings: co\n    weight: '2'\n", ConfigError, "mix.yaml: sources\\[0\\].weight must be float"),
        ("sources:\n  - recordings: co\n    interval_weights: {reach: -5}\n", ConfigError, "weight of 'reach' must be finite and >= 0"),
        ("sources:\n  - recordings: co\n    evaluation_intervals: [all, reach]\n", ConfigError, "cannot be combined"),
        ("sources:\n  - recordings: co\n    readouts: []\n", ConfigError, "readouts must be a name or a non-empty list"),
        ("sources:\n  - recordings: nowhere/*.h5\n", FileNotFoundError, r"mix.yaml: sources\[0\].recordings: .*nowhere/\*.h5: no file or folder matches"),
        ("sources:\n  - recordings: co\n  - recordings: co/*.h5\n", DataError, "recording listed twice"),
        ("sources: [\n", ConfigError, "mix.yaml: line 2, column 1: not valid YAML"),
    ],
)
def test_a_bad_dataset_file_names_the_file_and_the_key(sim_root, tmp_path, text, error, message):
    shutil.copytree(sim_root / "co", tmp_path / "co")
    with pytest.raises(error, match=message):
        load_dataset([write_spec(tmp_path / "mix.yaml", text)])


def test_recordings_outside_a_dataset_file_take_the_default_options(sim_root):
    dataset = load_dataset([sim_root / "co", str(sim_root / "rt" / "*.h5")])
    assert len(dataset) == 2 and dataset.options == (SourceOptions(),) * 2
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        load_dataset([sim_root / "missing"])
    with pytest.raises(DataError, match="listed twice"):
        load_dataset([sim_root / "co", str(sim_root / "c*")])


# --- sampling weights ---------------------------------------------------------------------------


spans_strategy = st.lists(
    st.lists(st.tuples(st.floats(0, 50), st.floats(0, 5)), min_size=1, max_size=4).map(
        lambda pairs: Intervals([a for a, _ in pairs], [a + d for a, d in pairs]).merged()
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=30, deadline=None)
@given(spans=spans_strategy, seed=st.integers(0, 2**16), weights=st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.7]), min_size=4, max_size=4))
def test_a_recording_of_weight_w_gets_w_times_its_windows_and_weight_one_changes_nothing(spans, seed, weights):
    plain = random_windows(spans, context_s=1.0, rng=np.random.default_rng(seed))
    ones = random_windows(spans, context_s=1.0, rng=np.random.default_rng(seed), weights=[1.0] * len(spans))
    assert ones == plain  # bit for bit: the same windows in the same order
    weights = weights[: len(spans)]
    drawn = random_windows(spans, context_s=1.0, rng=np.random.default_rng(seed), weights=weights)
    counts = np.bincount([w.recording for w in drawn], minlength=len(spans))
    want = [math.ceil(w * s.total_duration()) if s.total_duration() > 0 else 0 for s, w in zip(spans, weights)]
    assert counts.tolist() == want
    assert windows_per_epoch(spans, context_s=1.0, weights=weights) == sum(want)
    for window in drawn:  # still inside their spans
        s = spans[window.recording]
        assert s.contains(np.array([window.start])).all() or window.start in s.end


def test_the_sampler_draws_by_the_sources_weights_and_refuses_bad_ones():
    spans = [Intervals.single(0.0, 10.0), Intervals.single(0.0, 10.0)]
    sampler = RandomWindowSampler(spans, context_s=1.0, seed=3, weights=[1.0, 4.0])
    counts = np.bincount([w.recording for w in sampler])
    assert counts.tolist() == [10, 40] and len(sampler) == 50
    plain = RandomWindowSampler(spans, context_s=1.0, seed=3)
    assert list(RandomWindowSampler(spans, context_s=1.0, seed=3, weights=[1, 1])) == list(plain)
    for bad in ([1.0], [1.0, -1.0], [1.0, float("nan")]):
        with pytest.raises(ValueError, match="one finite weight >= 0 per recording"):
            RandomWindowSampler(spans, context_s=1.0, seed=3, weights=bad)


# --- where each option takes effect ---------------------------------------------------------------


def test_each_source_keeps_its_own_scale_and_one_brainset_cannot_have_two(sim_root, tmp_path):
    spec = write_spec(
        sim_root / "scales.yaml",
        "sources:\n"
        "  - {recordings: co, readouts: [hand_vel], normalize: lab_scalar}\n"
        "  - {recordings: rt, readouts: [hand_pos]}\n",
    )
    recordings = RecordingSet(load_dataset([spec]), readouts=READOUTS)
    vel = recordings.normalizer.scale("sim_lab_a", "hand_vel")
    pos = recordings.normalizer.scale("sim_lab_a", "hand_pos")
    assert vel.mean[0] == vel.mean[1] and vel.std[0] == vel.std[1]  # one scalar (lab_scalar)
    assert pos.std[0] != pos.std[1]  # per dimension (the run's default)
    co = recordings.files[0]
    values = co.stream("hand_vel").values[co.splits["train"].contains(co.stream("hand_vel").timestamps)]
    assert vel.std[0] == pytest.approx(values.std())  # fitted on the source's own recordings
    write_spec(spec, "sources:\n  - {recordings: co, normalize: lab_scalar}\n  - {recordings: rt}\n")
    with pytest.raises(ConfigError, match="brainset 'sim_lab_a', stream 'hand_vel' is scaled lab_scalar .* but per_dim"):
        RecordingSet(load_dataset([spec]), readouts=READOUTS)


def test_each_source_weighs_its_intervals_in_the_loss(sim_root):
    spec = write_spec(
        sim_root / "weights.yaml",
        "sources:\n  - {recordings: co, interval_weights: {reach: 2.0, hold: 0.5}}\n  - {recordings: rt}\n",
    )
    recordings = RecordingSet(load_dataset([spec]), readouts={"hand_vel": 2})
    pipeline = training_pipeline(
        recordings, context_length_s=1.0,
        loss=LossConfig(exclude_acceleration_factor=None, output_samples=10_000), augment=AugmentConfig(),
    )
    dataset = WindowDataset(recordings, pipeline)
    seen = {0: set(), 1: set()}
    for r in (0, 1):
        for span_start, span_end in zip(*(recordings.split_spans("train")[r].start, recordings.split_spans("train")[r].end)):
            if span_end - span_start >= 1.0:
                _, tokens = dataset[Window(r, float(span_start), float(span_start) + 1.0, key=(0, r))]
                seen[r] |= set(np.round(tokens["target_weights"], 6).tolist())
    assert seen[0] <= {1.0, 2.0, 0.5, 1.0 * 2.0 * 0.5} and {2.0, 0.5} & seen[0]  # the source's weights
    assert seen[1] <= {1.0, 5.0} and 5.0 in seen[1]  # the run's loss.interval_weights (reach: 5)


# --- training, resume and evaluation with a dataset -------------------------------------------------


def run_config(steps: int, checkpoint_every: int, readouts=None) -> RunConfig:
    return tiny_run_config(
        model={"readouts": readouts} if readouts else None, lr=1e-3, max_steps=steps,
        checkpoint_every=checkpoint_every,
    )


def losses(run_dir) -> list[float]:
    with open(run_dir / "metrics.csv") as f:
        return [float(row["loss"]) for row in csv.DictReader(f)]


def test_a_dataset_file_without_options_trains_exactly_as_the_folders(sim_root, tmp_path):
    spec = write_spec(tmp_path / "plain.yaml", f"sources:\n  - recordings: [{sim_root}/co, {sim_root}/rt]\n")
    loop_module.train(run_config(3, 3), [sim_root / "co", sim_root / "rt"], tmp_path / "folders", progress=False)
    loop_module.train(run_config(3, 3), [spec], tmp_path / "spec", progress=False)
    assert losses(tmp_path / "spec") == losses(tmp_path / "folders")
    a = trained_module.load_model(tmp_path / "folders").model.state_dict()
    b = trained_module.load_model(tmp_path / "spec").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    info = json.loads((tmp_path / "spec" / "run.json").read_text())
    assert info["dataset"] == json.loads((tmp_path / "folders" / "run.json").read_text())["dataset"]
    assert info["data"] == [str(p.resolve()) for p in find_recordings([sim_root / "co", sim_root / "rt"])]


def samples_by_stream(summary: dict) -> dict[tuple[str, str], int]:
    """(recording id, stream) -> samples scored, from an evaluation summary."""
    return {
        (rid, stream): metrics["samples"]
        for rid, record in summary["recordings"].items()
        for stream, metrics in record["streams"].items()
    }


def test_resume_and_evaluate_read_the_dataset_and_its_options_from_run_json(sim_root, tmp_path, monkeypatch):
    spec = write_spec(
        tmp_path / "mix.yaml",
        f"sources:\n"
        f"  - {{recordings: {sim_root}/co, readouts: [hand_vel], weight: 2, evaluation_intervals: [all]}}\n"
        f"  - {{recordings: {sim_root}/rt, readouts: [hand_pos], interval_weights: {{reach: 1.0}}}}\n",
    )
    config = run_config(4, 2, readouts=READOUTS)
    run = tmp_path / "run"
    train_cut_after_first_checkpoint(config, [spec], run, monkeypatch)
    recorded = run_dataset(run)
    assert recorded == Dataset(tuple(p.resolve() for p in load_dataset([spec]).paths), load_dataset([spec]).options)
    write_spec(spec, spec.read_text().replace("weight: 2", "weight: 3"))
    with pytest.raises(ConfigError, match="per-source options"):
        loop_module.train(config, [spec], run, resume=True, progress=False)
    with pytest.raises(ConfigError, match="name the recordings"):
        loop_module.train(config, None, run, progress=False)
    loop_module.train(config, None, run, resume=True, progress=False)  # the run's own dataset
    full = tmp_path / "full"
    loop_module.train(config, recorded, full, progress=False)
    assert losses(run) == losses(full)
    # the sampler gave co twice its windows: 2 * ceil(d_co) + ceil(d_rt) per epoch
    recordings = RecordingSet(recorded, readouts=READOUTS)
    spans = recordings.split_spans("train")
    assert loop_module.epoch_batches(recordings, config).windows.windows_per_epoch == (
        math.ceil(2 * spans[0].total_duration()) + math.ceil(spans[1].total_duration())
    )
    summary = evaluate(run, None, tmp_path / "eval", split="test")
    scored = samples_by_stream(summary)
    co, rt = recordings.files
    assert set(scored) == {(co.recording_id, "hand_vel"), (rt.recording_id, "hand_pos")}  # each source's stream
    test = co.splits["test"]
    stream = co.stream("hand_vel")
    assert scored[(co.recording_id, "hand_vel")] == int(test.contains(stream.timestamps).sum())  # 'all'
    model_default = split_evaluation_mask(co, test, stream.timestamps[test.contains(stream.timestamps)], EvaluationConfig())
    assert model_default.sum() < scored[(co.recording_id, "hand_vel")]  # reach only would score fewer
    overridden = evaluate(run, None, tmp_path / "eval2", split="test", eval_intervals=["reach"])
    counts = samples_by_stream(overridden)
    assert counts[(co.recording_id, "hand_vel")] == int(model_default.sum())  # the command line wins


def test_cli_train_takes_a_quoted_glob_and_needs_data_unless_resuming(sim_root, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(json.dumps({"model": TINY_MODEL, "training": {"batch_size": 4, "max_steps": 2, "validate_every": 0}}))
    pattern = str(sim_root / "*" / "*.h5")
    assert main(["train", "--config", str(config), "--data", pattern, "--out", str(tmp_path / "run")]) == 0
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["data"] == [str(p.resolve()) for p in find_recordings([pattern])] and len(info["data"]) == 2
    assert main(["train", "--config", str(config), "--out", str(tmp_path / "other")]) == 2
    assert "name the recordings with --data" in capsys.readouterr().err
