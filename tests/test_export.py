"""ONNX export: every graph, loaded back by ONNX Runtime, computes what the PyTorch model does; the
streaming pair, driven by the how-to's numpy host, streams what StreamingDecoder streams."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from neuropoyo.cli import main
from neuropoyo.data import Intervals, Recording, RecordingInfo, Spikes, Units
from neuropoyo.data.normalize import Normalizer, Scale
from neuropoyo.errors import ConfigError
from neuropoyo.model import POYO
from neuropoyo.streaming import StreamingDecoder
from neuropoyo.streaming.export import export_onnx
from neuropoyo.tokens.tokenizer import input_tokens
from neuropoyo.tokens.vocab import Vocabulary
from neuropoyo.trained import TrainedModel, load_model, save_model
from test_model import tiny_config
from test_streaming import T0, UNIT_ROWS

onnxruntime = pytest.importorskip("onnxruntime", reason="ONNX export tests need the export extra (onnxruntime)")
pytest.importorskip("onnxscript", reason="ONNX export tests need the export extra (onnxscript)")

HOWTO = Path(__file__).resolve().parents[1] / "docs" / "how-to" / "export-onnx.md"
RECORDING = "rec"
MEAN, STD = (0.5, -1.0), (2.0, 0.25)


def gapped_recording(n_units: int = 6) -> Recording:
    """Spikes over [T0, T0 + 1.5) and [T0 + 3, T0 + 5): a window ending at T0 + 2.9 holds none;
    the last unit never fires."""
    rng = np.random.default_rng(0)
    times = np.sort(np.concatenate([rng.uniform(T0, T0 + 1.5, 90), rng.uniform(T0 + 3.0, T0 + 5.0, 120)]))
    return Recording(
        info=RecordingInfo(recording_id=RECORDING),
        spikes=Spikes(times, rng.integers(0, n_units - 1, times.size)),
        units=Units([f"u{k}" for k in range(n_units)]),
        behavior={},
        domain=Intervals([T0], [T0 + 5.0]),
    )


def tiny_trained() -> TrainedModel:
    """A float32 tiny model (task embeddings, two readouts) whose unit rows of the recording are
    UNIT_ROWS, its session row 1."""
    torch.manual_seed(0)
    model = POYO(tiny_config()).eval()
    units = [f"other/u{k}" for k in range(model.config.num_units)]
    for position, row in enumerate(UNIT_ROWS):
        units[row] = f"{RECORDING}/u{position}"
    normalizer = Normalizer({"": {"hand_vel": Scale(MEAN, STD), "cursor_pos": Scale((0.0,) * 3, (1.0,) * 3)}})
    return TrainedModel(model, Vocabulary(units), Vocabulary(["s0", RECORDING, "s2"]), normalizer, {})


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(the trained model as loaded back, the exported folder, what the command printed)."""
    root = tmp_path_factory.mktemp("export")
    save_model(tiny_trained(), root / "model")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["export", "--model", str(root / "model"), "--format", "onnx", "--out", str(root / "onnx"),
                     "--readout", "hand_vel"]) == 0
    return load_model(root / "model"), root / "onnx", printed.getvalue()


def howto_host() -> type:
    """The ExportedStream class of the how-to page, run as it is printed there."""
    blocks = re.findall(r"```python\n(.*?)```", HOWTO.read_text(), re.DOTALL)
    (code,) = [block for block in blocks if "class ExportedStream" in block]
    namespace: dict = {}
    exec(compile(code, str(HOWTO), "exec"), namespace)
    return namespace["ExportedStream"]


