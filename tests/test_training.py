"""Training pieces: windows, normalisation, unit dropout, loss weights, configs, checkpoints, resume."""

import csv
import dataclasses
import json
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import TINY_MODEL, build_recording, simulated, tiny_run_config

from neuropoyo import trained as trained_module
from neuropoyo.data.directory import find_recordings, write_dataset
from neuropoyo.data.intervals import Intervals
from neuropoyo.data.normalize import Normalizer, extreme_acceleration_spans
from neuropoyo.data.recording import TimeSeries
from neuropoyo.data.simulate import TASKS, simulate_dataset
from neuropoyo.errors import CheckpointError, ConfigError, TrainingError
from neuropoyo.evaluation import evaluate as evaluate_module
from neuropoyo.evaluation.evaluate import predict, recordings_for
from neuropoyo.evaluation.metrics import r2_score
from neuropoyo.model.config import POYOConfig
from neuropoyo.model.poyo import POYO
from neuropoyo.pipeline.config import AugmentConfig
from neuropoyo.pipeline.samplers import Window, random_windows, sliding_windows
from neuropoyo.pipeline.transforms import Sample, UnitDropout
from neuropoyo.training import checkpoint as checkpoint_module
from neuropoyo.training import loop as loop_module
from neuropoyo.training.config import PRESET_DIR, RunConfig, TrainConfig
from neuropoyo.training.loss import weighted_loss, weighted_errors
from neuropoyo.training.watch import CollapseWarning


@pytest.fixture(scope="module")
def sim_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    write_dataset(simulated(tasks=TASKS), out)
    return out


def test_random_windows_stay_inside_their_spans():
    spans = [Intervals([0.0, 5.0, 9.0], [4.0, 5.4, 20.0]), Intervals.single(100.0, 103.0)]
    windows = random_windows(spans, context_s=1.0, rng=np.random.default_rng(0))
    assert len(windows) == int(np.ceil(15.4)) + 3
    for w in windows:
        span = spans[w.recording]
        k = np.searchsorted(span.start, w.start, side="right") - 1
        assert span.start[k] <= w.start < w.end <= span.end[k]
        assert w.end - w.start == pytest.approx(min(1.0, span.end[k] - span.start[k]))


def test_sliding_windows_cover_every_span_with_half_second_steps():
    spans = [Intervals([0.0, 10.0], [3.2, 10.4])]
    windows = sliding_windows(spans, context_s=1.0, step_s=0.5)
    starts = [w.start for w in windows]
    assert starts[:5] == [0.0, 0.5, 1.0, 1.5, 2.0] and starts[5] == pytest.approx(2.2)
    assert (windows[-1].start, windows[-1].end) == (10.0, 10.4)
    covered = Intervals([w.start for w in windows], [w.end for w in windows]).merged()
    assert covered.total_duration() == pytest.approx(3.6)
    with pytest.raises(ValueError, match="at most the window"):
        sliding_windows(spans, context_s=1.0, step_s=1.5)  # would skip samples between windows


def _dropout(recording, rows, seed, min_units):
    sample = Sample(window=Window(0, 0.0, 1.0), data=recording, unit_rows=rows, session_row=0)
    out = UnitDropout(min_units)(sample, np.random.default_rng(seed))
    return out.data, out.unit_rows


def test_unit_dropout_keeps_at_least_30_units_and_their_spikes():
    rec = build_recording(n_units=80)
    rows = np.arange(1000, 1080)
    sizes = set()
    for seed in range(200):
        window, kept_rows = _dropout(rec, rows, seed, 30)
        n = len(window.units)
        sizes.add(n)
        assert 30 <= n <= 80 and kept_rows.size == n
        assert np.array_equal(kept_rows - 1000, [int(u[1:]) for u in window.units.ids])
        expected = np.isin(rec.spikes.unit_index, kept_rows - 1000)
        assert np.array_equal(window.spikes.times, rec.spikes.times[expected])
        assert np.array_equal(window.units.ids[window.spikes.unit_index], rec.units.ids[rec.spikes.unit_index[expected]])
    assert min(sizes) < 40 and max(sizes) > 70
    small = build_recording(n_units=12)
    window, kept = _dropout(small, np.arange(12), 0, 30)
    assert window is small and kept.size == 12


def test_loss_weights_and_masks_count_exactly():
    predictions = {"hand_vel": torch.tensor([[[1.0, 1.0], [0.0, 0.0], [9.0, 9.0]]])}
    batch = {
        "target_values": torch.zeros(1, 3, 2),
        "target_weights": torch.tensor([[5.0, 1.0, 1.0]]),
        "output_mask": torch.tensor([[True, True, False]]),
        "output_decoder_index": torch.zeros(1, 3, dtype=torch.long),
    }
    # (5 * 1 + 1 * 0) / (5 + 1); the padded query with error 81 is ignored.
    assert weighted_loss(predictions, batch, {"hand_vel": 2}).item() == pytest.approx(5 / 6)


