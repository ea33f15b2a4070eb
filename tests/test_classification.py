"""Classification tasks: label streams, the cross-entropy loss, pooled decisions and their scores,
reports, storage, and the classic classifiers."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from conftest import build_recording

from neuropoyo.baselines.decoders import LogisticRegression, MLPClassifier
from neuropoyo.data import Intervals, TimeSeries
from neuropoyo.data.labels import trial_label_stream
from neuropoyo.data.store import read_recording, write_recording
from neuropoyo.data.validate import InvalidRecordingError, validate_recording
from neuropoyo.errors import ConfigError, DataError, MissingKeyError
from neuropoyo.evaluation.metrics import accuracy, balanced_accuracy, pooled_decisions
from neuropoyo.evaluation.report import RecordingResult, format_table, predictions_csv, summarize
from neuropoyo.model import POYOConfig
from neuropoyo.training.loss import weighted_errors

TRIALS = Intervals(
    [0.0, 2.0, 5.0, 8.0],
    [1.0, 3.5, 6.0, 9.0],
    {"direction": np.array([90.0, 0.0, np.nan, 90.0]), "onset": np.array([0.5, 2.5, 5.5, 8.2])},
)


def test_a_trial_column_becomes_a_label_stream_on_a_grid_over_each_trial():
    stream = trial_label_stream(TRIALS, "direction", rate_hz=4.0)
    assert stream.classes == ("0", "90") and stream.is_labels and stream.unit == "class"
    # trial 2 has no value: no samples; each other trial: samples every 0.25 s from its start
    expected = np.concatenate([np.arange(4) * 0.25, 2.0 + np.arange(6) * 0.25, 8.0 + np.arange(4) * 0.25])
    np.testing.assert_allclose(stream.timestamps, expected)
    np.testing.assert_array_equal(stream.values[:, 0], [1] * 4 + [0] * 6 + [1] * 4)
    assert stream.values.dtype == np.int64
    onset = trial_label_stream(TRIALS, "direction", start_column="onset", rate_hz=4.0)
    np.testing.assert_allclose(onset.timestamps[:2], [0.5, 0.75])
    assert len(onset) == 2 + 4 + 4  # [0.5, 1), [2.5, 3.5), [8.2, 9)


def test_label_errors_name_the_column_and_the_fix():
    with pytest.raises(MissingKeyError, match="no trial column 'colour'.*direction"):
        trial_label_stream(TRIALS, "colour")
    with pytest.raises(DataError, match=r"trial 0 has direction = '90', not one of its classes \['0', '45'\]"):
        trial_label_stream(TRIALS, "direction", classes=("0", "45"))


def labelled_recording():
    recording = build_recording()
    labels = trial_label_stream(recording.trials, "target_id", rate_hz=10.0)
    return dataclasses.replace(recording, behavior={**recording.behavior, "target": labels})


def test_a_label_outside_its_classes_is_refused_by_validation():
    recording = labelled_recording()
    stream = recording.behavior["target"]
    bad = TimeSeries(stream.timestamps, np.where(np.arange(len(stream)) == 3, 7, stream.values[:, 0])[:, None], "class", stream.classes)
    broken = dataclasses.replace(recording, behavior={**recording.behavior, "target": bad})
    with pytest.raises(InvalidRecordingError, match=r"behavior/target/values: 1 label\(s\) outside the 2 classes.*sample 3.*holds 7"):
        validate_recording(broken, "rec.h5")


def test_label_streams_round_trip_and_need_the_newer_schema(tmp_path):
    recording = labelled_recording()
    path = write_recording(recording, tmp_path / "rec.h5")
    back = read_recording(path)
    assert back == recording and back.behavior["target"].classes == ("0", "1")
    import h5py

    with h5py.File(path) as file:
        assert file.attrs["schema_version"] == 2
        assert json.loads(file["behavior/target"].attrs["classes"]) == ["0", "1"]
    from neuropoyo.data.store import open_recording

    with open_recording(path) as f:
        assert f.behavior_dims["target"] == 2 and f.behavior_classes == {"target": ("0", "1")}


def test_cross_entropy_of_label_readouts_and_task_weights_by_hand():
    logits = torch.tensor([[[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [5.0, 5.0, 5.0]]])
    speed = torch.tensor([[[1.0], [3.0], [0.0]]])
    batch = {
        "target_values": torch.tensor([[[0.0], [2.0], [0.5]]]),
        "target_weights": torch.tensor([[1.0, 2.0, 4.0]]),
        "output_mask": torch.tensor([[True, True, True]]),
        "output_decoder_index": torch.tensor([[0, 0, 1]]),
    }
    dims = {"direction": 3, "speed": 1}
    total, weight = weighted_errors(
        {"direction": logits, "speed": speed}, batch, dims, classification={"direction"}, task_weights={"speed": 10.0}
    )
    ce = torch.nn.functional.cross_entropy(logits[0, :2], torch.tensor([0, 2]), reduction="none")
    expected = ce[0] * 1.0 + ce[1] * 2.0 + 10.0 * 4.0 * (0.0 - 0.5) ** 2
    torch.testing.assert_close(total, expected)
    assert float(weight) == 7.0


def test_pooled_decisions_and_balanced_accuracy_by_hand():
    # trial 0: samples favour class 1 then class 0 weakly -> summed log-probabilities pick class 1
    logits = np.array([[0.0, 3.0], [0.2, 0.0], [0.0, 1.0], [4.0, 0.0]])
    decided, first = pooled_decisions(logits, np.array([0, 0, 1, -1]))
    np.testing.assert_array_equal(decided, [1, 1, 0])
    np.testing.assert_array_equal(first, [0, 2, 3])
    labels = np.array([0, 0, 0, 1])
    assert accuracy(labels, [0, 0, 1, 1]) == 0.75
    assert balanced_accuracy(labels, [0, 0, 1, 1]) == pytest.approx((2 / 3 + 1) / 2)


def label_result(logits, labels, trial):
    n = len(labels)
    return RecordingResult(
        recording_id="rec", task="gratings", brainset="lab", stream="direction",
        timestamps=np.arange(n, dtype=float), true=np.asarray(labels, dtype=float)[:, None],
        predicted=np.asarray(logits, dtype=float), segment=np.zeros(n, dtype=int), units="class",
        classes=("0", "90"), trial=np.asarray(trial),
    )


def test_reports_score_label_streams_by_trial_decisions():
    logits = [[2.0, 0.0], [0.0, 1.0], [0.0, 3.0], [1.0, 0.0], [1.0, 0.0]]
    result = label_result(logits, [0, 0, 1, 1, 1], [0, 0, 1, 1, 2])
    speed = RecordingResult(
        recording_id="rec", task="gratings", brainset="lab", stream="speed", timestamps=np.arange(3.0),
        true=np.array([[0.0], [1.0], [2.0]]), predicted=np.array([[0.0], [1.0], [1.0]]),
        segment=np.zeros(3, dtype=int), units="a.u.",
    )
    summary = summarize([result, speed], split="test")
    metrics = summary["recordings"]["rec"]["streams"]["direction"]
    # trial 0 -> class 0 (right), trial 1 -> class 1 (right), trial 2 -> class 0 (wrong)
    assert metrics["accuracy"] == pytest.approx(2 / 3) and metrics["decisions"] == 3
    assert metrics["balanced_accuracy"] == pytest.approx((1 + 0.5) / 2)
    assert metrics["sample_accuracy"] == pytest.approx(2 / 5) and metrics["chance"] == 0.5
    assert "r2" not in metrics and summary["mean_accuracy"] == pytest.approx(2 / 3)
    assert summary["mean_r2"] == pytest.approx(0.5) and summary["recordings"]["rec"]["r2"] == pytest.approx(0.5)
    assert summary["tasks"]["gratings"] == {
        "mean_r2": pytest.approx(0.5), "std_r2": 0.0, "n": 1,
        "mean_accuracy": pytest.approx(2 / 3), "std_accuracy": 0.0, "n_accuracy": 1,
    }
    table = format_table(summary)
    assert "0.6667" in table and "3 per trial" in table and "mean accuracy over" in table
    header = predictions_csv(result).splitlines()[0]
    assert header == "timestamp,true_direction_0,logit_direction_0,logit_direction_1,segment,trial"


def test_classification_readouts_need_one_output_per_class():
    POYOConfig(readouts={"direction": 8}, classes={"direction": [str(k) for k in range(8)]})
    with pytest.raises(ConfigError, match="classes of 'direction'"):
        POYOConfig(readouts={"direction": 8}, classes={"direction": ["a", "b"]})


def separable(seed: int, n: int = 300):
    """Three classes, each a Gaussian blob in a (N, 2 lags, 3 units) design."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    centres = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 2.0]])
    X = centres[labels][:, None, :] + rng.normal(size=(n, 2, 3))
    return X, labels[:, None]


@pytest.mark.parametrize("make", [lambda: LogisticRegression(3), lambda: MLPClassifier(3, max_epochs=30, seed=0)])
def test_classifiers_learn_separable_classes_and_not_shuffled_ones(make):
    X, y = separable(0)
    X_valid, y_valid = separable(1)
    X_test, y_test = separable(2)
    log_p = make().fit(X, y, X_valid, y_valid).predict(X_test)
    assert log_p.shape == (len(X_test), 3)
    np.testing.assert_allclose(np.exp(log_p).sum(axis=1), 1.0, rtol=1e-6)
    assert accuracy(y_test[:, 0], log_p.argmax(axis=1)) > 0.85
    shuffled = np.random.default_rng(3).permutation(y)
    chance = make().fit(X, shuffled, X_valid, y_valid).predict(X_test)
    assert accuracy(y_test[:, 0], chance.argmax(axis=1)) < 0.6
    with pytest.raises(ValueError, match=r"class indices in \[0, 3\)"):
        make().fit(X, y + 3, X_valid, y_valid)
