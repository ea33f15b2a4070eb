"""neuropoyo experiment transfer: the held-out choice, the identification scores, the resumable
grid and its table and figures (tiny model, a few steps: the real run is in benchmarks/)."""

import json

import pytest
import torch
from conftest import TINY_MODEL, simulated, tiny_run_config

from neuropoyo.cli import main
from neuropoyo.data.directory import write_dataset
from neuropoyo.data.store import open_recording
from neuropoyo.errors import ConfigError
from neuropoyo.experiments import transfer as experiment
from neuropoyo.experiments.spread import mean_and_spread, sample_sd
from neuropoyo.experiments.transfer import (
    TransferPlan,
    choose_recordings,
    encoder_view,
    identification_scores,
    plot_reidentification,
)
from neuropoyo.model import POYO, POYOConfig
from neuropoyo.training.finetune import FinetuneConfig

CONFIG = tiny_run_config(max_steps=3)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """2 animals x 2 days of 16 trials: animal 0 day 0 is pretrained on."""
    recordings = simulated(animals=2, days=2, trials=16)
    return write_dataset(recordings, tmp_path_factory.mktemp("experiment") / "data")


def ids(paths):
    return [open_recording(p).recording_id for p in paths]


def test_identification_scores_are_exact_on_known_rows():
    table = torch.eye(4) * torch.tensor([1.0, 2.0, 3.0, 4.0])[:, None]  # 4 orthogonal rows
    true_rows = torch.tensor([2, 0])
    assert identification_scores(table[true_rows] * 5, true_rows, table) == (1.0, 1.0)  # scale-free
    cosine, accuracy = identification_scores(table[[0, 2]], true_rows, table)  # swapped
    assert (cosine, accuracy) == (0.0, 0.0)
    halfway = torch.stack([table[2] / 3 + table[1] / 2 * 0.5, table[0]])
    cosine, accuracy = identification_scores(halfway, true_rows, table)
    assert accuracy == 1.0 and cosine == pytest.approx((2 / 5**0.5 + 1) / 2)


def test_the_encoder_sees_a_unit_whatever_the_offset_and_scale_of_its_row():
    torch.manual_seed(0)
    model = POYO(POYOConfig(**dict(TINY_MODEL, num_units=5)))
    rows = torch.tensor([3, 1])
    with torch.no_grad():  # rows of variance ~1, so LayerNorm's eps (1e-5) moves nothing
        model.unit_emb.weight.normal_()
        view = encoder_view(model, rows)  # a spike adds nothing to its unit's row: LayerNorm of the row
        assert torch.allclose(view, model.encoder.attention.norm_context(model.unit_emb.weight[rows]))
        model.unit_emb.weight[rows] = model.unit_emb.weight[rows] * torch.tensor([[3.0], [2.0]]) + torch.tensor([[2.0], [-1.0]])
    assert torch.allclose(encoder_view(model, rows), view, atol=1e-4)
    assert identification_scores(view, torch.tensor([3, 1]), encoder_view(model, torch.arange(5)))[1] == 1.0


def test_the_reidentification_figure_draws_both_views_and_reads_results_without_the_second():
    result = {"curve": [[1, 0.1, 0.0, 0.2, 0.1], [10, 0.5, 0.4, 0.6, 0.5]], "chance_accuracy": 0.01, "recording": "r", "units": 2}
    labels = [line.get_label() for line in plot_reidentification(result).axes[0].lines]
    assert sum("after LayerNorm" in label for label in labels) == 2 and sum("raw rows" in label for label in labels) == 2
    older = dict(result, curve=[point[:3] for point in result["curve"]])  # step, cosine, accuracy
    labels = [line.get_label() for line in plot_reidentification(older).axes[0].lines]
    assert sum("raw rows" in label for label in labels) == 2 and not any("LayerNorm" in label for label in labels)


def test_held_out_recordings_must_match_their_group(data):
    rid = ids(data)  # sorted: monkey0 day0, monkey0 day1, monkey1 day0, monkey1 day1
    pretrain, held = choose_recordings(data, seen=[rid[1]], unseen=rid[2:], pretrain=[])
    assert ids(pretrain) == [rid[0]] and ids(held["seen"]) == [rid[1]] and ids(held["unseen"]) == rid[2:]
    with pytest.raises(ConfigError, match=r"is not pretrained on; list it under --unseen"):
        choose_recordings(data, seen=[rid[2]], unseen=[], pretrain=[rid[0]])
    with pytest.raises(ConfigError, match=r"is pretrained on; list it under --seen"):
        choose_recordings(data, seen=[], unseen=[rid[1]], pretrain=[rid[0]])
    with pytest.raises(ConfigError, match="no recording with id \\['nope'\\]"):
        choose_recordings(data, seen=["nope"], unseen=[])
    with pytest.raises(ConfigError, match="both held out and pretrained on"):
        choose_recordings(data, seen=[rid[1]], unseen=[], pretrain=[rid[0], rid[1]])