def test_normalizer_is_shared_per_brainset_and_inverts():
    rng = np.random.default_rng(0)
    a, b = rng.normal(3, 2, (500, 2)), rng.normal(3, 2, (300, 2))
    norm = Normalizer.fit({("lab", "hand_vel"): [a, b]})
    both = np.concatenate([a, b])
    scale = norm.scale("lab", "hand_vel")
    assert np.allclose(scale.mean, both.mean(0)) and np.allclose(scale.std, both.std(0))
    assert Normalizer.from_dict(norm.to_dict()) == norm
    assert np.allclose(norm.denormalize((a - scale.mean) / scale.std, "lab", "hand_vel"), a)
    with pytest.raises(KeyError, match="brainset 'other'"):
        norm.scale("other", "hand_vel")


def test_extreme_acceleration_spans_cover_the_glitch_only():
    t = np.arange(0, 10, 0.01)
    values = np.stack([np.sin(t), np.cos(t)], axis=1)
    values[500] += 5.0  # a one-sample glitch
    spans = extreme_acceleration_spans(TimeSeries(t, values), factor=2.0)
    assert spans.contains(np.array([5.0]))[0]
    assert spans.total_duration() < 0.1
    # A smooth bell-shaped reach (peak acceleration far above the median) is never excluded.
    reach = np.exp(-((t - 5.0) ** 2) / 0.02)
    smooth = TimeSeries(t, np.stack([reach, 0 * reach], axis=1))
    assert len(extreme_acceleration_spans(smooth, factor=2.0)) == 0


def _run_config(steps: int, checkpoint_every: int, init_std: float = 0.02, **training) -> RunConfig:
    """The shared tiny run with lr 1e-3, unit dropout on and validation every 500 steps (the
    defaults): the worker, resume and collapse tests below check augmentation and validation."""
    config = tiny_run_config(
        model={"init_std": init_std}, lr=1e-3, max_steps=steps, checkpoint_every=checkpoint_every,
        **{"validate_every": TrainConfig.validate_every, **training},
    )
    return dataclasses.replace(config, augment=AugmentConfig())


def _losses(run_dir) -> list[tuple[int, float]]:
    with open(run_dir / "metrics.csv") as f:
        return [(int(r["step"]), float(r["loss"])) for r in csv.DictReader(f)]


