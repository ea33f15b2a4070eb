"""The public Python API: recordings in memory in, predictions and scores out, the numbers the
command line writes, adaptation that leaves the original model alone, and exact save/load."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import neuropoyo
from conftest import simulated, tiny_run_config
from neuropoyo import api
from neuropoyo.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def recordings():
    return simulated(animals=2, days=2, trials=16)  # animal 0 days 0-1, animal 1 days 0-1


@pytest.fixture(scope="module")
def fitted(recordings, tmp_path_factory):
    config = tiny_run_config(max_steps=20, validate_every=10)
    return neuropoyo.Decoder(config, progress=False).fit(recordings[:3], out=tmp_path_factory.mktemp("run"))


def test_import_is_light_and_every_public_name_resolves():
    code = (
        "import sys, neuropoyo\n"
        "assert 'torch' not in sys.modules, 'import neuropoyo loaded torch'\n"
        "missing = [n for n in neuropoyo.__all__ if n not in ('from_pynapple', 'to_pynapple') and getattr(neuropoyo, n) is None]\n"
        "assert not missing, missing\n"
        "assert 'torch' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError, match="no attribute 'Decodr'"):
        neuropoyo.Decodr


def test_public_names_are_not_replaced_by_subpackages_of_the_same_name():
    """``neuropoyo.baselines`` is the function, also after the subpackage ``neuropoyo.baselines``
    was imported (by ``neuropoyo.Decoder``'s module, or by a user); the subpackage still imports."""
    code = (
        "import inspect, neuropoyo\n"
        "neuropoyo.Decoder\n"
        "from neuropoyo.baselines import decoders\n"
        "import neuropoyo.baselines\n"
        "assert inspect.isfunction(neuropoyo.baselines), neuropoyo.baselines\n"
        "assert neuropoyo.baselines.__module__ == 'neuropoyo.api'\n"
        "assert decoders.__name__ == 'neuropoyo.baselines.decoders'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fit_keeps_in_memory_recordings_with_its_run(fitted, recordings):
    data = sorted(p.name for p in (fitted.run_dir_ / "data").iterdir())
    assert data == sorted(f"{r.recording_id}.h5" for r in recordings[:3])
    run = json.loads((fitted.run_dir_ / "run.json").read_text())
    assert [Path(p).parent for p in run["data"]] == [(fitted.run_dir_ / "data").resolve()] * 3
    # the run's own recordings are the default data of evaluate
    assert neuropoyo.evaluate(fitted.run_dir_, progress=False)["mean_r2"] == fitted.score(recordings[:3])["mean_r2"]


def test_score_is_the_summary_evaluate_writes(fitted, recordings, tmp_path):
    from neuropoyo.cli import main

    scored = fitted.score(recordings[:3])
    assert main(["evaluate", "--model", str(fitted.run_dir_), "--out", str(tmp_path / "eval")]) == 0
    written = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert written["mean_r2"] == scored["mean_r2"]
    assert list(written["recordings"]) == [r.recording_id for r in recordings[:3]]


def test_predict_covers_the_recording_on_its_own_timestamps(fitted, recordings, tmp_path):
    recording = recordings[0]
    times, values = fitted.predict(recording)["hand_vel"]
    stream = recording.behavior["hand_vel"]
    inside = stream.timestamps[recording.domain.contains(stream.timestamps)]
    assert np.all(np.isin(times, inside)) and np.all(np.diff(times) > 0)
    assert times.size >= 0.98 * inside.size  # the sliding windows reach (almost) every sample
    assert values.shape == (times.size, 2) and np.isfinite(values).all()
    # the same recording from a file gives the same numbers
    path = neuropoyo.write_recording(recording, tmp_path / "again.h5")
    again_times, again_values = neuropoyo.predict(fitted.trained_, path)["hand_vel"]
    np.testing.assert_array_equal(again_times, times)
    np.testing.assert_array_equal(again_values, values)


def test_predict_refuses_a_recording_the_model_never_saw(fitted, recordings):
    with pytest.raises(DataError, match="unknown to the model.*adapt"):
        fitted.predict(recordings[3])


def test_adapt_makes_a_new_decoder_and_leaves_this_one(fitted, recordings):
    units_before = len(fitted.trained_.unit_vocab)
    weights_before = {k: v.clone() for k, v in fitted.trained_.model.state_dict().items()}
    adapted = fitted.adapt(recordings[3], trials=8, max_steps=4, progress=False)
    assert len(fitted.trained_.unit_vocab) == units_before
    for key, value in fitted.trained_.model.state_dict().items():
        assert torch_equal(value, weights_before[key]), key
    assert len(adapted.trained_.unit_vocab) > units_before
    assert np.isfinite(adapted.predict(recordings[3])["hand_vel"][1]).all()
    assert (adapted.run_dir_ / "data" / f"{recordings[3].recording_id}.h5").is_file()


def torch_equal(a, b) -> bool:
    return bool((a == b).all())


def test_save_and_load_predict_exactly_the_same(fitted, recordings, tmp_path):
    saved = fitted.save(tmp_path / "model")
    loaded = neuropoyo.Decoder.load(saved)
    a, b = fitted.predict(recordings[1])["hand_vel"], loaded.predict(recordings[1])["hand_vel"]
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_a_decoder_without_a_model_says_what_to_do(recordings):
    with pytest.raises(ConfigError, match=r"Decoder.predict: .*call fit\(...\) or Decoder.load"):
        neuropoyo.Decoder().predict(recordings[0])


def _renamed(recording, names):
    stream = recording.behavior["hand_vel"]
    return dataclasses.replace(recording, behavior={name: stream for name in names})


def test_the_one_stream_there_is_is_decoded(recordings, tmp_path):
    said = []
    only_position = [_renamed(r, ["position"]) for r in recordings[:1]]
    config = api.run_config(only_position, config=tiny_run_config(), log=said.append)
    assert dict(config.model.readouts) == {"position": 2}
    assert said == ["readout: position, the one behavior stream the recordings hold (--readout chooses)"]
    two = [_renamed(r, ["position", "speed"]) for r in recordings[:1]]
    with pytest.raises(DataError, match=r"hold position, speed: choose the stream to decode with --readout position \(config key model.readouts: \{position: 2\}"):
        api.run_config(two, config=tiny_run_config())
    assert dict(api.run_config(two, config=tiny_run_config(), readouts=["speed"]).model.readouts) == {"speed": 2}


def test_the_default_recipe_is_said_and_follows_the_number_of_recordings(recordings):
    said = []
    few = api.run_config(recordings[:1], log=said.append)
    many = api.run_config(recordings[:2], log=said.append)
    assert few.training.lr == 1e-2 and many.training.lr == 4e-3
    assert "cpu-small" in said[0] and "lr 0.004 instead of 0.01" in said[1]


def test_write_recordings_refuses_two_recordings_with_one_id(recordings, tmp_path):
    with pytest.raises(ConfigError, match="recording_id 'sim_monkey0.*' is given twice"):
        neuropoyo.write_recordings([recordings[0], recordings[0]], tmp_path)


def _python_block(page: Path) -> str:
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    assert blocks, f"{page}: no python block"
    return blocks[0]


@pytest.mark.slow
def test_the_readme_python_runs_and_the_site_home_shows_the_same(tmp_path, monkeypatch):
    """README's ten lines of Python, as written (simulate 4, fit on 3, score, predict, adapt the 4th
    with 20 trials, save, load); the site's home page shows the same lines (the tutorial in Python,
    docs/tutorials/plot_06_python.py, runs when the site is built)."""
    readme = _python_block(ROOT / "README.md")
    assert readme.startswith(_python_block(ROOT / "docs" / "index.md").rstrip("\n"))
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(readme, "README.md", "exec"), scope)
    assert (tmp_path / "model" / "model.safetensors").is_file()
    assert scope["decoder"].score(scope["recordings"][:3])["mean_r2"] > 0.3  # 300 steps learn a good part of it
    times, values = scope["times"], scope["values"]
    assert values.shape == (len(times), 2)
    new = scope["recordings"][3]
    assert np.array_equal(scope["same"].predict(new)["hand_vel"][1], scope["adapted"].predict(new)["hand_vel"][1])