@pytest.mark.slow
def test_the_grid_runs_resumes_and_writes_its_table_and_figures(data, tmp_path, monkeypatch):
    rid = ids(data)
    pretrain, held = choose_recordings(data, seen=[rid[1]], unseen=[rid[2]], pretrain=[rid[0]])
    plan = TransferPlan(
        config=CONFIG, pretrain_steps=5, sizes=(3, None), finetune_steps=4, reid_steps=20, curve_steps=(2, 4), seeds=(4,),
        methods=("mlp", "scratch", "unit-id", "full"),  # the GRU takes the MLP's path (and most of the time)
    )
    results = experiment.run_transfer(tmp_path, plan, held_out=held, pretrain=pretrain, reidentify=pretrain[0], log=lambda _: None)
    pretraining = json.loads((tmp_path / "seed4" / "pretrained" / "run.json").read_text())
    assert pretraining["total_steps"] == 5 and pretraining["config"]["training"]["max_steps"] == 5
    assert pretraining["config"]["training"]["seed"] == 4
    scratch = json.loads((tmp_path / "seed4" / "runs" / rid[2] / "all" / "scratch" / "run.json").read_text())
    assert scratch["total_steps"] == 3 and scratch["config"]["training"]["seed"] == 4  # the run file's steps
    rows = results["rows"]
    assert len(rows) == 2 * 2 * 4 and {r["seed"] for r in rows} == {4}  # recordings x sizes x methods
    assert {r["trials"] for r in rows if r["size"] == "3trials"} == {3}
    assert {r["trials"] for r in rows if r["size"] == "all"} == {experiment.training_trials(held["seen"][0])}
    for row in rows:
        assert -10 < row["r2"] <= 1
        if row["method"] in ("unit-id", "full"):
            assert [step for step, _ in row["curve"]] == [2, 4]
        elif row["method"] == "scratch":
            assert [step for step, _ in row["curve"]] == [2]  # the run is 3 steps long
    reid = results["reidentification"]
    assert [p[0] for p in reid["curve"]] == [1, 10, 20] and reid["units"] > 0
    assert all(len(point) == 5 for point in reid["curve"])  # step, then (cosine, 1-NN) raw and after LayerNorm
    assert all(-1 <= cosine <= 1 and 0 <= accuracy <= 1 for point in reid["curve"] for cosine, accuracy in (point[1:3], point[3:]))
    table = (tmp_path / "table.md").read_text()
    assert "| method | same animal, other day | new animal |" in table
    assert "first 3 training trials (3 trials per recording; seed 4)" in table
    assert "| POYO pretrained + unit identification - MLP (from scratch) |" in table  # paired, one pair each
    for name in ("transfer.png", "reidentification.png", "results.json"):
        assert (tmp_path / name).stat().st_size > 0

    def refuse(*args, **kwargs):
        raise AssertionError("a finished fit was run again")

    monkeypatch.setattr(experiment, "train", refuse)
    monkeypatch.setattr(experiment, "finetune", refuse)
    monkeypatch.setattr(experiment, "run_baselines", refuse)
    again = experiment.run_transfer(tmp_path, plan, held_out=held, pretrain=pretrain, reidentify=pretrain[0], log=lambda _: None)
    assert again == json.loads((tmp_path / "results.json").read_text()) == results


def test_few_shot_baselines_fit_on_the_subset_only(data, tmp_path):
    from neuropoyo.baselines.run import run_baselines
    from neuropoyo.data.directory import few_shot_spans

    spans = few_shot_spans(data[:1], trials=2)
    few = run_baselines(data[:1], tmp_path / "few", methods=["wiener"], train_spans=spans)
    full = run_baselines(data[:1], tmp_path / "full", methods=["wiener"])
    assert few["wiener"]["mean_r2"] != full["wiener"]["mean_r2"]
    with pytest.raises(ConfigError, match="1 train_spans for 2 recordings"):
        run_baselines(data[:2], tmp_path / "x", methods=["wiener"], train_spans=spans)