def _train_cut_after_first_checkpoint(config, data, run_dir, monkeypatch, **options):
    """Train until the first checkpoint is written, then die as if the machine went down."""
    real_save = loop_module.save_checkpoint

    def crash_after_checkpoint(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(loop_module, "save_checkpoint", crash_after_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        loop_module.train(config, data, run_dir, progress=False, **options)
    monkeypatch.setattr(loop_module, "save_checkpoint", real_save)


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_reproduces_the_uninterrupted_loss_curve(sim_data, tmp_path, monkeypatch, workers):
    """Cut after step 3 of 6 and resumed (with or without DataLoader workers, which may change on
    resume): the loss curve and the final weights equal an uninterrupted run's, bit for bit."""
    full = loop_module.train(_run_config(6, 3), [sim_data], tmp_path / "full", progress=False)
    assert full.steps == 6
    _train_cut_after_first_checkpoint(_run_config(6, 3), [sim_data], tmp_path / "cut", monkeypatch)
    config = _run_config(6, 3, num_workers=workers)
    resumed = loop_module.train(config, [sim_data], tmp_path / "cut", resume=True, progress=False)
    assert resumed.steps == 6
    assert _losses(tmp_path / "cut") == _losses(tmp_path / "full")
    a = trained_module.load_model(tmp_path / "full").model.state_dict()
    b = trained_module.load_model(tmp_path / "cut").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_workers_do_not_change_the_loss_curve(sim_data, tmp_path):
    """Augmentation draws from the window's own stream, so two workers give the same run."""
    loop_module.train(_run_config(4, 10), [sim_data], tmp_path / "w0", progress=False)
    loop_module.train(_run_config(4, 10, num_workers=2), [sim_data], tmp_path / "w2", progress=False)
    assert _losses(tmp_path / "w0") == _losses(tmp_path / "w2")


def test_resume_refuses_a_different_run(sim_data, tmp_path, monkeypatch):
    _train_cut_after_first_checkpoint(_run_config(6, 3), [sim_data], tmp_path / "cut", monkeypatch)
    changed = {
        "config training.lr": dataclasses.replace(
            _run_config(6, 3), training=TrainConfig(batch_size=4, lr=2e-3, max_steps=6, checkpoint_every=3)
        ),
        "config training.max_steps: 6 -> 9": _run_config(9, 3),
    }
    for message, config in changed.items():
        with pytest.raises(ConfigError, match=message):
            loop_module.train(config, [sim_data], tmp_path / "cut", resume=True, progress=False)
    other = write_dataset(
        simulate_dataset(n_animals=1, sessions_per_animal=1, n_trials=16, duration_s=30.0, seed=5),
        tmp_path / "other",
    )
    with pytest.raises(ConfigError, match="data: "):
        loop_module.train(_run_config(6, 3), other, tmp_path / "cut", resume=True, progress=False)


def test_few_shot_training_records_its_spans_and_resumes_only_with_them(sim_data, tmp_path, monkeypatch):
    from neuropoyo.data.directory import few_shot_spans, find_recordings

    paths = find_recordings([sim_data])  # validation off: the spy below sees training reads only
    spans = few_shot_spans(paths, minutes=0.1)
    run = tmp_path / "few"
    _train_cut_after_first_checkpoint(_run_config(6, 3, validate_every=0), [sim_data], run, monkeypatch, train_spans=spans)
    recorded = json.loads((run / "run.json").read_text())["train_spans"]
    assert recorded == [loop_module.span_list(s) for s in spans] and len(recorded) == len(paths)
    with pytest.raises(ConfigError, match="training spans"):
        loop_module.train(_run_config(6, 3, validate_every=0), [sim_data], run, resume=True, progress=False)
    seen = []
    real_read = loop_module.RecordingSet.read

    def spy(self, window):
        seen.append((window.recording, window.start, window.end))
        return real_read(self, window)

    monkeypatch.setattr(loop_module.RecordingSet, "read", spy)
    loop_module.train(_run_config(6, 3, validate_every=0), [sim_data], run, resume=True, progress=False, train_spans=spans)
    assert len(seen) >= 3  # the three steps after the checkpoint read windows
    for recording, start, end in seen:  # every training window lies in the first 6 s of training data
        span = spans[recording]
        k = np.searchsorted(span.start, start, side="right") - 1
        assert k >= 0 and end <= span.end[k] + 1e-9
    assert all(s.total_duration() == pytest.approx(6.0) for s in spans)


def test_model_directory_round_trip(sim_data, tmp_path):
    loop_module.train(_run_config(1, 1), [sim_data], tmp_path / "run", progress=False)
    folder = tmp_path / "run" / "model"
    assert sorted(p.name for p in folder.iterdir()) == sorted(trained_module.MODEL_FILES)
    trained = trained_module.load_model(tmp_path / "run")
    again = tmp_path / "copy"
    trained_module.save_model(trained, again)
    reloaded = trained_module.load_model(again)
    assert reloaded.unit_vocab.to_list() == trained.unit_vocab.to_list()
    assert reloaded.normalizer == trained.normalizer and reloaded.settings == trained.settings
    assert trained.settings == _run_config(1, 1).settings()
    state = trained.model.state_dict()
    assert all(torch.equal(v, reloaded.model.state_dict()[k]) for k, v in state.items())
    assert again.is_dir() and not again.is_symlink()  # a plain folder, safe to copy
    assert not list(tmp_path.glob(".copy*"))  # no temporary folder left behind


def test_resume_without_checkpoint_is_a_clear_error(sim_data, tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        loop_module.train(_run_config(2, 1), [sim_data], tmp_path / "none", resume=True, progress=False)


def test_run_config_rejects_unknown_keys(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: cpu-small\ntraining: {batch_sise: 3}\n")
    with pytest.raises(ValueError, match="unknown training option.*batch_sise"):
        RunConfig.from_yaml(path)
    path.write_text("model: cpu-small\ntraining: {lr: 1e-3}\n")
    with pytest.raises(ValueError, match="training.lr must be float.*write 1.0e-3"):
        RunConfig.from_yaml(path)
    path.write_text("model: cpu-small\ntraining: {max_steps: 7}\n")
    config = RunConfig.from_yaml(path)
    assert config.training.max_steps == 7 and config.model.dim == 64
    assert dataclasses.asdict(RunConfig.from_dict(config.to_dict()).training) == dataclasses.asdict(config.training)


def test_a_model_refuses_recordings_it_was_not_trained_on(sim_data, tmp_path):
    loop_module.train(_run_config(1, 1), [sim_data], tmp_path / "run", progress=False)
    other = write_dataset(
        simulate_dataset(n_animals=2, sessions_per_animal=1, n_trials=8, duration_s=20.0, seed=1)[2:3],
        tmp_path / "other",
    )
    with pytest.raises(KeyError, match="unknown to the model.*sim_monkey1"):
        recordings_for(trained_module.load_model(tmp_path / "run"), other)


@pytest.mark.parametrize(
    "section, text, message",
    [
        ("training", "{checkpoint_every: 0}", "training.checkpoint_every must be >= 1"),
        ("training", "{max_steps: 0}", "training.max_steps must be >= 1"),
        ("training", "{batch_size: 0}", "training.batch_size must be >= 1"),
        ("training", "{lr: -1.0}", "need lr > 0"),
        ("loss", "{output_samples: 0}", "loss.output_samples must be >= 1"),
        ("loss", "{interval_weights: {reach: -5.0}}", "weight of 'reach' must be finite and >= 0"),
        ("loss", "{normalize: per_lab}", "loss.normalize must be one of per_dim, lab_scalar"),
        ("augment", "{unit_dropout_min: 0}", "augment.unit_dropout_min must be >= 1"),
        ("evaluation", "{step_s: 2.0}", "longer than the model's window"),
        ("evaluation", "{step_s: 0.0}", "step_s must be a number of seconds > 0"),
    ],
)
def test_option_values_are_checked_when_read(tmp_path, section, text, message):
    path = tmp_path / "run.yaml"
    path.write_text(f"model: cpu-small\n{section}: {text}\n")
    with pytest.raises(ConfigError, match=message) as error:
        RunConfig.from_yaml(path)
    assert str(path) in str(error.value)


def test_a_0_1_0_data_section_is_read_into_the_new_sections(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        "model: cpu-small\ndata: {eval_step_s: 0.25, interval_weights: {reach: 3.0}, unit_dropout_min: 10}\n"
    )
    config = RunConfig.from_yaml(path)
    assert config.evaluation.step_s == 0.25
    assert config.loss.interval_weights == {"reach": 3.0} and config.augment.unit_dropout_min == 10
    path.write_text("model: cpu-small\ndata: {eval_stepsize: 0.25}\n")
    with pytest.raises(ConfigError, match="unknown data option.*eval_stepsize"):
        RunConfig.from_yaml(path)


def test_presets_ship_in_the_package_and_are_found_by_name():
    assert PRESET_DIR.parent.name == "neuropoyo" and (PRESET_DIR / "runs" / "cpu-small.yaml").is_file()
    by_name = RunConfig.from_yaml("cpu-small.yaml")
    assert by_name == RunConfig.from_yaml(PRESET_DIR / "runs" / "cpu-small.yaml")
    assert RunConfig.from_yaml("cpu-small") == by_name
    with pytest.raises(FileNotFoundError, match="presets: .*runs/cpu-small"):
        RunConfig.from_yaml("no_such_preset.yaml")


def test_unit_and_session_rows_absent_from_a_batch_do_not_move(sim_data, tmp_path):
    """The trainer's LAMB is sparse on the unit and session tables: after a step whose batch only
    touches session 0, session 1's row (moved by an earlier step, so with momentum) is unchanged."""
    model = POYO(POYOConfig(**{**TINY_MODEL, "num_sessions": 2, "num_units": 3}))
    groups = loop_module.lamb_groups(model, 1e-4)
    sparse = [g for g in groups if g.get("sparse_rows")]
    assert len(sparse) == 1 and {id(p) for p in sparse[0]["params"]} == {
        id(model.unit_emb.weight), id(model.session_emb.weight)
    }
    optimizer = loop_module.Lamb(groups, lr=1e-2, weight_decay=1e-4)

    def step(sessions):
        batch = {
            "input_unit_index": torch.tensor([[0, 1, 2]]), "input_timestamps": torch.tensor([[0.1, 0.5, 0.9]]),
            "input_token_type": torch.zeros(1, 3, dtype=torch.long),
            "output_session_index": torch.tensor([sessions]), "output_timestamps": torch.tensor([[0.5] * len(sessions)]),
        }
        optimizer.zero_grad()
        model(**batch)["hand_vel"].square().sum().backward()
        optimizer.step()

    step([0, 1])
    before = model.session_emb.weight.detach().clone()
    step([0, 0])
    after = model.session_emb.weight.detach()
    assert torch.equal(after[1], before[1]) and not torch.equal(after[0], before[0])


def test_a_model_directory_of_0_1_0_loads_with_its_settings_in_the_new_sections(sim_data, tmp_path):
    """0.1.0 wrote one flat "data" section into config.json; its keys land in their sections."""
    loop_module.train(_run_config(1, 1), [sim_data], tmp_path / "run", progress=False)
    config_file = tmp_path / "run" / "model" / "config.json"
    config = json.loads(config_file.read_text())
    legacy = {
        "eval_step_s": 0.25, "interval_weights": {"reach": 5.0}, "eval_intervals": {"center_out": ["reach"]},
        "eval_successful_only": True, "exclude_acceleration_factor": 2.0, "unit_dropout_min": 30,
        "output_samples": 100,
    }
    config_file.write_text(json.dumps({"model": config["model"], "data": legacy, "neuropoyo_version": "0.1.0"}))
    settings = trained_module.load_model(tmp_path / "run" / "model").settings
    assert settings == {
        "evaluation": {"step_s": 0.25, "intervals": {"center_out": ["reach"]}, "successful_only": True},
        "loss": {"interval_weights": {"reach": 5.0}, "exclude_acceleration_factor": 2.0, "output_samples": 100},
        "augment": {"unit_dropout_min": 30},
    }


def _poison_losses(monkeypatch, poisoned_call) -> None:
    """Make the training loss NaN on the calls (1-based) for which ``poisoned_call(n)`` holds."""
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        errors, weight = weighted_errors(*args, **kwargs)
        return (errors * float("nan") if poisoned_call(calls["n"]) else errors), weight

    monkeypatch.setattr(loop_module, "weighted_errors", poisoned)


def _parameters(trained) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trained.model.named_parameters()}


def test_a_nan_step_is_skipped_with_a_warning_naming_the_batch(sim_data, tmp_path, monkeypatch):
    """One NaN loss (step 2 of 4): the weights do not move on that step, the warning names the
    recording and window, the row is logged as NaN, and the run finishes with finite weights."""
    _poison_losses(monkeypatch, lambda n: n == 2)
    after = {}
    with pytest.warns(loop_module.NonFiniteStepWarning) as caught:
        loop_module.train(
            _run_config(4, 10), [sim_data], tmp_path / "run", progress=False,
            after_step=lambda step, trained: after.setdefault(step, _parameters(trained)),
        )
    (message,) = [str(w.message) for w in caught if w.category is loop_module.NonFiniteStepWarning]
    assert "step 1 skipped" in message and "loss nan" in message and ".h5" in message and "first window" in message
    assert all(torch.equal(after[2][k], after[1][k]) for k in after[1])
    assert not all(torch.equal(after[3][k], after[2][k]) for k in after[2])
    losses = _losses(tmp_path / "run")
    assert np.isnan(losses[1][1]) and np.isfinite([loss for _, loss in losses[:1] + losses[2:]]).all()
    final = trained_module.load_model(tmp_path / "run").model
    assert all(torch.isfinite(p).all() for p in final.parameters())


def test_persistent_nan_stops_and_keeps_the_last_good_checkpoint(sim_data, tmp_path, monkeypatch):
    """NaN from step 3 on, limit 3: steps 3-5 are skipped, training stops at the third; the step-4
    checkpoint holds the step-2 weights (skipped steps move nothing) and no final model is written."""
    _poison_losses(monkeypatch, lambda n: n >= 3)
    config = _run_config(8, 2, max_nonfinite_steps=3)
    after = {}
    with pytest.warns(loop_module.NonFiniteStepWarning), pytest.raises(TrainingError) as error:
        loop_module.train(
            config, [sim_data], tmp_path / "run", progress=False,
            after_step=lambda step, trained: after.setdefault(step, _parameters(trained)),
        )
    assert "3 steps in a row" in str(error.value) and "stopping at step 4" in str(error.value)
    assert "max_nonfinite_steps" in str(error.value) and ".h5" in str(error.value)
    assert checkpoint_module.load_trainer_state(tmp_path / "run" / "checkpoint")["step"] == 4
    saved = dict(trained_module.load_model(tmp_path / "run" / "checkpoint").model.named_parameters())
    assert all(torch.equal(saved[k], after[2][k]) for k in after[2])
    assert not (tmp_path / "run" / "model").exists()
    # once the cause is gone the run resumes from that checkpoint, and the limit may change
    monkeypatch.setattr(loop_module, "weighted_errors", weighted_errors)
    resumed = loop_module.train(
        _run_config(8, 2, max_nonfinite_steps=10), [sim_data], tmp_path / "run", resume=True, progress=False
    )
    assert resumed.steps == 8 and (tmp_path / "run" / "model").is_dir()


def test_a_nan_parameter_is_never_saved(sim_data, tmp_path):
    """Weights that turn NaN after step 3 (as from an optimiser blow-up): the step-4 checkpoint is
    refused with an error naming the parameter, and the step-2 one stays."""

    def blow_up(step, trained):
        if step == 3:
            with torch.no_grad():
                trained.model.readouts["hand_vel"].weight[0, 0] = float("inf")

    with pytest.warns(loop_module.NonFiniteStepWarning), pytest.raises(
        TrainingError, match=r"parameter readouts\.hand_vel\.weight holds NaN/inf after step 4"
    ):
        loop_module.train(_run_config(6, 2), [sim_data], tmp_path / "run", progress=False, after_step=blow_up)
    state = checkpoint_module.load_trainer_state(tmp_path / "run" / "checkpoint")
    assert state["step"] == 2
    saved = trained_module.load_model(tmp_path / "run" / "checkpoint").model
    assert all(torch.isfinite(p).all() for p in saved.parameters())


def test_max_nonfinite_steps_must_be_positive():
    with pytest.raises(ConfigError, match="max_nonfinite_steps must be >= 1"):
        TrainConfig(max_nonfinite_steps=0)


def test_an_unwritable_run_directory_fails_before_training(sim_data, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot write to the run directory .*a_file/run"):
        loop_module.train(_run_config(2, 10), [sim_data], blocker / "run", progress=False)


def test_a_full_disk_fails_before_training(sim_data, tmp_path, monkeypatch):
    usage = loop_module.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(loop_module.shutil, "disk_usage", lambda path: usage._replace(free=1 << 20))
    with pytest.raises(ConfigError, match=r"has 1\.0 MiB free but the run needs about"):
        loop_module.train(_run_config(2, 10), [sim_data], tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "metrics.csv").exists()


TRAIN_IN_A_CHILD = (
    "import json, sys\n"
    "from neuropoyo.training.config import RunConfig\n"
    "from neuropoyo.training.loop import train\n"
    "train(RunConfig.from_dict(json.loads(sys.argv[1])), [sys.argv[2]], sys.argv[3], progress=False)\n"
)


def _kill_during_training(config, data, run_dir, after_step: int, delay_s: float) -> None:
    """Train in a child process and SIGKILL it ``delay_s`` after its step-``after_step`` checkpoint."""
    child = subprocess.Popen(
        [sys.executable, "-c", TRAIN_IN_A_CHILD, json.dumps(config.to_dict()), str(data), str(run_dir)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    checkpoint = run_dir / "checkpoint"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        try:
            if checkpoint_module.load_trainer_state(checkpoint)["step"] >= after_step:
                break
        except (FileNotFoundError, OSError, ValueError, KeyError):
            pass
        time.sleep(0.01)
    assert child.poll() is None, f"the run ended before it could be killed: {child.stderr.read().decode()[-2000:]}"
    time.sleep(delay_s)
    child.send_signal(signal.SIGKILL)
    child.wait()


@pytest.mark.slow
def test_a_run_killed_at_random_moments_resumes_to_the_uninterrupted_model(sim_data, tmp_path):
    """SIGKILL at random moments (during a step or a checkpoint write): the run directory always
    holds a loadable checkpoint, and --resume ends on the uninterrupted run's weights, bit for bit."""
    config = _run_config(12, 1)
    loop_module.train(config, [sim_data], tmp_path / "full", progress=False)
    reference = trained_module.load_model(tmp_path / "full").model.state_dict()
    rng = np.random.default_rng(7)
    for trial in range(2):
        run_dir = tmp_path / f"cut{trial}"
        _kill_during_training(config, sim_data, run_dir, int(rng.integers(1, 6)), float(rng.uniform(0, 0.05)))
        state = checkpoint_module.load_trainer_state(run_dir / "checkpoint")
        assert 1 <= state["step"] < 12
        trained_module.load_model(run_dir / "checkpoint")
        loop_module.train(config, [sim_data], run_dir, resume=True, progress=False)
        resumed = trained_module.load_model(run_dir).model.state_dict()
        assert all(torch.equal(reference[k], resumed[k]) for k in reference)
        assert [step for step, _ in _losses(run_dir)] == list(range(12))


def _damage_copy(source, target, damage) -> None:
    shutil.copytree(source, target)
    damage(target)


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _other_width(folder):
    config = json.loads((folder / "config.json").read_text())
    config["model"]["dim"] = 2 * config["model"]["dim"]
    (folder / "config.json").write_text(json.dumps(config))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: _truncate(f / "model.safetensors"), r"model\.safetensors: unreadable safetensors file"),
        (lambda f: _truncate(f / "config.json"), r"config\.json: not valid JSON"),
        (lambda f: (f / "units.json").write_text("[1, 2]"), r"units\.json: not a vocabulary file"),
        (lambda f: (f / "normalizer.json").write_bytes(b"\xff\xfe"), r"normalizer\.json: not valid JSON"),
        (lambda f: (f / "config.json").write_text("[]"), r"config\.json: no \"model\" section"),
        (_other_width, r"model\.safetensors does not match .*config\.json \(.* is \(\d+, 32\) in the weights but"),
    ],
)
def test_a_damaged_model_directory_is_named_not_a_traceback(sim_data, tmp_path, damage, message):
    """Truncated weights, broken JSON, a config.json from another model: CheckpointError (which the
    command line prints without a traceback) naming the file and what is wrong."""
    loop_module.train(_run_config(1, 1), [sim_data], tmp_path / "run", progress=False)
    _damage_copy(tmp_path / "run" / "model", tmp_path / "damaged", damage)
    with pytest.raises(CheckpointError, match=message):
        trained_module.load_model(tmp_path / "damaged")


# -------------------------------------------------------------------------- validation and collapse


WIDE = 0.3  # init_std of a tiny model whose predictions vary from the start (at 0.02 they are flat)


def _valid_rows(run_dir) -> list[dict]:
    with open(run_dir / "metrics.csv") as f:
        return [row for row in csv.DictReader(f) if row["valid_r2"]]


def test_validation_is_logged_and_the_best_model_is_the_best_logged(sim_data, tmp_path):
    """validate_every=3 over 9 steps: scores at steps 3, 6, 9; RUN/best holds the model of the
    highest, scoring exactly what was logged, and a bare run path now means that model."""
    run = tmp_path / "run"
    loop_module.train(_run_config(9, 9, WIDE, validate_every=3), [sim_data], run, progress=False)
    rows = _valid_rows(run)
    assert [int(r["step"]) + 1 for r in rows] == [3, 6, 9]
    best = max(rows, key=lambda r: float(r["valid_r2"]))
    selection = trained_module.model_selection(run)
    assert selection == {"selected_by": "valid_r2", "step": int(best["step"]) + 1, "valid_r2": float(best["valid_r2"])}
    assert [r["event"] for r in rows].count("best") >= 1
    assert trained_module.model_dir(run) == trained_module.model_dir(run / "best")
    trained = trained_module.load_model(run)
    results = predict(trained, recordings_for(trained, find_recordings([sim_data])), split="valid", progress=False)
    assert np.mean([r2_score(r.true, r.predicted) for r in results]) == pytest.approx(float(best["valid_r2"]), abs=1e-6)


def test_select_on_chooses_the_best_model_by_the_named_readouts_alone(sim_data, tmp_path):
    """Two readouts, training.select_on: [hand_pos]: the logged score, and the one the best model
    is kept by, is hand_pos's valid R2 alone, not the mean with hand_vel's."""
    run = tmp_path / "run"
    config = _run_config(9, 9, WIDE, validate_every=3, select_on=["hand_pos"])
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, readouts={"hand_vel": 2, "hand_pos": 2}))
    assert config.training.select_on == ("hand_pos",)
    loop_module.train(config, [sim_data], run, progress=False)
    best = max(_valid_rows(run), key=lambda r: float(r["valid_r2"]))
    assert trained_module.model_selection(run)["step"] == int(best["step"]) + 1
    trained = trained_module.load_model(run)
    results = predict(trained, recordings_for(trained, find_recordings([sim_data])), split="valid", progress=False)
    scores = {stream: [r2_score(r.true, r.predicted) for r in results if r.stream == stream] for stream in ("hand_pos", "hand_vel")}
    assert np.mean(scores["hand_pos"]) == pytest.approx(float(best["valid_r2"]), abs=1e-6)
    assert abs(np.mean(scores["hand_pos"] + scores["hand_vel"]) - float(best["valid_r2"])) > 1e-3


def test_select_on_must_name_readouts_of_the_model(sim_data, tmp_path):
    with pytest.raises(ConfigError, match=r"training.select_on must be a list of readout names, got 3"):
        TrainConfig(select_on=3)
    assert TrainConfig(select_on="direction").select_on == ("direction",)
    config = _run_config(1, 1, select_on=["hand_pos"])
    with pytest.raises(ConfigError, match=r"training.select_on names \['hand_pos'\], which are not readouts of the model \(\['hand_vel'\]\)"):
        loop_module.train(config, [sim_data], tmp_path / "run", progress=False)


def test_validation_reads_only_the_valid_split_and_does_not_change_training(sim_data, tmp_path, monkeypatch):
    """Every window validation reads lies inside the valid split (which never meets the test
    split), and a run that validates trains the same weights as one that does not."""
    read = []
    real_sliding = evaluate_module.sliding_windows

    def recording_sliding(spans, **options):
        windows = real_sliding(spans, **options)
        read.extend((w, spans[w.recording]) for w in windows)
        return windows

    monkeypatch.setattr(evaluate_module, "sliding_windows", recording_sliding)
    validating = loop_module.train(_run_config(6, 6, WIDE, validate_every=2), [sim_data], tmp_path / "a", progress=False)
    silent = loop_module.train(_run_config(6, 6, WIDE, validate_every=0), [sim_data], tmp_path / "b", progress=False)
    files = recordings_for(trained_module.load_model(tmp_path / "a" / "model"), find_recordings([sim_data])).files
    assert read and len(_valid_rows(tmp_path / "a")) == 3 and not _valid_rows(tmp_path / "b")
    for window, spans in read:
        valid, test = files[window.recording].splits["valid"], files[window.recording].splits["test"]
        assert spans == valid.intersect(files[window.recording].domain) or spans == valid
        inside = Intervals.single(window.start, window.end)
        assert inside.intersect(valid).total_duration() == pytest.approx(window.end - window.start)
        assert inside.intersect(test).total_duration() == 0
    a, b = (_parameters(trained_module.load_model(r / "model")) for r in (validating.run_dir, silent.run_dir))
    assert all(torch.equal(a[name], b[name]) for name in a)


def _flatten_readout(from_step: int, to_step: int):
    """after_step hook: from ``from_step`` to ``to_step`` the readout predicts a constant."""

    def flatten(step, trained):
        if from_step <= step <= to_step:
            with torch.no_grad():
                for head in trained.model.readouts.values():
                    head.weight.zero_()
                    head.bias.fill_(0.3)

    return flatten


def test_a_model_forced_to_a_constant_is_reported_as_collapsed(sim_data, tmp_path):
    with pytest.warns(CollapseWarning, match=r"at step 8 the predictions of .* have collapsed .* spread is \S+ of"):
        loop_module.train(
            _run_config(8, 8, WIDE, validate_every=2), [sim_data], tmp_path / "run", progress=False,
            after_step=_flatten_readout(5, 8),
        )
    events = {int(r["step"]) + 1: r["event"] for r in _valid_rows(tmp_path / "run")}
    assert events[6].endswith("collapse") and events[8].endswith("collapse") and "collapse" not in events[4]
    assert float(_valid_rows(tmp_path / "run")[-1]["valid_spread"]) < 1e-12


def test_on_collapse_restart_goes_back_to_the_best_model_at_half_the_learning_rate(sim_data, tmp_path):
    run = tmp_path / "run"
    with pytest.warns(CollapseWarning, match=r"restart from step \d at lr x0.5 \(training.on_collapse: restart\)"):
        loop_module.train(
            _run_config(8, 8, WIDE, validate_every=2, on_collapse="restart"), [sim_data], run, progress=False,
            after_step=_flatten_readout(6, 6),
        )
    events = {int(r["step"]) + 1: r["event"] for r in _valid_rows(run)}
    restart = min(step for step, event in events.items() if "restart" in event)
    back_to = int(re.search(r"restart from step (\d+) at lr x0.5$", events[restart]).group(1))
    assert restart == 6 and "best" in events[back_to]  # the best model when it collapsed
    with open(run / "metrics.csv") as f:
        lr = {int(r["step"]): float(r["lr"]) for r in csv.DictReader(f)}
    assert lr[6] == pytest.approx(lr[5] / 2)  # the constant-then-cosine schedule, halved
    state = checkpoint_module.load_trainer_state(run / "checkpoint")
    assert state["watch"]["lr_scale"] == 0.5 ** state["watch"]["restarts"]


def test_collapse_rules_spare_a_model_that_has_not_learned_yet():
    from neuropoyo.training.watch import Validation, Watch

    flat = Validation(step=10, r2=-0.1, spread=1e-5, flattest="r/hand_vel")
    assert not Watch().collapsed(flat, progress=0.1)  # every model starts flat
    assert Watch().collapsed(flat, progress=0.5)  # still flat at half the run
    learned = Watch(widest_spread=0.6)
    assert learned.collapsed(Validation(10, 0.2, 0.04, "r/hand_vel"), progress=0.1)  # fell 15x
    assert not learned.collapsed(Validation(10, 0.2, 0.07, "r/hand_vel"), progress=0.1)
    assert not Watch(widest_spread=0.08).collapsed(Validation(10, 0.0, 0.001, "r/x"), progress=0.2)
