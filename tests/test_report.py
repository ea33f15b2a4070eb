"""Evaluation report: summary numbers, metrics.json, predictions CSV, figures, atomic writes."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import neuropoyo.io
from neuropoyo.evaluation.metrics import r2_per_dim
from neuropoyo.evaluation.report import (
    RecordingResult,
    format_table,
    segment_layout,
    stream_metrics,
    summarize,
    write_report,
)
from neuropoyo.io import write_text_atomic

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_result(
    recording_id: str, task: str, noise: float, *, seed: int, dims: int = 2, stream: str = "hand_vel"
):
    """Three trials of 40 samples with irrational timestamps; predictions = truth + noise."""
    rng = np.random.default_rng(seed)
    starts = np.array([10.0, 13.7, 19.1]) + rng.uniform(0, 1, 3)
    timestamps = np.concatenate([s + np.arange(40) * 0.01 + 1e-9 * np.pi for s in starts])
    true = np.cumsum(rng.normal(size=(timestamps.size, dims)), axis=0).astype(np.float32)
    predicted = true + noise * rng.normal(size=true.shape)
    return RecordingResult(
        recording_id=recording_id,
        task=task,
        brainset="lab_a",
        stream=stream,
        timestamps=timestamps,
        true=true,
        predicted=predicted,
        segment=np.repeat(np.array([4, 7, 9]), 40),
        units="m/s",
    )


@pytest.fixture
def results():
    return [
        make_result("c_day1", "center_out", 0.5, seed=1),
        make_result("c_day2", "center_out", 2.0, seed=2),
        make_result("r_day1", "random_target", 1.0, seed=3, dims=3),
    ]


def test_summary_shape_and_numbers(results):
    summary = summarize(results, split="test")
    assert set(summary) == {"split", "mean_r2", "tasks", "streams", "recordings"}
    assert summary["split"] == "test"
    assert list(summary["recordings"]) == ["c_day1", "c_day2", "r_day1"]
    for result in results:
        record = summary["recordings"][result.recording_id]
        assert (record["task"], record["brainset"], list(record["streams"])) == (
            result.task, "lab_a", ["hand_vel"]
        )
        metrics = record["streams"]["hand_vel"]
        expected = r2_per_dim(result.true, result.predicted)
        assert metrics["r2_per_dim"] == expected.tolist()
        assert metrics["r2"] == record["r2"] == float(np.mean(expected))
        assert metrics == stream_metrics(result)
        assert (metrics["samples"], metrics["units"]) == (120, "m/s")
    scores = {rid: m["r2"] for rid, m in summary["recordings"].items()}
    centre = [scores["c_day1"], scores["c_day2"]]
    assert summary["tasks"] == {
        "center_out": {"mean_r2": float(np.mean(centre)), "std_r2": float(np.std(centre)), "n": 2},
        "random_target": {"mean_r2": scores["r_day1"], "std_r2": 0.0, "n": 1},
    }
    everything = list(scores.values())
    assert summary["streams"] == {
        "hand_vel": {"mean_r2": float(np.mean(everything)), "std_r2": float(np.std(everything)), "n": 3}
    }
    assert summary["mean_r2"] == float(np.mean(everything))


@pytest.fixture
def two_streams(results):
    """c_day1 scored on hand_vel and hand_pos, the others on hand_vel."""
    return [*results, make_result("c_day1", "center_out", 0.1, seed=4, stream="hand_pos")]


def test_two_streams_of_one_recording_are_scored_apart(two_streams):
    summary = summarize(two_streams, split="test")
    vel, pos = two_streams[0], two_streams[-1]
    record = summary["recordings"]["c_day1"]
    assert list(record["streams"]) == ["hand_vel", "hand_pos"]
    assert record["streams"]["hand_pos"] == stream_metrics(pos)
    assert record["r2"] == float(np.mean([stream_metrics(vel)["r2"], stream_metrics(pos)["r2"]]))
    # rows grouped by recording: c_day1 hand_vel, c_day1 hand_pos, c_day2, r_day1
    scores = [stream_metrics(two_streams[k])["r2"] for k in (0, 3, 1, 2)]
    assert summary["mean_r2"] == float(np.mean(scores))  # every (recording, stream) counts once
    centre = scores[:3]
    assert summary["tasks"]["center_out"] == {
        "mean_r2": float(np.mean(centre)), "std_r2": float(np.std(centre)), "n": 3
    }
    assert summary["streams"]["hand_pos"] == {"mean_r2": scores[1], "std_r2": 0.0, "n": 1}
    assert summary["streams"]["hand_vel"]["n"] == 3

    rows = format_table(summary).splitlines()
    assert [r.split()[:2] for r in rows[2:6]] == [
        ["c_day1", "hand_vel"], ["c_day1", "hand_pos"], ["c_day2", "hand_vel"], ["r_day1", "hand_vel"]
    ]
    assert any(r.startswith("hand_pos") and f"{scores[1]:.4f} +- 0.0000  (n=1)" in r for r in rows)
    assert rows[-1] == f"mean R2 over 4 streams of 3 recordings (test): {summary['mean_r2']:.4f}"


def test_two_streams_of_one_recording_get_their_own_files(two_streams, tmp_path):
    write_report(two_streams, tmp_path, split="test")
    for result in two_streams[0], two_streams[-1]:
        csv = tmp_path / "predictions" / "c_day1" / f"{result.stream}.csv"
        assert csv.read_text().splitlines()[0].startswith(f"timestamp,true_{result.stream}_0")
        np.testing.assert_array_equal(np.loadtxt(csv, delimiter=",", skiprows=1)[:, 1:3], result.true)
        assert (tmp_path / "figures" / "traces" / "c_day1" / f"{result.stream}.png").is_file()
    assert len(list((tmp_path / "predictions").rglob("*.csv"))) == 4
    assert len(list((tmp_path / "figures" / "traces").rglob("*.png"))) == 4


def test_summarize_rejects_empty_repeated_and_inconsistent_results(results):
    with pytest.raises(ValueError, match="no recordings"):
        summarize([], split="test")
    with pytest.raises(ValueError, match="stream 'hand_vel' of recording 'c_day1' listed twice"):
        summarize([results[0], results[0]], split="test")
    other_task = make_result("c_day1", "random_target", 1.0, seed=5, stream="hand_pos")
    with pytest.raises(ValueError, match="'c_day1' has task/brainset 'center_out'/'lab_a'"):
        summarize([results[0], other_task], split="test")


def test_result_validation():
    good = make_result("a", "center_out", 1.0, seed=0)
    fields = dict(vars(good))
    with pytest.raises(ValueError, match="recording_id 'lab/a' must be a non-empty name without"):
        RecordingResult(**{**fields, "recording_id": "lab/a"})
    with pytest.raises(ValueError, match="stream '..' must be a non-empty name without"):
        RecordingResult(**{**fields, "stream": ".."})
    with pytest.raises(ValueError, match="segment"):
        RecordingResult(**{**fields, "segment": good.segment.astype(float)})
    with pytest.raises(ValueError, match="timestamps"):
        RecordingResult(**{**fields, "timestamps": good.timestamps[:-1]})
    nan = good.predicted.copy()
    nan[3, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        RecordingResult(**{**fields, "predicted": nan})


def test_write_report_files(results, tmp_path):
    summary = write_report(results, tmp_path, split="test")
    with open(tmp_path / "metrics.json", encoding="utf-8") as handle:
        assert json.load(handle) == summary == summarize(results, split="test")
    for result in results:
        path = tmp_path / "predictions" / result.recording_id / "hand_vel.csv"
        dims = range(result.true.shape[1])
        header = path.read_text().splitlines()[0].split(",")
        assert header == [
            "timestamp", *(f"true_hand_vel_{d}" for d in dims), *(f"pred_hand_vel_{d}" for d in dims),
            "segment",
        ]
        table = np.loadtxt(path, delimiter=",", skiprows=1)
        d = result.true.shape[1]
        np.testing.assert_array_equal(table[:, 0], result.timestamps)
        np.testing.assert_array_equal(table[:, 1 : 1 + d], result.true)
        np.testing.assert_array_equal(table[:, 1 + d : 1 + 2 * d], result.predicted)
        np.testing.assert_array_equal(table[:, -1], result.segment)
    figures = ["r2_per_recording.png", *(f"traces/{r.recording_id}/hand_vel.png" for r in results)]
    for name in figures:
        data = (tmp_path / "figures" / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1000
    assert not list(tmp_path.rglob("*.tmp"))


def test_missing_matplotlib_skips_figures(results, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.warns(UserWarning, match="pip install matplotlib"):
        summary = write_report(results, tmp_path, split="test")
    assert not (tmp_path / "figures").exists()
    assert json.loads((tmp_path / "metrics.json").read_text()) == summary


def test_failed_write_keeps_old_metrics(results, tmp_path, monkeypatch):
    write_report(results[:1], tmp_path, split="test")
    before = (tmp_path / "metrics.json").read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(neuropoyo.io.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk full"):
        write_report(results, tmp_path, split="val")
    with pytest.raises(OSError, match="disk full"):
        write_text_atomic(tmp_path / "metrics.json", "{}")
    assert (tmp_path / "metrics.json").read_bytes() == before
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a.txt"
    write_text_atomic(path, "old")
    write_text_atomic(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_format_table(results):
    summary = summarize(results, split="test")
    table = format_table(summary)
    for recording_id in summary["recordings"]:
        assert recording_id in table
    assert table.splitlines()[-1] == f"mean R2 over 3 recordings (test): {summary['mean_r2']:.4f}"
    assert "stream  R2 mean" not in table  # one stream: no per-stream section
    centre = summary["tasks"]["center_out"]
    assert f"{centre['mean_r2']:.4f} +- {centre['std_r2']:.4f}" in table
    rows = table.splitlines()
    r2_end = rows[0].index("R2") + len("R2")  # the R2 column is right-aligned under its header
    for row, metrics in zip(rows[2:5], summary["recordings"].values()):
        assert row[r2_end - 6 : r2_end] == f"{metrics['r2']:.4f}"


def test_segment_layout_places_segments_in_order_with_gaps():
    timestamps = np.array([5.0, 5.5, 1.0, 1.2, 1.4, 9.0, 9.3])
    segment = np.array([2, 2, 0, 0, 0, 3, 3])
    layout = segment_layout(timestamps, segment, max_segments=2)
    assert [s for s, _, _ in layout] == [0, 2]
    (_, rows0, x0), (_, rows1, x1) = layout
    np.testing.assert_array_equal(rows0, [2, 3, 4])
    np.testing.assert_allclose(x0, [0.0, 0.2, 0.4])
    np.testing.assert_allclose(x1, [0.45, 0.95])  # gap: a tenth of the longest span (0.5)