def test_cli_runs_a_given_model_on_named_recordings(data, tmp_path, capsys):
    rid = ids(data)
    from neuropoyo.training.loop import train

    train(CONFIG, data[:1], tmp_path / "pre", progress=False)
    code = main([
        "experiment", "transfer", "--data", str(data[0].parent), "--seen", rid[1], "--unseen", rid[3],
        "--pretrain", rid[0], "--model", str(tmp_path / "pre"), "--sizes", "2", "--max-steps", "2",
        "--methods", "unit-id", "mlp", "--reid-steps", "0", "--seeds", "2", "--out", str(tmp_path / "x"),
    ])
    assert code == 0
    results = json.loads((tmp_path / "x" / "results.json").read_text())
    rows = results["rows"]
    assert sorted((r["recording"], r["method"], r["seed"]) for r in rows) == sorted(
        (r, m, s) for r in (rid[1], rid[3]) for m in ("unit-id", "mlp") for s in (0, 1)
    )
    assert results["seeds"] == [0, 1] and len(set(results["models"].values())) == 1  # the given model, twice
    r2 = {(r["recording"], r["method"], r["seed"]): r["r2"] for r in rows}
    for method in ("unit-id", "mlp"):  # the seed reaches the fit: new unit rows, the MLP's weights
        assert r2[rid[1], method, 0] != r2[rid[1], method, 1]
    table = (tmp_path / "x" / "table.md").read_text()
    assert "(2 trials per recording; mean ± sd over 2 seeds)" in table
    assert "(2/2 above 0)" in table or "(1/2 above 0)" in table or "(0/2 above 0)" in table
    assert main(["experiment", "transfer", "--out", str(tmp_path / "y"), "--seen", rid[1]]) == 2
    assert "choose among given recordings; give them with --data" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["experiment", "transfer", "--out", str(tmp_path / "y"), "--pretrain-steps", "0"])
    assert stop.value.code == 2 and "argument --pretrain-steps: must be >= 1, got 0" in capsys.readouterr().err


def test_an_interrupted_pretraining_resumes_on_the_rerun(data, tmp_path):
    """Ctrl-C during pretraining keeps its checkpoint; the rerun goes on from it, not from step 0."""
    from neuropoyo.interrupt import Interrupted
    from neuropoyo.training.checkpoint import load_trainer_state
    from neuropoyo.training.loop import train

    config = tiny_run_config(max_steps=6, checkpoint_every=100)

    def stop_at_3(step, trained):
        if step == 3:
            raise KeyboardInterrupt

    out = tmp_path / "x"
    pretrained = out / "seed0" / "pretrained"
    with pytest.raises(Interrupted, match="step 3 of 6 saved"):
        train(config, data[:1], pretrained, progress=False, after_step=stop_at_3)
    said = []
    plan = TransferPlan(config=config, sizes=(2,), methods=("mlp",), reid_steps=0, seeds=(0,))
    experiment.run_transfer(out, plan, held_out={"seen": data[1:2]}, pretrain=data[:1], log=said.append)
    assert f"resuming on 1 recordings into {pretrained} (seed 0)" in said
    assert load_trainer_state(pretrained / "checkpoint")["step"] == 6
    steps = [line.split(",")[0] for line in (pretrained / "metrics.csv").read_text().splitlines()[1:]]
    assert steps == [str(k) for k in range(6)]  # steps 0-2 from the first call, 3-5 from the rerun


def test_tables_give_the_spread_over_seeds_and_paired_differences():
    def row(method, seed, rid, r2, group="unseen"):
        return {"group": group, "recording": rid, "trials": 20, "size": "20trials", "method": method, "seed": seed,
                "r2": r2, "curve": []}

    # unit-id beats the MLP by 0.1, 0.2, 0.3 on three of four (seed, recording) pairs, loses by 0.2 on one
    rows = [row("unit-id", 0, "a", 0.6), row("unit-id", 0, "b", 0.8), row("unit-id", 1, "a", 0.5), row("unit-id", 1, "b", 0.7),
            row("mlp", 0, "a", 0.5), row("mlp", 0, "b", 0.6), row("mlp", 1, "a", 0.7), row("mlp", 1, "b", 0.4)]
    d = experiment.paired_differences(rows, "20trials", "unseen", "unit-id", "mlp")
    assert d.tolist() == pytest.approx([0.1, 0.2, -0.2, 0.3])  # ordered by (seed, recording)
    table = experiment.format_tables(rows)
    # unit-id: seed means 0.7 and 0.6 -> 0.65 ± 0.0707; the MLP: 0.55 and 0.55 -> 0.55 ± 0
    assert "| POYO pretrained + unit identification | 0.6500 ± 0.0707 |" in table
    assert "| MLP (from scratch) | 0.5500 ± 0.0000 |" in table
    assert "mean ± sd over 2 seeds" in table
    assert "| POYO pretrained + unit identification - MLP (from scratch) | 0.1000 ± 0.2160 (3/4 above 0) |" in table
    assert "GRU" not in table  # no GRU rows, no GRU comparison
    alone = experiment.format_tables(rows + [{**row("scratch", 0, "a", 0.9), "size": "all", "trials": 70}])
    assert alone.endswith("| POYO single-session (from scratch) | 0.9000 |\n")  # only what was fitted at that size
    assert mean_and_spread([0.25]) == "0.2500" and sample_sd([0.25]) == 0.0
    with pytest.raises(ConfigError, match="seeds must be distinct integers >= 0"):
        TransferPlan(seeds=(1, 1))



