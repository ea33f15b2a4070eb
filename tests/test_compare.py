"""The comparison table: per-group mean +- std over recordings, best in bold, from metrics.json."""

import json

import numpy as np
import pytest

from neuropoyo.errors import ConfigError, DataError
from neuropoyo.evaluation.compare import comparison, find_metrics, format_markdown, plot_comparison
from neuropoyo.evaluation.report import RecordingResult, summarize


def metrics(r2_by_recording: dict) -> dict:
    """A metrics.json summary: recording -> (task, R2) on hand_vel, or (task, {stream: R2})."""
    recordings = {}
    for rid, (task, r2) in r2_by_recording.items():
        streams = r2 if isinstance(r2, dict) else {"hand_vel": r2}
        recordings[rid] = {
            "r2": float(np.mean(list(streams.values()))),
            "task": task,
            "brainset": "lab",
            "streams": {
                name: {"r2": v, "r2_per_dim": [v, v], "samples": 10, "units": "m/s"}
                for name, v in streams.items()
            },
        }
    return {"split": "test", "mean_r2": 0.0, "recordings": recordings}


@pytest.fixture
def runs(tmp_path):
    poyo = {"a": ("center_out", 0.9), "b": ("center_out", 0.8), "c": ("random_target", 0.7)}
    wiener = {"a": ("center_out", 0.6), "b": ("center_out", 0.7), "c": ("random_target", 0.75)}
    (tmp_path / "poyo").mkdir()
    (tmp_path / "poyo" / "metrics.json").write_text(json.dumps(metrics(poyo)))
    for name, data in (("wiener", wiener),):
        (tmp_path / "baselines" / name).mkdir(parents=True)
        (tmp_path / "baselines" / name / "metrics.json").write_text(json.dumps(metrics(data)))
    return tmp_path


def test_table_cells_are_exact_means_and_stds(runs):
    table = comparison(find_metrics([runs / "poyo", runs / "baselines"]))
    assert list(table) == ["poyo", "wiener"]
    cell = table["poyo"]["center_out"]
    assert (cell.mean, cell.std, cell.n) == (pytest.approx(0.85), pytest.approx(0.05), 2)
    assert table["wiener"]["random_target"].mean == pytest.approx(0.75)


def test_markdown_bolds_the_best_of_each_column(runs):
    text = format_markdown(comparison(find_metrics([runs / "poyo", runs / "baselines"])))
    assert "| poyo | **0.8500 +- 0.0500 (2)** | 0.7000 +- 0.0000 (1) |" in text
    assert "| wiener | 0.6500 +- 0.0500 (2) | **0.7500 +- 0.0000 (1)** |" in text


def test_bar_chart_is_a_png(runs, tmp_path):
    path = plot_comparison(comparison(find_metrics([runs / "poyo"])), tmp_path / "cmp.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_metrics_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        find_metrics([tmp_path])


def test_cells_are_over_recording_streams_and_can_group_by_stream():
    two = metrics({"a": ("center_out", {"hand_vel": 0.9, "hand_pos": 0.5}), "b": ("center_out", 0.7)})
    one = metrics({"a": ("center_out", 0.6), "b": ("center_out", 0.8)})
    table = comparison({"poyo": two, "wiener": one})
    cell = table["poyo"]["center_out"]
    assert (cell.mean, cell.std, cell.n) == (pytest.approx(0.7), pytest.approx(np.std([0.9, 0.5, 0.7])), 3)
    by_stream = comparison({"poyo": two, "wiener": one}, group_by="stream")
    assert {g: c.mean for g, c in by_stream["poyo"].items()} == {
        "hand_pos": 0.5, "hand_vel": pytest.approx(0.8)
    }
    assert list(by_stream["wiener"]) == ["hand_vel"]
    assert "| wiener | - | 0.7000 +- 0.1000 (2) |" in format_markdown(by_stream)
    with pytest.raises(ConfigError, match="cannot group by 'animal'; choose from task, brainset, stream"):
        comparison({"poyo": two}, group_by="animal")


def test_compare_reads_the_files_write_report_writes(tmp_path):
    t = np.arange(20.0)
    true = np.stack([np.sin(t), np.cos(t)], axis=1)
    results = [
        RecordingResult("a", "center_out", "lab", stream, t, true, true + noise, np.zeros(20, int))
        for stream, noise in (("hand_vel", 0.1), ("hand_pos", 0.3))
    ]
    (tmp_path / "poyo").mkdir()
    summary = summarize(results, split="test")
    (tmp_path / "poyo" / "metrics.json").write_text(json.dumps(summary))
    cell = comparison(find_metrics([tmp_path / "poyo"]))["poyo"]["center_out"]
    assert (cell.n, cell.mean) == (2, pytest.approx(summary["mean_r2"]))


def test_an_old_metrics_file_is_refused_with_the_fix(tmp_path):
    old = {"split": "test", "recordings": {"a": {"r2": 0.5, "task": "center_out"}}}
    (tmp_path / "metrics.json").write_text(json.dumps(old))
    with pytest.raises(DataError, match=r"recordings \['a'\] have no 'streams'.*re-run"):
        find_metrics([tmp_path])


def test_compare_command_writes_markdown_and_png(runs, tmp_path, capsys):
    from neuropoyo.cli import main

    assert main(["compare", str(runs / "poyo"), str(runs / "baselines"), "--out", str(tmp_path / "cmp")]) == 0
    assert "| wiener |" in capsys.readouterr().out
    assert (tmp_path / "cmp" / "comparison.md").read_text().startswith("| method |")
    assert (tmp_path / "cmp" / "comparison.png").read_bytes()[:4] == b"\x89PNG"
