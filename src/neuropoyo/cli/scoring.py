"""Scoring commands: evaluate, baselines, compare, embeddings."""

from __future__ import annotations

import argparse
from pathlib import Path

from neuropoyo.baselines.binning import BAYES_BIN_S, BIN_S, N_LAGS  # numpy only
from neuropoyo.cli.options import (
    COUNT,
    DATA_HELP,
    NON_NEGATIVE,
    POSITIVE,
    add_device,
    add_eval_intervals,
    add_list,
    add_renamed,
)

BASELINE_METHODS = ("wiener", "mlp", "gru", "bayes", "logistic")  # run.METHODS and CLASSIFIERS, without torch
DEFAULT_BASELINES = ("wiener", "mlp", "gru")  # neuropoyo.baselines.run.DEFAULT_METHODS


def print_model_used(path: str | Path) -> None:
    """Say which model a run directory stands for: its best on validation, or its last."""
    from neuropoyo.trained import model_selection

    selection = model_selection(path)
    if selection is not None:
        run = (Path(path) / "best").exists()  # a run directory, not the best folder itself
        print(
            f"model: {Path(path) / 'best' if run else path}, the best on validation (valid R2 "
            f"{selection['valid_r2']:.4f} at step {selection['step']})"
            + (f"; name {Path(path) / 'model'} for the last" if run else "")
        )


def cmd_evaluate(args: argparse.Namespace) -> None:
    from neuropoyo import api, distributed
    from neuropoyo.evaluation.report import format_table

    try:
        summary = api.evaluate(
            args.model, args.data, args.out, split=args.split, eval_intervals=args.eval_intervals,
            num_workers=args.num_workers, device=args.device,
        )
    finally:
        distributed.leave()
    if not distributed.from_environment().is_main:  # under torchrun, rank 0 reports
        return
    print_model_used(args.model)
    print(format_table(summary))
    print(f"report in {args.out} (metrics.json, predictions/, figures/)")


def cmd_baselines(args: argparse.Namespace) -> None:
    from neuropoyo import api
    from neuropoyo.evaluation.report import format_table

    summaries = api.baselines(
        args.data, args.out, methods=args.methods, readout=args.readout, bin_s=args.bin_s, n_lags=args.n_lags,
        seed=args.seed, eval_intervals=args.eval_intervals, trials=args.trials,
    )
    for method, summary in summaries.items():
        print(f"== {method}")
        print(format_table(summary))
    print(f"reports in {args.out}/<method>; compare with POYO: neuropoyo compare EVAL {args.out}")


def cmd_compare(args: argparse.Namespace) -> None:
    from neuropoyo import api

    print(api.compare(args.runs, args.out, group_by=args.group_by))
    if args.out:
        print(f"wrote {Path(args.out) / 'comparison.md'} and {Path(args.out) / 'comparison.png'}")


def cmd_embeddings(args: argparse.Namespace) -> None:
    from neuropoyo.evaluation.embeddings import embedding_maps

    maps, paths = embedding_maps(args.model, args.out, data=args.data or (), method=args.method)
    print_model_used(args.model)
    for path in maps.skipped:
        print(f"skipped {path}: the model has no embedding for its session")
    if maps.undescribed:
        where = "no recording file in --data" if args.data else "pass their recording files with --data"
        print(f"animal and task unknown for {len(maps.undescribed)} of {len(maps.sessions.ids)} sessions ({where})")
    _print_embedding_files(maps, paths)
    if args.method == "pca":
        for table in (maps.sessions, maps.units):
            x, y = table.explained
            print(f"{table.kind} map: PC1 {x:.1%}, PC2 {y:.1%} of the embedding variance")


def _print_embedding_files(maps, paths: list[Path]) -> None:
    from neuropoyo.evaluation.embeddings import SESSION_PANELS, UNIT_PANELS

    sessions, units = maps.sessions, maps.units
    rows = [
        (paths[0], len(sessions.ids), "columns " + ", ".join(["id", *sessions.labels, "x", "y"])),
        (paths[1], len(units.ids), "columns " + ", ".join(["id", *units.labels, "x", "y"])),
        (paths[2], len(sessions.ids), "coloured by " + ", ".join(SESSION_PANELS)),
        (paths[3], len(units.ids), "coloured by " + ", ".join(UNIT_PANELS)),
    ]
    width = max(len(str(path)) for path, _, _ in rows)
    print(f"{'file':<{width}}  {'rows':>6}  content")
    for path, n, content in rows:
        print(f"{str(path):<{width}}  {n:>6}  {content}")


