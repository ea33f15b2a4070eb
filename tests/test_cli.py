"""The neuropoyo command: simulate -> inspect, the demo, and user-facing errors."""

import dataclasses
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
import yaml

from neuropoyo.cli import main
from neuropoyo.data.store import read_recording, write_recording
from neuropoyo.training.config import PRESET_DIR

SMALL = ["--animals", "2", "--sessions", "1", "--trials", "16", "--duration", "30"]


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    assert main(["simulate", "--out", str(out), *SMALL]) == 0
    return out


def test_console_script_help():
    result = subprocess.run(
        [sys.executable, "-m", "neuropoyo.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    for command in ("demo", "simulate", "inspect"):
        assert command in result.stdout


def test_help_loads_neither_torch_nor_matplotlib():
    """`neuropoyo --help` builds every subcommand's parser without the heavy libraries."""
    code = (
        "import sys; from neuropoyo.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'matplotlib', 'pynwb') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_simulate_writes_one_valid_file_per_session_with_splits(sim_dir):
    files = sorted(sim_dir.glob("*.h5"))
    assert len(files) == 4  # 2 animals x 1 day x 2 tasks
    for path in files:
        recording = read_recording(path)
        assert set(recording.splits) == {"train", "valid", "test"}
        assert path.stem == recording.recording_id


def test_inspect_prints_a_summary_per_file(sim_dir, capsys):
    assert main(["inspect", str(sim_dir)]) == 0
    text = capsys.readouterr().out
    assert text.count("recording  ") == 4
    assert "behavior hand_vel" in text and "split    test" in text


def test_inspect_json_counts_match_the_file(sim_dir, capsys):
    path = sorted(sim_dir.glob("*_co.h5"))[0]
    assert main(["inspect", "--json", str(path)]) == 0
    (summary,) = json.loads(capsys.readouterr().out)
    recording = read_recording(path)
    assert summary["spikes"] == len(recording.spikes)
    assert summary["units"] == len(recording.units)
    assert summary["trials"] == len(recording.trials) == 16


def test_inspect_reports_a_bad_file_by_name_and_field(sim_dir, tmp_path, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(sorted(sim_dir.glob("*.h5"))[0].read_bytes())
    with h5py.File(bad, "r+") as f:
        times = f["spikes/times"][...]
        times[10] = np.nan
        f["spikes/times"][...] = times
    assert main(["inspect", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "spikes/times" in err and "non-finite" in err


def test_inspect_missing_path(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "nope")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_demo_quick_trains_and_decodes_held_out_data(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert len(list((tmp_path / "data").glob("*.h5"))) == 4
    assert out.count("  units    ") == 4  # one summary per simulated recording
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["split"] == "test" and len(metrics["recordings"]) == 4
    assert f"{metrics['mean_r2']:.4f}" in out
    assert metrics["mean_r2"] > 0.2  # held-out test trials/blocks, never seen in training
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    # the comparison with the classic decoders, scored on the same samples
    table = (tmp_path / "comparison" / "comparison.md").read_text()
    assert table in out and "smoke run (--quick): short sessions and 350 training steps" in out
    rows = [line.split(" | ")[0].strip("| ") for line in table.splitlines()[2:]]
    assert rows == ["POYO", "wiener", "mlp"]
    for method in ("wiener", "mlp"):
        baseline = json.loads((tmp_path / "baselines" / method / "metrics.json").read_text())
        assert baseline["recordings"].keys() == metrics["recordings"].keys()
        for rid, record in baseline["recordings"].items():
            ours = metrics["recordings"][rid]["streams"]["hand_vel"]
            assert record["streams"]["hand_vel"]["samples"] == ours["samples"]


def test_train_readout_names_the_stream_and_takes_its_width_from_the_data(sim_dir, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--config", "demo.yaml", "--data", str(sim_dir), "--out", str(run)]
    assert main([*argv, "--max-steps", "1", "--readout", "hand_vel"]) == 0
    config = json.loads((run / "run.json").read_text())["config"]["model"]
    assert config["readouts"] == {"hand_vel": 2}
    assert main([*argv, "--readout", "head_angle"]) == 2
    err = capsys.readouterr().err
    assert "no recording holds a behavior stream named head_angle" in err
    assert "the recordings hold hand_pos, hand_vel" in err


def test_train_names_a_readout_narrower_or_wider_than_the_data(sim_dir, tmp_path, capsys):
    model = yaml.safe_load(open(PRESET_DIR / "demo.yaml")) | {"readouts": {"hand_vel": 3}}
    config = tmp_path / "wide.yaml"
    config.write_text(yaml.safe_dump({"model": model}))
    argv = ["train", "--config", str(config), "--data", str(sim_dir), "--out", str(tmp_path / "r")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "behavior/hand_vel has 2 dimension(s) but the model's readout 'hand_vel' has 3" in err


def test_two_readouts_train_and_evaluate_with_one_report_per_stream(sim_dir, tmp_path, capsys):
    """train --readout hand_vel --readout hand_pos, then evaluate: every (recording, stream) pair
    gets its own row, predictions file and figure (they used to collide and crash)."""
    run, report = tmp_path / "run", tmp_path / "eval"
    argv = ["train", "--config", "demo.yaml", "--data", str(sim_dir), "--out", str(run), "--max-steps", "2"]
    assert main([*argv, "--readout", "hand_vel", "--readout", "hand_pos"]) == 0
    assert main(["evaluate", "--model", str(run), "--data", str(sim_dir), "--out", str(report)]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    ids = sorted(p.stem for p in sim_dir.glob("*.h5"))
    assert sorted(metrics["recordings"]) == ids
    for rid in ids:
        streams = metrics["recordings"][rid]["streams"]
        assert sorted(streams) == ["hand_pos", "hand_vel"]
        assert metrics["recordings"][rid]["r2"] == pytest.approx(np.mean([s["r2"] for s in streams.values()]))
        for stream in streams:
            header = (report / "predictions" / rid / f"{stream}.csv").read_text().splitlines()[0]
            assert f"true_{stream}_0" in header
            assert (report / "figures" / "traces" / rid / f"{stream}.png").is_file()
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(tuple(ids))]
    assert len(rows) == 2 * len(ids)


def test_eval_intervals_on_the_command_line(sim_dir, tmp_path, capsys):
    """--eval-intervals all scores every test sample; the default scores center-out reaches only.
    The run was validated at its one step, so `evaluate --model RUN` uses RUN/best and says so."""
    run = tmp_path / "run"
    assert main(["train", "--config", "demo.yaml", "--data", str(sim_dir), "--out", str(run), "--max-steps", "1"]) == 0
    assert f"best on validation: {run / 'best'} (valid R2 " in capsys.readouterr().out
    counts = {}
    for name, extra in (("default", []), ("all", ["--eval-intervals", "all"])):
        assert main(["evaluate", "--model", str(run), "--data", str(sim_dir), "--out", str(tmp_path / name), *extra]) == 0
        out = capsys.readouterr().out
        assert f"model: {run / 'best'}, the best on validation (valid R2 " in out
        assert f"at step 1); name {run / 'model'} for the last" in out
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        counts[name] = {
            rid: m["streams"]["hand_vel"]["samples"] for rid, m in metrics["recordings"].items()
        }
    for rid in counts["all"]:
        if rid.endswith("_co"):
            assert counts["default"][rid] < counts["all"][rid]
        else:
            assert counts["default"][rid] == counts["all"][rid]


def test_bench_stream_replays_a_recording_and_reports_every_workload(sim_dir, tmp_path, capsys):
    run, out = tmp_path / "run", tmp_path / "stream.json"
    assert main(["train", "--config", "demo.yaml", "--data", str(sim_dir), "--out", str(run), "--max-steps", "1"]) == 0
    data = sorted(sim_dir.glob("*.h5"))[0]
    argv = ["bench-stream", "--model", str(run), "--data", str(data), "--seconds", "0.5", "--compare-every", "5"]
    assert main([*argv, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["updates"] == 50 and result["readout"] == "hand_vel"
    for workload in ("stream", "full_window", "torch_brain_full_window", "reference"):
        assert 0 < result[workload]["p50"] <= result[workload]["p99"] <= result[workload]["max"]
    assert result["ratio"] == pytest.approx(result["torch_brain_full_window"]["p50"] / result["stream"]["p50"])
    assert "torch_brain full-window p50 / our update p50" in capsys.readouterr().out
    assert result["dtype"] == "float32" and result["compiled"] is False
    assert result["max_abs_difference"] < 1e-5  # the stream is the offline model, window by window
    assert main([*argv, "--dtype", "bfloat16", "--no-torch-brain", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["dtype"] == "bfloat16" and "ratio" not in result and "torch_brain_full_window" not in result
    assert "streaming update (ours, bfloat16)" in capsys.readouterr().out
    # bf16 rounding only (~1e-4 here): the fp32 full window must run without dropout although the
    # bf16 decoder put only its own copy of the model in eval mode (with dropout: ~3e-3)
    assert 1e-6 < result["max_abs_difference"] < 1e-3
    with pytest.raises(SystemExit) as stop:
        main([*argv, "--update-ms", "0"])
    assert stop.value.code == 2 and "argument --update-ms: must be > 0, got 0" in capsys.readouterr().err
    assert main([*argv, "--device", "tpu"]) == 2
    assert "device 'tpu': not a device name; use cpu, cuda, cuda:N or mps" in capsys.readouterr().err


def test_validate_reports_every_problem_of_a_dataset_at_once(sim_dir, tmp_path, capsys):
    """One folder: a good file, NaN spike times, a non-HDF5 file, a truncated file and a file with
    a silent unit. Every file is reported, fatal ones fail the command, the silent unit only warns."""
    good = sorted(sim_dir.glob("*.h5"))[0]
    folder = tmp_path / "dataset"
    folder.mkdir()
    (folder / "a_good.h5").write_bytes(good.read_bytes())
    nan = folder / "b_nan.h5"
    nan.write_bytes(good.read_bytes())
    with h5py.File(nan, "r+") as f:
        times = f["spikes/times"][...]
        times[3] = np.inf
        f["spikes/times"][...] = times
    (folder / "c_text.h5").write_text("spike times, honest\n")
    (folder / "d_truncated.h5").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    recording = read_recording(good)
    silent = dataclasses.replace(recording, spikes=recording.spikes.select(recording.spikes.unit_index != 0))
    write_recording(silent, folder / "e_silent.h5")

    assert main(["validate", str(folder)]) == 2
    out, err = capsys.readouterr()
    lines = {line.split(": ")[0]: line.split(": ", 1)[1] for line in out.splitlines() if line.startswith(str(folder))}
    assert lines == {
        str(folder / "a_good.h5"): "ok",
        str(folder / "b_nan.h5"): "FATAL",
        str(folder / "c_text.h5"): "FATAL",
        str(folder / "d_truncated.h5"): "FATAL",
        str(folder / "e_silent.h5"): "warnings",
    }
    assert "spikes/times: 1 non-finite value(s)" in out and "not an HDF5 file" in out
    assert f"units: 1 of {len(recording.units)} units never fire" in out
    assert "5 file(s): 3 with fatal problems, 1 with warnings" in out
    assert "3 of 5 recording(s) cannot be used" in err
    # only warnings: exit 0
    assert main(["validate", str(folder / "a_good.h5"), str(folder / "e_silent.h5")]) == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["simulate", "--out", "x", "--animals", "0"], "argument --animals: must be >= 1, got 0"),
        (["simulate", "--out", "x", "--sessions", "-1"], "argument --sessions: must be >= 1, got -1"),
        (["simulate", "--out", "x", "--trials", "0"], "argument --trials: must be >= 1, got 0"),
        (["simulate", "--out", "x", "--duration", "-5"], "argument --duration: must be >= 5, got -5"),
        (["simulate", "--out", "x", "--seed", "-1"], "argument --seed: must be >= 0, got -1"),
        (["model-info", "--config", "demo.yaml", "--tokens", "-5"], "argument --tokens: must be >= 1, got -5"),
        (["bench-stream", "--model", "m", "--data", "d", "--update-ms", "nan"], "argument --update-ms: must be > 0"),
        (["baselines", "--data", "d", "--out", "b", "--lags", "-1"], "argument --lags: must be >= 1, got -1"),
        (["finetune", "--model", "m", "--data", "d", "--out", "x", "--trials", "two"], "expected an integer, got 'two'"),
        (["train", "--config", "demo_run.yaml", "--data", "d", "--out", "r", "--max-steps", "0"], "must be >= 1, got 0"),
    ],
)
def test_out_of_range_arguments_are_refused_by_name(argv, message, capsys, tmp_path, monkeypatch):
    """Counts, lengths and rates out of range stop at the command line (exit 2), before any work:
    no 'wrote 0 recordings' success, no traceback from deep inside."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    "text, where",
    [
        ("model: {dim: 32,\n  training: [", "bad.yaml: line 2, column 14: not valid YAML"),
        ("model:\n  dim: 32\n head_dim: 16\n", "bad.yaml: line 3, column 2: not valid YAML"),
        ("model: \x01\n", "bad.yaml: not valid YAML (unacceptable character #x0001"),
    ],
)
def test_a_run_file_that_is_not_yaml_is_named_with_its_line(text, where, sim_dir, tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    assert main(["train", "--config", str(config), "--data", str(sim_dir), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert where in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "device, message",
    [
        ("tpu", "device 'tpu': not a device name; use cpu, cuda, cuda:N or mps"),
        ("cuda", "device 'cuda': CUDA is not available"),
        ("meta", "device 'meta': neuropoyo runs on cpu, cuda, mps"),
    ],
)
def test_a_device_this_machine_lacks_is_refused_before_any_work(device, message, sim_dir, tmp_path, capsys, monkeypatch):
    """train, evaluate and finetune check --device first (was a traceback from inside torch)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    run = tmp_path / "run"
    assert main(["train", "--config", "demo_run.yaml", "--data", str(sim_dir), "--out", str(run), "--device", device]) == 2
    assert message in capsys.readouterr().err and not run.exists()
    assert main(["evaluate", "--model", str(run), "--data", str(sim_dir), "--out", str(tmp_path / "e"), "--device", device]) == 2
    assert message in capsys.readouterr().err
    assert main(["finetune", "--model", str(run), "--data", str(sim_dir), "--out", str(tmp_path / "f"), "--device", device]) == 2
    assert message in capsys.readouterr().err


def test_train_without_a_config_uses_the_cpu_recipe(sim_dir, tmp_path, capsys):
    """The CPU recipe (lr 1e-2) for the 4 recordings of sim_dir; its lr 4e-3 version from 5 on."""
    run = tmp_path / "run"
    assert main(["train", "--data", str(sim_dir), "--out", str(run), "--max-steps", "1"]) == 0
    assert "config: cpu_small_run.yaml, the CPU recipe for 4 recording(s)" in capsys.readouterr().out
    config = json.loads((run / "run.json").read_text())["config"]
    assert config["training"]["lr"] == 1e-2
    six = tmp_path / "six"
    assert main(["simulate", "--out", str(six), *SMALL[4:], "--animals", "3", "--sessions", "1"]) == 0
    assert main(["train", "--data", str(six), "--out", str(tmp_path / "run6"), "--max-steps", "1"]) == 0
    assert "config: cpu_small_multi_run.yaml, the CPU recipe for 6 recording(s)" in capsys.readouterr().out
    config6 = json.loads((tmp_path / "run6" / "run.json").read_text())["config"]
    assert config6["training"]["lr"] == 4e-3 and config6["model"] == config["model"]
    recipe = yaml.safe_load(open(PRESET_DIR / "cpu_small.yaml"))
    assert config["model"]["init_std"] == recipe["init_std"] == 0.1
    assert (config["model"]["num_latent_timestamps"], config["model"]["latents_per_timestamp"]) == (16, 2)
    assert config["augment"]["unit_dropout_min"] == 1000 and config["evaluation"]["step_s"] == 0.25


def test_resuming_a_finished_run_says_there_is_nothing_left(sim_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(sim_dir), "--out", str(run), "--max-steps", "2"]) == 0
    assert "trained 2 steps in" in capsys.readouterr().out
    assert main(["train", "--data", str(sim_dir), "--out", str(run), "--max-steps", "2", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "nothing left to train: the run has its 2 steps" in out and "nan" not in out