def test_a_folder_records_full_finetunings_settings_as_they_apply(tmp_path):
    """Defaults are stored filled in, so a folder made when they were others is refused, not resumed."""
    from neuropoyo.experiments.cache import same_settings

    settings = TransferPlan(config=CONFIG, finetune_steps=9).fit_settings(None)
    default = FinetuneConfig(mode="full", max_steps=9)
    assert (settings["unfreeze_at"], settings["finetune_lr"]) == (default.unfreeze_at, default.lr) == (0, 4e-3)
    given = TransferPlan(config=CONFIG, finetune_steps=9, unfreeze_at=3, finetune_lr=1e-4).fit_settings(None)
    assert (given["unfreeze_at"], given["finetune_lr"]) == (3, 1e-4)
    assert settings["finetune_steps"] == {"unit-id": 9, "full": 9}
    steps = TransferPlan(config=CONFIG).fit_settings(None)["finetune_steps"]
    assert steps == {"unit-id": FinetuneConfig().max_steps, "full": FinetuneConfig(mode="full").max_steps} == {"unit-id": 600, "full": 900}
    same_settings(tmp_path, {**settings, "unfreeze_at": None, "finetune_lr": None}, "experiment transfer")
    with pytest.raises(ConfigError, match=r"finetune_lr: None then, 0.004 now; unfreeze_at: None then, 0 now"):
        same_settings(tmp_path, settings, "experiment transfer")


def test_full_finetuning_takes_the_given_unfreeze_step_and_rate_and_a_rerun_with_others_is_refused(data, tmp_path, capsys):
    rid = ids(data)
    from neuropoyo.training.loop import train

    train(CONFIG, data[:1], tmp_path / "pre", progress=False)
    argv = [
        "experiment", "transfer", "--data", str(data[0].parent), "--seen", rid[1], "--pretrain", rid[0],
        "--model", str(tmp_path / "pre"), "--sizes", "2", "--max-steps", "3", "--unfreeze-at", "0",
        "--finetune-lr", "0.003", "--methods", "unit-id", "full", "--reid-steps", "0", "--seeds", "1",
        "--out", str(tmp_path / "x"),
    ]
    assert main(argv) == 0
    cell = tmp_path / "x" / "seed0" / "runs" / rid[1] / "2trials"
    full = json.loads((cell / "full" / "run.json").read_text())["finetune"]
    assert (full["mode"], full["unfreeze_at"], full["lr"], full["max_steps"]) == ("full", 0, 0.003, 3)
    unit_id = json.loads((cell / "unit-id" / "run.json").read_text())["finetune"]
    assert (unit_id["unfreeze_at"], unit_id["lr"]) == (None, FinetuneConfig().lr)
    again = [*argv[:argv.index("--finetune-lr") + 1], "0.001", *argv[argv.index("--finetune-lr") + 2:]]
    assert main(again) == 2  # the finished fits were made at another rate: not reused
    assert "finetune_lr: 0.003 then, 0.001 now" in capsys.readouterr().err
    assert json.loads((cell / "full" / "run.json").read_text())["finetune"]["lr"] == 0.003
    code = main(["experiment", "transfer", "--out", str(tmp_path / "y"), "--max-steps", "3", "--unfreeze-at", "3"])
    assert code == 2 and "unfreeze at must be in [0, finetune steps = 3), got 3" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        main(["experiment", "transfer", "--out", str(tmp_path / "y"), "--finetune-lr", "0"])
    assert stop.value.code == 2 and "argument --finetune-lr" in capsys.readouterr().err
