"""Presets: model presets and run files told apart by folder, extending each other; old names and
keys read with a warning; the default CPU recipe decided in one place."""

from __future__ import annotations

import dataclasses
import json
import warnings

import numpy as np
import pytest
from test_pipeline import READOUTS, split_recording, write
from test_training import _run_config, sim_data  # noqa: F401 (a fixture)

from neuropoyo.data.dataset import SourceOptions, dataset_from_dict
from neuropoyo.errors import ConfigError, RenamedWarning
from neuropoyo.pipeline import RecordingSet, Window, WindowDataset, training_pipeline
from neuropoyo.pipeline.config import AugmentConfig, LossConfig
from neuropoyo.training import loop
from neuropoyo.training.config import PRESET_DIR, PresetNotice, RunConfig, TrainConfig, presets
from neuropoyo.training.recipe import MANY_RECORDINGS, default_config, resolve_config

MODELS = sorted(p.stem for p in (PRESET_DIR / "models").glob("*.yaml"))
RUNS = sorted(p.stem for p in (PRESET_DIR / "runs").glob("*.yaml"))


def model_preset(name: str):
    return RunConfig.from_dict({"model": name}).model


def test_the_shipped_presets_are_the_named_models_and_run_files_and_all_load():
    assert MODELS == ["cpu-small", "paper-mp-L14", "paper-mp-L26", "paper-mp-L6", "paper-single-session"]
    assert RUNS == ["cpu-small", "paper-single-session"]
    assert presets() == sorted([*(f"models/{m}" for m in MODELS), *(f"runs/{r}" for r in RUNS)])
    for name in MODELS:
        assert model_preset(name).dim > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a shipped run file neither is renamed nor lacks training settings
        runs = {name: RunConfig.from_yaml(name) for name in RUNS}
    assert runs["cpu-small"].model == model_preset("cpu-small")
    assert runs["paper-single-session"].model == model_preset("paper-single-session")
    assert runs["paper-single-session"].training == TrainConfig(batch_size=128, lr=4e-3, weight_decay=1e-4)


def test_deeper_paper_models_extend_l6_and_change_only_the_depth():
    l6 = model_preset("paper-mp-L6")
    assert model_preset("paper-mp-L14") == dataclasses.replace(l6, depth=12)
    assert model_preset("paper-mp-L26") == dataclasses.replace(l6, depth=24)


