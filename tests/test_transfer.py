"""Transfer to new recordings: unit identification, gradual unfreezing, few-shot subsets, new heads."""

import dataclasses

import numpy as np
import pytest
import torch
from conftest import simulated, tiny_run_config

from neuropoyo.data.directory import write_dataset
from neuropoyo.data.intervals import Intervals
from neuropoyo.data.splits import first_minutes, first_trials
from neuropoyo.data.store import open_recording, read_recording
from neuropoyo.errors import ConfigError, DataError
from neuropoyo.evaluation.evaluate import predict, recordings_for
from neuropoyo.pipeline import RecordingSet, Window
from neuropoyo.tokens.vocab import unit_keys
from neuropoyo.trained import load_model
from neuropoyo.training import finetune as transfer
from neuropoyo.training.finetune import FinetuneConfig, finetune
from neuropoyo.training.loop import train


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny model trained on animal 0; animal 1's session is the new recording."""
    root = tmp_path_factory.mktemp("transfer")
    recordings = simulated(animals=2, trials=30)
    old = write_dataset(recordings[:1], root / "old")
    new = write_dataset(recordings[1:], root / "new")
    train(tiny_run_config(max_steps=3), old, root / "pre", progress=False)
    return root, old, new


def state(path):
    return {k: v.clone() for k, v in load_model(path).model.state_dict().items()}


def adapt(setup, name, **options):
    root, _, new = setup
    config = FinetuneConfig(**{"max_steps": 3, "batch_size": 4, **options})
    finetune(root / "pre", new, root / name, config, progress=False)
    return root / name


def test_unit_identification_moves_only_the_new_rows(setup):
    before, after = state(setup[0] / "pre"), state(adapt(setup, "uid"))
    n_units, n_sessions = before["unit_emb.weight"].shape[0], before["session_emb.weight"].shape[0]
    assert after["unit_emb.weight"].shape[0] > n_units and after["session_emb.weight"].shape[0] == n_sessions + 1
    for key, value in before.items():
        if key in ("unit_emb.weight", "session_emb.weight"):
            assert torch.equal(after[key][: value.shape[0]], value), key  # old rows bit-identical
        else:
            assert torch.equal(after[key], value), key  # the network is frozen
    # the new rows train: one more step moves them again
    more = state(adapt(setup, "uid4", max_steps=4))
    assert not torch.equal(more["unit_emb.weight"][n_units:], after["unit_emb.weight"][n_units:])
    assert not torch.equal(more["session_emb.weight"][n_sessions:], after["session_emb.weight"][n_sessions:])


def test_new_rows_start_random_for_units_and_at_the_trained_mean_for_sessions(setup):
    root, _, new = setup
    trained = load_model(root / "pre")
    sessions = trained.model.session_emb.weight.detach().clone()
    units = trained.model.unit_emb.weight.detach().clone()
    unit_mask, session_mask = transfer._grow(trained, new)
    grown_sessions = trained.model.session_emb.weight.detach()
    assert session_mask.tolist() == [0.0] * len(sessions) + [1.0]
    assert torch.equal(grown_sessions[: len(sessions)], sessions)
    assert torch.allclose(grown_sessions[-1], sessions.mean(dim=0))
    fresh = trained.model.unit_emb.weight.detach()[unit_mask.bool()]
    assert len(fresh) == len(unit_keys(open_recording(new[0]))) and unit_mask[: len(units)].sum() == 0
    assert fresh.std().item() == pytest.approx(trained.model.config.init_std, rel=0.2)


def test_old_sessions_predict_bit_identically_after_unit_identification(setup):
    root, old, _ = setup
    adapted = adapt(setup, "uid_old")
    results = []
    for path in (root / "pre", adapted):
        trained = load_model(path)
        results.append(predict(trained, recordings_for(trained, old), split="test"))
    for a, b in zip(*results, strict=True):
        assert np.array_equal(a.predicted, b.predicted) and np.array_equal(a.timestamps, b.timestamps)
    vocab = load_model(adapted).session_vocab.to_list()
    assert len(vocab) == 2 and vocab[0] == load_model(root / "pre").session_vocab.to_list()[0]


def test_gradual_unfreezing_switches_exactly_at_the_configured_step(setup, monkeypatch):
    """Before step 2 only embeddings train; from step 2 on the whole network does."""
    seen = []
    real_fit = transfer.fit

    def spy(*args, before_step, **kwargs):
        def watch(step):
            before_step(step)
            model = args[0].model
            seen.append((step, model.encoder.attention.to_q.weight.detach().clone(),
                         model.encoder.attention.to_q.weight.requires_grad))
        return real_fit(*args, before_step=watch, **kwargs)

    monkeypatch.setattr(transfer, "fit", spy)
    adapt(setup, "full", mode="full", max_steps=4, unfreeze_at=2)
    original = state(setup[0] / "pre")["encoder.attention.to_q.weight"]
    assert [s for s, _, _ in seen] == [0, 1, 2, 3]
    assert [grad for _, _, grad in seen] == [False, False, True, True]
    assert torch.equal(seen[2][1], original)  # steps 0 and 1 left the network alone
    assert not torch.equal(seen[3][1], original)  # step 2 moved it