def _add_evaluate(commands) -> None:
    evaluator = commands.add_parser("evaluate", help="score a trained model (R2 per recording)")
    evaluator.add_argument("--model", required=True, help="run directory or model directory")
    evaluator.add_argument(
        "--data", nargs="+", metavar="PATH",
        help=f"recordings: files, folders, quoted globs or dataset files; {DATA_HELP}. Default: the "
        "dataset the model's run trained on (RUN/run.json), with its per-source options",
    )
    evaluator.add_argument("--split", default="test", choices=("train", "valid", "test"))
    add_eval_intervals(evaluator, "the model's evaluation settings")
    evaluator.add_argument("--num-workers", type=NON_NEGATIVE, default=0, help="DataLoader worker processes (default 0)")
    evaluator.add_argument("--out", required=True, help="folder for metrics.json, predictions, figures")
    add_device(evaluator)
    evaluator.set_defaults(func=cmd_evaluate)


def _add_baselines(commands) -> None:
    baselines = commands.add_parser(
        "baselines", help="Wiener filter, MLP, GRU (the place-field Bayes decoder; logistic regression and an MLP classifier for classification tasks) per recording, scored like POYO"
    )
    baselines.add_argument(
        "--data", nargs="+", required=True, metavar="PATH",
        help="recordings: files, folders, quoted globs or dataset files (their recordings; per-source "
        "options do not apply to the baselines)",
    )
    baselines.add_argument("--out", required=True, help="folder; one report per method inside")
    add_list(
        baselines, "--methods", commas=True, default=None, metavar="METHOD",
        help=f"space-separated subset of {' '.join(BASELINE_METHODS)} (default: {' '.join(DEFAULT_BASELINES)}; "
        "bayes: the place-field decoder of a 1-D or 2-D position; for a label stream, a classification "
        "task: logistic mlp, the default)",
    )
    readout = baselines.add_argument(
        "--readout", metavar="STREAM",
        help="behavior stream to decode (default: hand_vel, else the one stream the recordings hold)",
    )
    add_renamed(baselines, "--stream", readout)
    bin_s = baselines.add_argument(
        "--bin-s", type=POSITIVE, metavar="SECONDS",
        help=f"spike-count bin width of every method (default {BIN_S}; bayes: one bin of {BAYES_BIN_S})"
    )
    add_renamed(baselines, "--bin-size", bin_s)
    n_lags = baselines.add_argument(
        "--n-lags", type=COUNT, help=f"history bins before each sample, every method (default {N_LAGS}; bayes: 1)"
    )
    add_renamed(baselines, "--lags", n_lags)
    baselines.add_argument("--seed", type=NON_NEGATIVE, default=0, help="seed of the MLP and GRU")
    baselines.add_argument(
        "--trials", type=COUNT,
        help="fit on the first N training trials of each recording only (as finetune --trials); scored on the whole test split",
    )
    add_eval_intervals(baselines, "the default evaluation settings")
    baselines.set_defaults(func=cmd_baselines)


def _add_embeddings(commands) -> None:
    embedder = commands.add_parser(
        "embeddings", help="2-D maps of a model's session and unit embeddings (PNG and CSV)",
        description="Map the session embeddings (coloured by animal, task and lab) and the unit "
        "embeddings (coloured by recording and animal) of a trained model to 2-D, as in the paper's "
        "Figure 5D. Writes sessions.csv, units.csv (id, labels, x, y), sessions.png and units.png.",
    )
    embedder.add_argument("--model", required=True, help="run directory or model directory")
    embedder.add_argument(
        "--data", nargs="+",
        help="recording files or folders: animal and task of the model's sessions (without it, unknown); "
        "recordings the model never saw are skipped",
    )
    embedder.add_argument(
        "--out", help="folder for the maps (default: RUN/embeddings, or MODEL_embeddings beside a model directory)"
    )
    embedder.add_argument(
        "--method", choices=("pca", "umap"), default="pca",
        help="pca (default) or umap (needs umap-learn: pip install 'neuropoyo[embeddings]')",
    )
    embedder.set_defaults(func=cmd_embeddings)


def add_commands(commands) -> None:
    """evaluate, baselines, compare, embeddings."""
    _add_evaluate(commands)
    _add_baselines(commands)

    compare = commands.add_parser("compare", help="table of R2 per method and dataset group")
    compare.add_argument("runs", nargs="+", help="evaluation folders or metrics.json files")
    compare.add_argument("--group-by", default="task", choices=("task", "brainset", "stream"))
    compare.add_argument("--out", help="folder for comparison.md and comparison.png")
    compare.set_defaults(func=cmd_compare)

    _add_embeddings(commands)