def test_a_run_file_extends_another_section_by_section_and_key_by_key(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("extends: cpu-small\nmodel: {depth: 3}\ntraining: {max_steps: 7}\n")
    mine, base = RunConfig.from_yaml(path), RunConfig.from_yaml("cpu-small")
    assert mine.model == dataclasses.replace(base.model, depth=3)
    assert mine.training == dataclasses.replace(base.training, max_steps=7)  # batch and lr kept
    assert (mine.augment, mine.evaluation) == (base.augment, base.evaluation)


def test_a_misspelled_section_is_named_as_a_section_not_as_an_unknown_model_key(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("extends: cpu-small\ntrainig: {max_steps: 7}\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: unknown section 'trainig' \(did you mean 'training'\?\)"):
        RunConfig.from_yaml(path)
    path.write_text("extends: cpu-small\ndepth: 3\n")  # a model preset extending one: still fine
    assert RunConfig.from_yaml(path).model.depth == 3


def test_extends_cycles_and_unknown_names_are_errors_naming_the_files(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b\ntraining: {lr: 1.0e-3}\n")
    (tmp_path / "b.yaml").write_text("extends: a\nmodel: cpu-small\n")
    with pytest.raises(ConfigError, match=r"a\.yaml.*b\.yaml.*a\.yaml"):
        RunConfig.from_yaml(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: nowhere\nmodel: cpu-small\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: no config file 'nowhere'.*runs/cpu-small"):
        RunConfig.from_yaml(tmp_path / "c.yaml")


OLD_NAMES = {  # old name -> (the new name it equals, changes to it)
    "cpu_small.yaml": ("models/cpu-small", {}),
    "poyo_single_session.yaml": ("models/paper-single-session", {}),
    "poyo_mp_L6.yaml": ("models/paper-mp-L6", {}),
    "poyo_mp_L14": ("models/paper-mp-L14", {}),
    "poyo_mp_L26.yaml": ("models/paper-mp-L26", {}),
    "cpu_small_run.yaml": ("runs/cpu-small", {}),
    "cpu_small_multi_run.yaml": ("runs/cpu-small", {"lr": 4e-3}),  # what the old file said
    "poyo_single_session_gpu.yaml": ("runs/paper-single-session", {"num_workers": 8}),
}


@pytest.mark.parametrize("old", OLD_NAMES)
def test_an_old_preset_name_warns_and_reads_as_its_new_name(old):
    new, training = OLD_NAMES[old]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PresetNotice)
        with pytest.warns(RenamedWarning, match=f"{old.removesuffix('.yaml')}.yaml is now {new}"):
            config = RunConfig.from_yaml(old)
        assert config == RunConfig.from_yaml(new).with_training(**training)


@pytest.mark.parametrize("old, new", [("demo.yaml", "models/cpu-small"), ("demo_run", "runs/cpu-small")])
def test_the_retired_demo_presets_read_as_cpu_small_and_say_so(old, new):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PresetNotice)
        with pytest.warns(RenamedWarning, match=f"{old.removesuffix('.yaml')}.yaml is retired.*reads as {new}"):
            config = RunConfig.from_yaml(old)
        assert config == RunConfig.from_yaml(new)


def test_a_run_file_naming_its_model_by_an_old_name_still_reads(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: cpu_small.yaml\ntraining: {max_steps: 5}\n")
    with pytest.warns(RenamedWarning, match="cpu_small.yaml is now models/cpu-small"):
        assert RunConfig.from_yaml(path).model == model_preset("cpu-small")


def test_a_bare_model_preset_as_run_file_names_the_training_settings_it_took(tmp_path):
    with pytest.warns(PresetNotice, match="model preset.*batch_size 128, lr 0.004, 100 epochs.*training section"):
        config = RunConfig.from_yaml("models/paper-single-session")
    assert config.training == TrainConfig()
    flat = tmp_path / "mine.yaml"
    flat.write_text("extends: paper-mp-L6\ndepth: 2\n")  # a user's model preset, extending a shipped one
    with pytest.warns(PresetNotice, match="mine.yaml is a model preset"):
        assert RunConfig.from_yaml(flat).model == dataclasses.replace(model_preset("paper-mp-L6"), depth=2)


def test_the_default_recipe_lowers_the_learning_rate_from_many_recordings_and_says_why():
    one, note = default_config(1)
    assert one == RunConfig.from_yaml("cpu-small") and one.training.lr == 1e-2
    assert "runs/cpu-small" in note and "lr" not in note
    many, note = default_config(MANY_RECORDINGS)
    assert many == one.with_training(lr=4e-3)
    assert f"with lr 0.004 instead of 0.01: on {MANY_RECORDINGS} or more recordings" in note
    assert resolve_config(None, 6) == default_config(6)
    assert resolve_config(one, 6) == (one, None)
    assert resolve_config("paper-single-session", 1) == (RunConfig.from_yaml("paper-single-session"), None)


def test_unit_dropout_off_keeps_every_unit_in_every_window(tmp_path):
    recordings = RecordingSet(write([split_recording(n_units=40)], tmp_path), readouts=READOUTS)

    def units_seen(augment: AugmentConfig) -> list[int]:
        pipeline = training_pipeline(recordings, context_length_s=1.0, loss=LossConfig(), augment=augment)
        dataset = WindowDataset(recordings, pipeline)
        return [len(np.unique(dataset[Window(0, 2.0, 3.0, key=(0, k))][1]["input_unit_index"])) for k in range(5)]

    assert units_seen(AugmentConfig(unit_dropout=False, unit_dropout_min=5)) == [40] * 5
    assert min(units_seen(AugmentConfig(unit_dropout_min=5))) < 40  # on: it draws
    assert units_seen(AugmentConfig(unit_dropout_min=1000)) == [40] * 5  # the old way to turn it off
    assert RunConfig.from_yaml("cpu-small").augment.unit_dropout is False


def test_old_config_keys_read_with_a_warning_as_the_new_ones(tmp_path):
    with pytest.warns(RenamedWarning, match="loss.scale is now loss.normalize"):
        assert LossConfig.from_dict({"scale": "lab_scalar"}) == LossConfig(normalize="lab_scalar")
    with pytest.raises(ConfigError, match="both scale and normalize"):
        LossConfig.from_dict({"scale": "lab_scalar", "normalize": "per_dim"})
    (tmp_path / "co").mkdir()
    write([split_recording()], tmp_path / "co")
    old = {"sources": [{"recordings": "co", "streams": ["hand_vel"], "scale": "lab_scalar"}]}
    new = {"sources": [{"recordings": "co", "readouts": ["hand_vel"], "normalize": "lab_scalar"}]}
    with pytest.warns(RenamedWarning) as warned:
        dataset = dataset_from_dict(old, source="data.yaml", base=tmp_path)
    assert {str(w.message).split(" is now")[0] for w in warned} == {
        "data.yaml: sources[0].streams", "data.yaml: sources[0].scale"
    }
    assert dataset == dataset_from_dict(new, source="data.yaml", base=tmp_path)
    assert dataset.options == (SourceOptions(readouts=("hand_vel",), normalize="lab_scalar"),)


def test_a_run_written_before_the_renames_resumes(sim_data, tmp_path):  # noqa: F811
    config = _run_config(2, 1)
    loop.train(config, [sim_data], tmp_path / "run", progress=False)
    path = tmp_path / "run" / "run.json"
    info = json.loads(path.read_text())  # as an older release wrote it: old keys, no augment.unit_dropout
    info["config"]["loss"]["scale"] = info["config"]["loss"].pop("normalize")
    del info["config"]["augment"]["unit_dropout"]
    for source in info["dataset"]["sources"]:
        source["streams"], source["scale"] = source.pop("readouts"), source.pop("normalize")
    path.write_text(json.dumps(info))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RenamedWarning)  # neuropoyo's own file: nothing to tell the user
        result = loop.train(config, None, tmp_path / "run", resume=True, progress=False)
    assert result.steps == 2