def test_few_shot_subsets_are_the_first_trials_or_minutes_only():
    train = Intervals([0.0, 10.0, 30.0], [8.0, 25.0, 40.0])
    trials = Intervals([1.0, 3.0, 7.0, 11.0, 20.0, 31.0], [2.0, 5.0, 9.0, 14.0, 24.0, 33.0])
    # trial [7, 9) straddles the end of a training span: it is not a training trial
    assert first_trials(train, trials, 3) == Intervals([1.0, 3.0, 11.0], [2.0, 5.0, 14.0])
    assert first_trials(train, trials, 5).total_duration() == pytest.approx(1 + 2 + 3 + 4 + 2)
    with pytest.raises(KeyError, match="holds 5; ask for 1 to 5"):
        first_trials(train, trials, 6)
    assert first_minutes(train, 10 / 60) == Intervals([0.0, 10.0], [8.0, 12.0])
    with pytest.raises(KeyError, match="holds 0.55 min"):
        first_minutes(train, 1.0)


def test_few_shot_training_sees_only_its_trials_and_keeps_the_test_split(setup):
    _, _, new = setup
    f = open_recording(new[0])
    subset = first_trials(f.splits["train"], f.trials, 5)
    recordings = RecordingSet(new, readouts={"hand_vel": 2}, train_spans=[subset])
    assert recordings.split_spans("train") == [subset]
    assert recordings.split_spans("test") == [f.splits["test"]]
    sample = recordings.read(Window(0, 0.0, f.end))
    assert sample.data.splits["train"] == subset.slice(0.0, f.end)


def test_a_stream_without_a_head_gets_a_new_trained_one(setup):
    root, _, new = setup
    with pytest.warns(UserWarning, match="no readout for 'hand_pos'; added a new 2-dim head"):
        finetune(root / "pre", new, root / "pos", FinetuneConfig(max_steps=2, batch_size=4),
                 readouts=["hand_pos"], progress=False)
    with pytest.warns(UserWarning):
        finetune(root / "pre", new, root / "pos3", FinetuneConfig(max_steps=3, batch_size=4),
                 readouts=["hand_pos"], progress=False)
    two, three, before = state(root / "pos"), state(root / "pos3"), state(root / "pre")
    assert load_model(root / "pos").model.readout_names == ("hand_pos", "hand_vel")
    assert not torch.equal(two["readouts.hand_pos.weight"], three["readouts.hand_pos.weight"])
    assert torch.equal(three["readouts.hand_vel.weight"], before["readouts.hand_vel.weight"])


def test_the_adapted_run_evaluates_and_round_trips(setup, tmp_path):
    from neuropoyo.evaluation.evaluate import evaluate

    adapted = adapt(setup, "uid_eval")
    summary = evaluate(adapted, setup[2], tmp_path / "eval")
    assert list(summary["recordings"]) == [open_recording(setup[2][0]).recording_id]
    trained = load_model(adapted)
    assert "sim_monkey1_day0_co" in trained.session_vocab.to_list()[-1]


def test_known_sessions_and_missing_streams_are_clear_errors(setup, tmp_path):
    root, old, new = setup
    with pytest.raises(DataError, match="already in the model"):
        finetune(root / "pre", old, root / "x", FinetuneConfig(max_steps=1), progress=False)
    recording = read_recording(new[0])
    behavior = {k: v for k, v in recording.behavior.items() if k != "hand_vel"}
    lacking = write_dataset([dataclasses.replace(recording, behavior=behavior)], tmp_path / "pos_only")
    with pytest.raises(DataError, match="none of the model's readout streams.*--readout STREAM"):
        finetune(root / "pre", lacking, root / "y", FinetuneConfig(max_steps=1), progress=False)
    with pytest.raises(ConfigError, match="unfreeze_at applies to mode full only"):
        FinetuneConfig(unfreeze_at=3)
    with pytest.raises(ConfigError, match="trials or minutes, not both"):
        FinetuneConfig(trials=3, minutes=1.0)


def test_reading_some_streams_keeps_the_models_decoder_indices(setup):
    """A model decoding (hand_pos, hand_vel) adapted on hand_vel alone: its queries must go to
    decoder 1, the hand_vel head, not to 0."""
    _, _, new = setup
    both = {"hand_pos": 2, "hand_vel": 2}
    recordings = RecordingSet(new, readouts=both, streams=["hand_vel"])
    assert recordings.decoder_index == {"hand_vel": 1} and recordings.readouts == {"hand_vel": 2}
    assert list(recordings.readout_streams(0)) == ["hand_vel"]
    with pytest.raises(ValueError, match="not readouts of the model"):
        RecordingSet(new, readouts=both, streams=["cursor_vel"])
