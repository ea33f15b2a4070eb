"""The neuropoyo command: simulate -> inspect, the demo, and user-facing errors."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from neuropoyo.cli import main
from neuropoyo.data.store import read_recording, write_recording
from neuropoyo.training.config import MODEL_PRESETS

SMALL = ["--animals", "2", "--days", "1", "--trials", "16", "--duration-s", "30"]


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sim")
    assert main(["simulate", "--out", str(out), *SMALL]) == 0
    return out


def test_console_script_help():
    result = subprocess.run(
        [sys.executable, "-m", "neuropoyo", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    for command in ("demo", "simulate", "inspect"):
        assert command in result.stdout


def test_help_loads_neither_torch_nor_h5py():
    """`neuropoyo --help` builds every subcommand's parser without the heavy libraries."""
    code = (
        "import sys; from neuropoyo.cli import build_parser; build_parser(); "
        "print(sorted(m for m in ('torch', 'h5py', 'matplotlib', 'pynwb') if m in sys.modules))"
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


def test_a_reader_that_stops_early_ends_the_command_quietly(sim_dir):
    """`neuropoyo inspect ... | head`: the pipe closes before the output is written; no traceback."""
    files = sorted(str(p) for p in Path(sim_dir).glob("*.h5"))
    command = subprocess.Popen([sys.executable, "-m", "neuropoyo", "inspect", *files],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    command.stdout.close()  # the reader is gone before the command writes
    errors = command.stderr.read().decode()
    assert command.wait() == 141 and "Traceback" not in errors and "BrokenPipe" not in errors, errors


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


@pytest.mark.slow
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
    assert table in out and "smoke run (quick): short sessions and 350 training steps" in out
    r2_table = table.split("\n\n")[0]  # then the table of median errors
    rows = [line.split(" | ")[0].strip("| ") for line in r2_table.splitlines()[2:]]
    assert rows == ["POYO", "wiener", "mlp"]
    for method in ("wiener", "mlp"):
        baseline = json.loads((tmp_path / "baselines" / method / "metrics.json").read_text())
        assert baseline["recordings"].keys() == metrics["recordings"].keys()
        for rid, record in baseline["recordings"].items():
            ours = metrics["recordings"][rid]["streams"]["hand_vel"]
            assert record["streams"]["hand_vel"]["samples"] == ours["samples"]


def test_train_readout_names_the_stream_and_takes_its_width_from_the_data(sim_dir, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["train", "--config", "models/cpu-small", "--data", str(sim_dir), "--out", str(run)]
    assert main([*argv, "--max-steps", "1", "--readout", "hand_vel"]) == 0
    config = json.loads((run / "run.json").read_text())["config"]["model"]
    assert config["readouts"] == {"hand_vel": 2}
    assert main([*argv, "--readout", "head_angle"]) == 2
    err = capsys.readouterr().err
    assert "no recording holds a behavior stream named head_angle" in err
    assert "the recordings hold hand_pos, hand_vel" in err


def test_train_names_a_readout_narrower_or_wider_than_the_data(sim_dir, tmp_path, capsys):
    model = yaml.safe_load(open(MODEL_PRESETS / "cpu-small.yaml")) | {"readouts": {"hand_vel": 3}}
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
    argv = ["train", "--config", "models/cpu-small", "--data", str(sim_dir), "--out", str(run), "--max-steps", "2"]
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
    assert main(["train", "--config", "models/cpu-small", "--data", str(sim_dir), "--out", str(run), "--max-steps", "1"]) == 0
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
    run, out, config = tmp_path / "run", tmp_path / "stream.json", tmp_path / "small.yaml"
    # the small model at init_std 0.02 (cpu-small's 0.1 makes bf16 rounding alone ~3e-2, hiding the
    # dropout this test is about)
    config.write_text("model: {extends: cpu-small, init_std: 0.02, num_latent_timestamps: 4, latents_per_timestamp: 8}\n")
    assert main(["train", "--config", str(config), "--data", str(sim_dir), "--out", str(run), "--max-steps", "1"]) == 0
    data = sorted(sim_dir.glob("*.h5"))[0]
    argv = ["bench-stream", "--model", str(run), "--data", str(data), "--duration-s", "0.5", "--compare-every", "5"]
    assert main([*argv, "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["updates"] == 50 and result["readout"] == "hand_vel"
    for workload in ("stream", "full_window", "torch_brain_full_window", "reference"):
        assert 0 < result[workload]["p50"] <= result[workload]["p99"] <= result[workload]["max"]
    assert result["ratio"] == pytest.approx(result["torch_brain_full_window"]["p50"] / result["stream"]["p50"])
    assert "torch_brain full-window p50 / our update p50" in capsys.readouterr().out
    assert result["dtype"] == "float32" and result["compiled"] is False and result["backend"] == "torch"
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
    assert main([*argv, "--backend", "onnxruntime", "--dtype", "bfloat16"]) == 2
    assert "--backend onnxruntime decodes on the CPU, uncompiled, in float32" in capsys.readouterr().err
    pytest.importorskip("onnxruntime", reason="--backend onnxruntime needs the export extra")
    assert main([*argv, "--backend", "onnxruntime", "--no-torch-brain", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["backend"] == "onnxruntime" and result["max_abs_difference"] < 1e-5
    assert "streaming update (ours, float32, onnxruntime)" in capsys.readouterr().out


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
        (["simulate", "--out", "x", "--days", "-1"], "argument --days: must be >= 1, got -1"),
        (["simulate", "--out", "x", "--trials", "0"], "argument --trials: must be >= 1, got 0"),
        (["simulate", "--out", "x", "--duration-s", "-5"], "argument --duration-s: must be >= 5, got -5"),
        (["simulate", "--out", "x", "--tasks", "center_out", "reaching"], "argument --tasks: expected one of"),
        (["simulate", "--out", "x", "--seed", "-1"], "argument --seed: must be >= 0, got -1"),
        (["model-info", "--config", "models/cpu-small", "--tokens", "-5"], "argument --tokens: must be >= 1, got -5"),
        (["bench-stream", "--model", "m", "--data", "d", "--update-ms", "nan"], "argument --update-ms: must be > 0"),
        (["serve", "--model", "m", "--update-ms", "0"], "argument --update-ms: must be > 0, got 0"),
        (["serve", "--model", "m", "--threads", "0"], "argument --threads: must be >= 1, got 0"),
        (["serve", "--model", "m", "--transport", "zmq"], "argument --transport: invalid choice: 'zmq'"),
        (["replay", "r.h5", "--speed", "-1"], "argument --speed: must be > 0, got -1"),
        (["baselines", "--data", "d", "--out", "b", "--n-lags", "-1"], "argument --n-lags: must be >= 1, got -1"),
        (["experiment", "transfer", "--out", "x", "--sizes", "7", "x"], "argument --sizes: expected a trial count >= 1 or all, got 'x'"),
        (["experiment", "scaling", "--out", "x", "--depths", "1", "two"], "argument --depths: expected an integer, got 'two'"),
        (["finetune", "--model", "m", "--data", "d", "--out", "x", "--trials", "two"], "expected an integer, got 'two'"),
        (["train", "--config", "runs/cpu-small", "--data", "d", "--out", "r", "--max-steps", "0"], "must be >= 1, got 0"),
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
    assert main(["train", "--config", "runs/cpu-small", "--data", str(sim_dir), "--out", str(run), "--device", device]) == 2
    assert message in capsys.readouterr().err and not run.exists()
    assert main(["evaluate", "--model", str(run), "--data", str(sim_dir), "--out", str(tmp_path / "e"), "--device", device]) == 2
    assert message in capsys.readouterr().err
    assert main(["finetune", "--model", str(run), "--data", str(sim_dir), "--out", str(tmp_path / "f"), "--device", device]) == 2
    assert message in capsys.readouterr().err


def test_train_without_a_config_uses_the_cpu_recipe(sim_dir, tmp_path, capsys):
    """The CPU recipe (lr 1e-2) for one recording; its lr 4e-3 version for the 4 of sim_dir."""
    run = tmp_path / "run"
    one = sorted(sim_dir.glob("*.h5"))[0]
    assert main(["train", "--data", str(one), "--out", str(run), "--max-steps", "1"]) == 0
    assert "config: runs/cpu-small, the default CPU recipe, for 1 recording(s)\n" in capsys.readouterr().out
    config = json.loads((run / "run.json").read_text())["config"]
    assert config["training"]["lr"] == 1e-2
    assert main(["train", "--data", str(sim_dir), "--out", str(tmp_path / "run4"), "--max-steps", "1"]) == 0
    assert "config: runs/cpu-small, the default CPU recipe, for 4 recording(s), with lr 0.004" in capsys.readouterr().out
    config4 = json.loads((tmp_path / "run4" / "run.json").read_text())["config"]
    assert config4["training"]["lr"] == 4e-3 and config4["model"] == config["model"]
    recipe = yaml.safe_load(open(MODEL_PRESETS / "cpu-small.yaml"))
    assert config["model"]["init_std"] == recipe["init_std"] == 0.1
    assert (config["model"]["num_latent_timestamps"], config["model"]["latents_per_timestamp"]) == (16, 2)
    assert config["augment"]["unit_dropout"] is False and config["evaluation"]["step_s"] == 0.25


def test_resuming_a_finished_run_says_there_is_nothing_left(sim_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(sim_dir), "--out", str(run), "--max-steps", "2"]) == 0
    assert "trained 2 steps in" in capsys.readouterr().out
    assert main(["train", "--data", str(sim_dir), "--out", str(run), "--max-steps", "2", "--resume"]) == 0
    out = capsys.readouterr().out
    assert "nothing left to train: the run has its 2 steps" in out and "nan" not in out


class Reached(Exception):
    """Raised by the stand-in of the library call a command should make."""


def _leaf_commands(parser, prefix=()):
    """Every runnable command path of the parser, e.g. ("prepare", "nwb")."""
    import argparse

    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        return [prefix]
    return [leaf for name, sub in subparsers[0].choices.items() for leaf in _leaf_commands(sub, (*prefix, name))]


# command -> (argv, the module and function it must call, the positional and keyword arguments it must pass)
WIRING = {
    ("demo",): (["demo", "--out", "o", "--quick"], "neuropoyo.api", "demo", ("o",), {"quick": True, "log": print}),
    ("simulate",): (
        ["simulate", "--out", "o", "--animals", "3", "--days", "4", "--tasks", "center_out", "--trials", "7",
         "--duration-s", "12.5", "--seed", "2"],
        "neuropoyo.api", "simulate", (),
        {"animals": 3, "days": 4, "tasks": ["center_out"], "trials": 7, "duration_s": 12.5, "seed": 2},
    ),
    ("prepare", "nwb"): (
        ["prepare", "nwb", "a.nwb", "--out", "o", "--behavior", "hand_vel", "head", "--circular", "head",
         "--task", "reach", "--domain", "trials", "--strict"],
        "neuropoyo.data.importers.nwb", "prepare_nwb", ([Path("a.nwb")], Path("o")),
        {"behavior": ["hand_vel", "head"], "circular": ["head"], "task": "reach", "domain": "trials", "strict": True},
    ),
    ("prepare", "brainsets"): (
        ["prepare", "brainsets", "s.h5", "--out", "o", "--behavior", "hand.vel", "--split-seed", "3"],
        "neuropoyo.data.importers.brainsets", "prepare_brainsets", ([Path("s.h5")], Path("o")),
        {"behavior": ["hand.vel"], "split_seed": 3, "strict": False},
    ),
    ("inspect",): (["inspect", "a.h5", "b"], "neuropoyo.data.dataset", "recording_paths", (["a.h5", "b"],), {}),
    ("validate",): (
        ["validate", "a.h5", "--context-s", "2"], "neuropoyo.data.directory", "check_recordings", ([Path("a.h5")],),
        {"context_s": 2.0},
    ),
    ("train",): (
        ["train", "--data", "d", "--out", "r", "--config", "runs/cpu-small", "--readout", "a", "b", "--readout", "c",
         "--max-steps", "5", "--seed", "1", "--device", "cuda"],
        "neuropoyo.api", "train", (["d"], "r"),
        {"config": "runs/cpu-small", "readouts": ["a", "b", "c"], "max_steps": 5, "epochs": None, "seed": 1,
         "resume": False, "device": "cuda", "log": print},
    ),
    ("finetune",): (
        ["finetune", "--model", "m", "--data", "d", "--out", "f", "--mode", "full", "--trials", "14", "--lr", "0.001"],
        "neuropoyo.api", "finetune", ("m", ["d"], "f"),
        {"mode": "full", "trials": 14, "minutes": None, "lr": 0.001, "readouts": None, "device": "cpu"},
    ),
    ("evaluate",): (
        ["evaluate", "--model", "m", "--out", "e", "--split", "valid", "--eval-intervals", "all"],
        "neuropoyo.api", "evaluate", ("m", None, "e"), {"split": "valid", "eval_intervals": ["all"], "num_workers": 0},
    ),
    ("baselines",): (
        ["baselines", "--data", "d", "--out", "b", "--methods", "wiener", "mlp", "bayes", "--readout", "cursor_vel",
         "--bin-s", "0.02", "--n-lags", "3", "--trials", "20"],
        "neuropoyo.api", "baselines", (["d"], "b"),
        {"methods": ["wiener", "mlp", "bayes"], "readout": "cursor_vel", "bin_s": 0.02, "n_lags": 3, "seed": 0,
         "trials": 20},
    ),
    ("compare",): (["compare", "e1", "e2", "--group-by", "stream"], "neuropoyo.api", "compare", (["e1", "e2"], None), {"group_by": "stream"}),
    ("embeddings",): (
        ["embeddings", "--model", "m", "--method", "umap"], "neuropoyo.evaluation.embeddings", "embedding_maps",
        ("m", None), {"data": (), "method": "umap"},
    ),
    ("model-info",): (
        ["model-info", "--config", "runs/cpu-small", "--tokens", "10", "--outputs", "3", "--batch-size", "2"],
        "neuropoyo.model.info", "model_info", (None, 10, 3, 2), {},
    ),
    ("bench-stream",): (
        ["bench-stream", "--model", "m", "--data", "r.h5", "--duration-s", "2", "--update-ms", "5", "--no-torch-brain",
         "--backend", "onnxruntime"],
        "neuropoyo.streaming.bench", "bench_stream", (("model", "m"), ("recording", "r.h5")),
        {"duration_s": 2.0, "update_ms": 5.0, "torch_brain": False, "readout": None, "backend": "onnxruntime"},
    ),
    ("export",): (
        ["export", "--model", "m", "--format", "onnx", "--out", "x", "--readout", "hand_vel"],
        "neuropoyo.streaming.export", "export_onnx", (("model", "m"), Path("x")), {"readout": "hand_vel"},
    ),
    ("serve",): (
        ["serve", "--model", "m", "--transport", "redis", "--spikes", "in", "--estimates", "out", "--session", "lab/r",
         "--units", "lab/r/a", "lab/r/b", "--update-ms", "20", "--max-wait-ms", "5", "--gap-ms", "300", "--jump-s", "2",
         "--dtype", "bfloat16", "--threads", "1", "--duration-s", "9", "--record", "s.csv"],
        "neuropoyo.streaming.serving", "serve_model", ("m",),
        {"transport_name": "redis", "spikes": "in", "estimates": "out", "session": "lab/r", "units": ["lab/r/a", "lab/r/b"],
         "update_ms": 20.0, "max_wait_ms": 5.0, "gap_ms": 300.0, "jump_s": 2.0, "dtype": "bfloat16", "threads": 1,
         "duration_s": 9.0, "record": "s.csv", "score": None, "recording_info": None, "compile": False},
    ),
    ("replay",): (
        ["replay", "r.h5", "--spikes", "in", "--speed", "4", "--chunk-ms", "5", "--start-s", "1.5", "--duration-s", "3",
         "--wait-for-consumer-s", "0"],
        "neuropoyo.streaming.serving", "replay_file", ("r.h5",),
        {"transport_name": "lsl", "spikes": "in", "speed": 4.0, "chunk_ms": 5.0, "start_s": 1.5, "duration_s": 3.0,
         "wait_for_consumer_s": 0.0},
    ),
    ("import-checkpoint",): (
        ["import-checkpoint", "x.ckpt", "--out", "m", "--readout", "hand_vel"],
        "neuropoyo.interop.torch_brain_checkpoint", "import_checkpoint", (Path("x.ckpt"), Path("m")),
        {"readout": "hand_vel", "trust_pickle": False},
    ),
    ("experiment", "transfer"): (
        ["experiment", "transfer", "--out", "x", "--data", "d", "--seen", "a", "--unseen", "b", "c",
         "--sizes", "14", "all", "--methods", "mlp", "full", "--max-steps", "9", "--seeds", "2"],
        "neuropoyo.experiments.transfer", "run_experiment", ("x",),
        {"data": ["d"], "seen": ["a"], "unseen": ["b", "c"], "pretrain": (), "sizes": [14, None],
         "methods": ["mlp", "full"], "max_steps": 9, "reid_steps": 1000, "seeds": 2, "config": None, "log": print},
    ),
    ("experiment", "scaling"): (
        ["experiment", "scaling", "--out", "x", "--depths", "1", "2", "--recordings", "3", "--max-steps", "7",
         "--days", "1", "--quick", "--seeds", "4"],
        "neuropoyo.experiments.scaling", "run_experiment", ("x",),
        {"data": None, "depths": [1, 2], "widths": None, "recordings": [3], "max_steps": 7, "days": 1,
         "animals": None, "quick": True, "seeds": 4, "log": print},
    ),
}


def _stand_in(monkeypatch, module, name):
    """Replace module.name with a recorder that raises Reached; returns the list of its calls."""
    import importlib

    calls = []

    def record(*args, **kwargs):
        calls.append((args, kwargs))
        raise Reached(name)

    monkeypatch.setattr(importlib.import_module(module), name, record)
    return calls


def test_every_command_has_a_wiring_check():
    from neuropoyo.cli import build_parser

    assert sorted(_leaf_commands(build_parser())) == sorted(WIRING)


@pytest.mark.parametrize("command", sorted(WIRING), ids=" ".join)
def test_each_command_is_one_call_with_the_parsed_values(command, monkeypatch):
    """The stand-in checks the wiring only: the command reaches its library call with the options."""
    argv, module, name, args, kwargs = WIRING[command]
    if command in (("bench-stream",), ("export",)):  # the model (and recording) are loaded for the call
        monkeypatch.setattr("neuropoyo.trained.load_model", lambda path, device="cpu": ("model", path))
        monkeypatch.setattr("neuropoyo.data.store.read_recording", lambda path: ("recording", path))
    if command == ("validate",):  # the files are listed for the call
        monkeypatch.setattr("neuropoyo.data.dataset.recording_paths", lambda files: [Path(f) for f in files])
    calls = _stand_in(monkeypatch, module, name)
    with pytest.raises(Reached):
        main(argv)
    (called_args, called_kwargs), = calls
    if args is not None:
        assert [a for a, want in zip(called_args, args) if want is not None] == [w for w in args if w is not None]
    assert {key: called_kwargs[key] for key in kwargs} == kwargs


# old spelling -> (argv, command, keyword of the library call, value, the warning)
RENAMED = [
    (["baselines", "--data", "d", "--out", "b", "--stream", "ry"], ("baselines",), "readout", "ry", "--stream is now --readout"),
    (["baselines", "--data", "d", "--out", "b", "--bin-size", "0.02"], ("baselines",), "bin_s", 0.02, "--bin-size is now --bin-s"),
    (["baselines", "--data", "d", "--out", "b", "--lags", "4"], ("baselines",), "n_lags", 4, "--lags is now --n-lags"),
    (["baselines", "--data", "d", "--out", "b", "--methods", "wiener,mlp"], ("baselines",), "methods", ["wiener", "mlp"],
     "comma-separated --methods is now space-separated --methods wiener mlp"),
    (["simulate", "--out", "o", "--sessions", "3"], ("simulate",), "days", 3, "--sessions is now --days"),
    (["simulate", "--out", "o", "--duration", "30"], ("simulate",), "duration_s", 30.0, "--duration is now --duration-s"),
    (["simulate", "--out", "o", "--tasks", "random_target,center_out"], ("simulate",), "tasks",
     ["random_target", "center_out"], "comma-separated --tasks is now space-separated --tasks random_target center_out"),
    (["experiment", "transfer", "--out", "x", "--steps", "5"], ("experiment", "transfer"), "max_steps", 5, "--steps is now --max-steps"),
    (["experiment", "transfer", "--out", "x", "--sizes", "14,all"], ("experiment", "transfer"), "sizes", [14, None],
     "comma-separated --sizes is now space-separated --sizes 14 all"),
    (["experiment", "scaling", "--out", "x", "--steps", "5"], ("experiment", "scaling"), "max_steps", 5, "--steps is now --max-steps"),
    (["experiment", "scaling", "--out", "x", "--sessions", "1"], ("experiment", "scaling"), "days", 1, "--sessions is now --days"),
    (["experiment", "scaling", "--out", "x", "--recordings", "1,2"], ("experiment", "scaling"), "recordings", [1, 2],
     "comma-separated --recordings is now space-separated --recordings 1 2"),
    (["bench-stream", "--model", "m", "--data", "r", "--seconds", "2"], ("bench-stream",), "duration_s", 2.0, "--seconds is now --duration-s"),
]


@pytest.mark.parametrize("argv, command, keyword, value, warning", RENAMED, ids=[r[-1].split(" is")[0] for r in RENAMED])
def test_old_flag_spellings_still_work_with_a_one_line_warning(argv, command, keyword, value, warning, monkeypatch, capsys):
    _, module, name, _, _ = WIRING[command]
    if command == ("bench-stream",):
        monkeypatch.setattr("neuropoyo.trained.load_model", lambda path, device: path)
        monkeypatch.setattr("neuropoyo.data.store.read_recording", lambda path: path)
    calls = _stand_in(monkeypatch, module, name)
    with pytest.raises(Reached):
        main(argv)
    assert calls[0][1][keyword] == value
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"neuropoyo: warning: {warning}; the old name works in this release only"]


def test_old_flag_spellings_are_hidden_from_help(capsys):
    for argv in (["baselines"], ["simulate"], ["experiment", "scaling"], ["experiment", "transfer"], ["bench-stream"]):
        with pytest.raises(SystemExit):
            main([*argv, "--help"])
        text = capsys.readouterr().out
        for old in ("--stream", "--bin-size", "--lags", "--sessions", "--duration ", "--steps", "--seconds"):
            assert old not in text


def test_choices_named_without_loading_torch_match_the_library():
    from neuropoyo.baselines.run import CLASSIFIERS, DEFAULT_METHODS, METHODS
    from neuropoyo.cli.data import NWB_DOMAINS
    from neuropoyo.cli.experiments import TRANSFER_METHODS
    from neuropoyo.cli.models import EXPORT_FORMATS, STREAM_BACKENDS
    from neuropoyo.cli.scoring import BASELINE_METHODS, DEFAULT_BASELINES
    from neuropoyo.data.importers.nwb import DOMAIN_SOURCES
    from neuropoyo.experiments import transfer
    from neuropoyo.streaming import export, runtimes

    assert NWB_DOMAINS == DOMAIN_SOURCES
    assert BASELINE_METHODS == tuple(dict.fromkeys([*METHODS, *CLASSIFIERS]))
    assert DEFAULT_BASELINES == DEFAULT_METHODS
    assert TRANSFER_METHODS == transfer.METHODS
    assert EXPORT_FORMATS == export.EXPORT_FORMATS
    assert STREAM_BACKENDS == runtimes.BACKENDS


def test_train_without_recordings_is_refused(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "run")]) == 2
    assert "only a resume may leave them out" in capsys.readouterr().err
