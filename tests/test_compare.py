"""The comparison table: per-group mean +- std over recordings, best in bold, from metrics.json."""

import json

import numpy as np
import pytest

from neuropoyo.evaluation.compare import comparison, find_metrics, format_markdown, plot_comparison


def metrics(r2_by_recording: dict) -> dict:
    return {
        "split": "test",
        "mean_r2": float(np.mean([r2 for _, r2 in r2_by_recording.values()])),
        "recordings": {
            rid: {"r2": r2, "r2_per_dim": [r2, r2], "task": task, "brainset": "lab"}
            for rid, (task, r2) in r2_by_recording.items()
        },
    }


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


def test_compare_command_writes_markdown_and_png(runs, tmp_path, capsys):
    from neuropoyo.cli import main

    assert main(["compare", str(runs / "poyo"), str(runs / "baselines"), "--out", str(tmp_path / "cmp")]) == 0
    assert "| wiener |" in capsys.readouterr().out
    assert (tmp_path / "cmp" / "comparison.md").read_text().startswith("| method |")
    assert (tmp_path / "cmp" / "comparison.png").read_bytes()[:4] == b"\x89PNG"