def test_the_command_writes_the_graphs_and_a_manifest_that_round_trips(exported):
    trained, folder, printed = exported
    assert sorted(p.name for p in folder.iterdir()) == ["manifest.json", "offline.onnx", "spike_kv.onnx", "update.onnx"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert Vocabulary(manifest["units"]).to_list() == trained.unit_vocab.to_list()
    assert manifest["sessions"] == trained.session_vocab.to_list()
    assert Normalizer.from_dict(manifest["normalization"]) == trained.normalizer
    assert manifest["readout"] == "hand_vel" and manifest["readouts"] == {"cursor_pos": 3, "hand_vel": 2}
    assert manifest["context_length_s"] == trained.model.config.context_length_s
    assert manifest["model"] == trained.model.config.to_dict()
    update = manifest["graphs"]["update"]
    assert update["inputs"] == [
        {"name": "spike_keys", "dtype": "float32", "shape": ["spikes", 32]},
        {"name": "spike_values", "dtype": "float32", "shape": ["spikes", 32]},
        {"name": "unit_index", "dtype": "int64", "shape": ["units"]},
        {"name": "session_index", "dtype": "int64", "shape": [1]},
        {"name": "now_s", "dtype": "float64", "shape": [1]},
    ]
    assert update["outputs"] == [{"name": "estimate", "dtype": "float32", "shape": [2]}]
    for name, graph in manifest["graphs"].items():  # the manifest describes the files as ONNX Runtime reads them
        session = onnxruntime.InferenceSession(str(folder / graph["file"]))
        assert [i.name for i in session.get_inputs()] == [i["name"] for i in graph["inputs"]]
        assert [o.name for o in session.get_outputs()] == [o["name"] for o in graph["outputs"]]
        assert 0 <= manifest["max_abs_difference"][name] < 1e-5
        assert f"{graph['file']} " in printed
    assert [o["name"] for o in manifest["graphs"]["offline"]["outputs"]] == ["cursor_pos", "hand_vel"]


def test_the_offline_graph_equals_the_model_on_windows_with_and_without_spikes(exported):
    trained, folder, _ = exported
    model, T = trained.model.eval(), trained.model.config.context_length_s  # no dropout
    session = onnxruntime.InferenceSession(str(folder / "offline.onnx"))
    recording = gapped_recording()
    for now in (T0 + 0.4, T0 + 1.2, T0 + 2.9, T0 + 3.7, T0 + 5.0):  # T0 + 2.9: no spike in the window
        window = recording.slice(now - T, now)
        tokens = input_tokens(window, observed=Intervals([0.0], [T]), unit_index=UNIT_ROWS)
        times = tokens["input_timestamps"].astype(np.float64)
        times[: window.spikes.times.size] = window.spikes.times
        inputs = {
            "input_unit_index": tokens["input_unit_index"],
            "input_timestamps": times,
            "input_token_type": tokens["input_token_type"],
            "output_session_index": np.array([1, 0, 2]),
            "output_timestamps": np.array([0.1, 0.55, T]),
            "output_decoder_index": np.array([0, 1, 1]),
        }
        got = dict(zip(("cursor_pos", "hand_vel"), session.run(None, inputs)))
        with torch.no_grad():
            want = model(**{key: torch.as_tensor(value)[None] for key, value in inputs.items()})
        assert (window.spikes.times.size == 0) == (now == T0 + 2.9)
        for name, value in want.items():
            np.testing.assert_allclose(got[name], value[0].numpy(), rtol=0, atol=1e-5)
            assert np.abs(value.numpy()).max() > 0.05  # outputs of order 1, so the check has teeth


def test_the_howto_host_streams_what_the_streaming_decoder_streams_from_10000_s(exported):
    trained, folder, _ = exported
    recording = gapped_recording()
    ExportedStream = howto_host()
    unit_ids = [f"{RECORDING}/u{k}" for k in range(6)]
    hosts = [ExportedStream(folder, unit_ids, RECORDING), ExportedStream(folder, unit_ids, RECORDING)]
    hosts[1].origin = 0.0  # raw times of 10,000 s into the graphs: exact only with float64 angles
    decoder = StreamingDecoder.for_recording(trained, recording, readout="hand_vel")
    updates = T0 + np.concatenate([[0.0, 0.3], np.arange(0.7, 5.0, 0.1)])  # 2.9: a window without spikes
    spikes, pushed = recording.spikes, 0
    for now in updates:
        upto = int(np.searchsorted(spikes.times, now, side="left"))
        for stream in (decoder, *hosts):
            stream.push(spikes.unit_index[pushed:upto], spikes.times[pushed:upto])
        pushed = upto
        want = decoder.estimate(now)
        for host in hosts:
            np.testing.assert_array_less(np.abs(host.estimate(now) - want) / STD, 1e-5)  # z-scored
    assert hosts[0].keys.shape[0] < spikes.times.size  # spikes that left the window were dropped


def test_missing_packages_an_unknown_format_or_readout_are_one_line_errors(exported, tmp_path, monkeypatch, capsys):
    _, folder, _ = exported
    model_dir = folder.parent / "model"
    with pytest.raises(SystemExit) as stop:
        main(["export", "--model", str(model_dir), "--format", "tflite", "--out", str(tmp_path / "x")])
    assert stop.value.code == 2 and "argument --format: invalid choice: 'tflite'" in capsys.readouterr().err
    assert main(["export", "--model", str(model_dir), "--out", str(tmp_path / "x")]) == 2
    assert "readouts ['cursor_pos', 'hand_vel']: name the one to stream with --readout" in capsys.readouterr().err
    assert main(["export", "--model", str(model_dir), "--out", str(tmp_path / "x"), "--readout", "cursor"]) == 2
    assert "readout 'cursor' is not one of the model's readouts" in capsys.readouterr().err
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else find_spec(name, *a))
    assert main(["export", "--model", str(model_dir), "--out", str(tmp_path / "x"), "--readout", "hand_vel"]) == 2
    err = capsys.readouterr().err
    assert err == "neuropoyo export: error: ONNX export needs onnxruntime: pip install 'neuropoyo[export]'\n"
    assert not (tmp_path / "x").exists()


def test_models_reading_traces_or_classifying_are_refused_with_the_reason(tmp_path):
    trained = tiny_trained()
    for change in ({"value_inputs": True}, {"readouts": {"direction": 2}, "classes": {"direction": ["a", "b"]}}):
        model = POYO(dataclasses.replace(trained.model.config, **change))
        other = TrainedModel(model, trained.unit_vocab, trained.session_vocab, trained.normalizer, {})
        with pytest.raises(ConfigError, match="not exported"):
            export_onnx(other, tmp_path / "out")
