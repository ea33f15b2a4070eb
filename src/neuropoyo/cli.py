"""The ``neuropoyo`` command line: one command, one subcommand per job.

Every subcommand is a thin wrapper around a library call, so scripts can do the same in Python.
Subcommands import what they need when they run: ``neuropoyo --help`` loads neither torch nor h5py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from neuropoyo import __version__
from neuropoyo.errors import CheckpointError, ConfigError, DataError, TrainingError

if TYPE_CHECKING:
    from neuropoyo.training.config import RunConfig

TASKS = ("center_out", "random_target")


class CommandError(Exception):
    """A user-facing failure: printed without a traceback, exit status 2."""


def _tasks(text: str) -> tuple[str, ...]:
    tasks = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = set(tasks) - set(TASKS)
    if unknown or not tasks:
        raise argparse.ArgumentTypeError(f"tasks must be a comma list of {', '.join(TASKS)}")
    return tasks


def _bounded(kind: type, low: float, *, strict: bool = False) -> Callable[[str], Any]:
    """argparse type: a number of ``kind`` (int or float) that is >= low (> low when strict)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected {'an integer' if kind is int else 'a number'}, got {text!r}"
            ) from None
        if not (value > low if strict else value >= low):  # NaN fails both
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {low:g}, got {text}")
        return value

    return parse


COUNT, NON_NEGATIVE, POSITIVE = _bounded(int, 1), _bounded(int, 0), _bounded(float, 0, strict=True)


def _add_simulation_options(parser: argparse.ArgumentParser, *, trials: int, duration: float):
    parser.add_argument("--animals", type=COUNT, default=2, help="number of animals (default 2)")
    parser.add_argument("--sessions", type=COUNT, default=2, help="sessions (days) per animal and task")
    parser.add_argument("--tasks", type=_tasks, default=TASKS, help="comma list of " + ", ".join(TASKS))
    parser.add_argument("--trials", type=COUNT, default=trials, help="trials per center-out session")
    parser.add_argument(
        "--duration", type=_bounded(float, 5.0), default=duration, help="seconds per random-target session"
    )
    parser.add_argument("--seed", type=NON_NEGATIVE, default=0, help="random seed (same seed, same data)")


def simulate_to(out: Path, args: argparse.Namespace) -> list[Path]:
    """Simulate the dataset ``args`` describe and write it to ``out``; returns the files."""
    from tqdm.auto import tqdm

    from neuropoyo.data.directory import write_dataset
    from neuropoyo.data.simulate import simulate_dataset

    recordings = simulate_dataset(
        n_animals=args.animals,
        sessions_per_animal=args.sessions,
        tasks=args.tasks,
        n_trials=args.trials,
        duration_s=args.duration,
        seed=args.seed,
    )
    progress = tqdm(recordings, desc="writing recordings", unit="rec", disable=None)
    return write_dataset(progress, out, split_seed=args.seed)


def cmd_simulate(args: argparse.Namespace) -> None:
    paths = simulate_to(Path(args.out), args)
    for path in paths:
        print(path)
    print(f"wrote {len(paths)} simulated recordings to {args.out}")


def cmd_prepare_nwb(args: argparse.Namespace) -> None:
    from neuropoyo.data.importers.nwb import prepare_nwb

    paths = prepare_nwb(
        args.files,
        args.out,
        behavior=args.behavior or ("hand_vel",),
        behavior_location=args.behavior_location,
        circular=args.circular or (),
        brainset=args.brainset,
        task=args.task,
        domain=args.domain,
        split_seed=args.split_seed,
        strict=args.strict,
    )
    _print_prepared(paths, args.out)


def cmd_prepare_brainsets(args: argparse.Namespace) -> None:
    from neuropoyo.data.importers.brainsets import prepare_brainsets

    paths = prepare_brainsets(
        args.files,
        args.out,
        behavior=args.behavior,
        brainset=args.brainset,
        task=args.task,
        split_seed=args.split_seed,
        strict=args.strict,
    )
    _print_prepared(paths, args.out)


def _add_strict_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strict", action="store_true",
        help="refuse a file that needs a repair (times out of order, NaN times or values, repeated "
        "behavior timestamps, empty trials) instead of repairing it with a warning",
    )


def _print_prepared(paths: list[Path], out: Path) -> None:
    for path in paths:
        print(path)
    print(f"wrote {len(paths)} recording(s) to {out}; check them with `neuropoyo inspect {out}`")


def cmd_inspect(args: argparse.Namespace) -> None:
    from neuropoyo.data.dataset import recording_paths
    from neuropoyo.data.store import read_recording
    from neuropoyo.data.summary import format_summary, summarize

    summaries = [summarize(read_recording(path)) for path in recording_paths(args.files)]
    if args.json:
        print(json.dumps(summaries, indent=2))
        return
    print("\n\n".join(format_summary(s) for s in summaries))


def cmd_validate(args: argparse.Namespace) -> None:
    from neuropoyo.data.dataset import recording_paths
    from neuropoyo.data.directory import check_recordings

    checks = check_recordings(recording_paths(args.files), context_s=args.context_s)
    for check in checks:
        status = "FATAL" if check.fatal else ("warnings" if check.warnings else "ok")
        print(f"{check.path}: {status}")
        for problem in check.fatal:
            print(f"  error: {problem}")
        for warning in check.warnings:
            print(f"  warning: {warning}")
    bad = [c for c in checks if c.fatal]
    warned = sum(bool(c.warnings) for c in checks)
    print(f"{len(checks)} file(s): {len(bad)} with fatal problems, {warned} with warnings")
    if bad:
        raise CommandError(f"{len(bad)} of {len(checks)} recording(s) cannot be used (listed above)")


def _run_config(args: argparse.Namespace) -> RunConfig:
    """The --config file with the command line's --max-steps / --epochs / --seed / --readout applied."""
    from neuropoyo.data.dataset import recording_paths, run_dataset
    from neuropoyo.data.directory import stream_dims
    from neuropoyo.training.config import RunConfig

    def paths() -> list[Path]:  # the recordings, resolved only when the config needs them
        return run_dataset(args.out).paths if args.data is None else recording_paths(args.data)

    config = RunConfig.from_yaml(args.config or _cpu_recipe(len(paths())))
    if args.readout:
        readouts = stream_dims(paths(), args.readout)
        config = dataclasses.replace(config, model=dataclasses.replace(config.model, readouts=readouts))
    overrides = {
        key: value
        for key, value in (("max_steps", args.max_steps), ("epochs", args.epochs), ("seed", args.seed))
        if value is not None
    }
    if args.epochs is not None and args.max_steps is None:
        overrides["max_steps"] = None
    return config.with_training(**overrides)


def _cpu_recipe(recordings: int) -> str:
    """The shipped CPU recipe for a number of recordings, said aloud: lr 1e-2 collapsed one model on
    six simulated recordings, lr 4e-3 trained them (benchmarks/RESULTS.md, "Scaling and
    multi-session training")."""
    from neuropoyo import distributed

    chosen = CPU_MULTI_RUN if recordings >= MANY_RECORDINGS else CPU_RUN
    if distributed.from_environment().is_main:
        print(f"config: {chosen}, the CPU recipe for {recordings} recording(s) (--config chooses another)")
    return chosen


def _print_training(result) -> None:
    from neuropoyo.trained import model_selection

    minutes, seconds = divmod(result.seconds, 60)
    if result.steps_taken == 0:
        print(f"nothing left to train: the run has its {result.steps} steps; last model in {result.run_dir / 'model'}")
    else:
        resumed = f" (the run has {result.steps})" if result.steps_taken != result.steps else ""
        print(
            f"trained {result.steps_taken} steps{resumed} in {int(minutes)} min {seconds:.0f} s, final loss "
            f"{result.final_loss:.4f}; last model in {result.run_dir / 'model'}"
        )
    selection = model_selection(result.run_dir)
    if selection is not None:
        print(
            f"best on validation: {result.run_dir / 'best'} (valid R2 {selection['valid_r2']:.4f} at step "
            f"{selection['step']}); `evaluate --model {result.run_dir}` uses it"
        )


def _print_model_used(path: Path) -> None:
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


def cmd_train(args: argparse.Namespace) -> None:
    from neuropoyo import distributed
    from neuropoyo.training.loop import train

    if args.data is None and not args.resume:
        raise CommandError("train: name the recordings with --data (only --resume may leave it out)")
    try:
        result = train(_run_config(args), args.data, args.out, resume=args.resume, device=args.device)
    finally:
        distributed.leave()
    if distributed.from_environment().is_main:  # under torchrun, rank 0 reports
        _print_training(result)


FINETUNE_OPTIONS = (
    "mode", "max_steps", "unfreeze_at", "embedding_lr", "lr", "batch_size", "trials", "minutes", "seed",
    "num_workers",
)


def cmd_finetune(args: argparse.Namespace) -> None:
    from neuropoyo.training.finetune import FinetuneConfig, finetune

    given = {key: getattr(args, key) for key in FINETUNE_OPTIONS if getattr(args, key) is not None}
    config = FinetuneConfig.from_dict(given, source="neuropoyo finetune")
    result = finetune(args.model, args.data, args.out, config, readouts=args.readout, device=args.device)
    _print_training(result)
    print(
        f"adapted ({config.mode}); score it with `neuropoyo evaluate --model {args.out} --data "
        f"{' '.join(map(str, args.data))} --out EVAL`"
    )


def _sizes(text: str) -> tuple[int | None, ...]:
    """'14,35,all' -> (14, 35, None)."""
    try:
        return tuple(None if part.strip() == "all" else int(part) for part in text.split(","))
    except ValueError:
        raise CommandError(f"--sizes: expected trial counts and 'all' separated by commas, got {text!r}") from None


def cmd_experiment_transfer(args: argparse.Namespace) -> None:
    from neuropoyo.data.dataset import recording_paths
    from neuropoyo.experiments import transfer as experiment
    from neuropoyo.training.config import RunConfig

    out = Path(args.out)
    pretrain_steps = args.pretrain_steps
    if args.data is None and pretrain_steps is None:
        pretrain_steps = experiment.SIMULATED_PRETRAIN_STEPS
    plan = experiment.TransferPlan(
        config=RunConfig.from_yaml(args.config), pretrain_steps=pretrain_steps, sizes=_sizes(args.sizes),
        finetune_steps=args.steps, reid_steps=args.reid_steps, device=args.device,
        **({"methods": tuple(args.methods.split(","))} if args.methods else {}),
    )
    if args.data is None:
        if args.seen or args.unseen or args.pretrain or args.reidentify:
            raise CommandError("--seen, --unseen, --pretrain and --reidentify choose among --data recordings")
        pretrain, held_out, reidentify = experiment.simulated_recordings(out / "data")
        print(f"simulated recordings in {out / 'data'}")
    else:
        if not args.seen and not args.unseen:
            raise CommandError("with --data, name the held-out recordings with --seen and/or --unseen")
        paths = recording_paths(args.data)
        pretrain, held_out = experiment.choose_recordings(
            paths, seen=args.seen, unseen=args.unseen, pretrain=args.pretrain
        )
        by_id = {p.stem: p for p in pretrain}
        if args.reidentify is not None and args.reidentify not in by_id:
            raise CommandError(f"--reidentify {args.reidentify}: not a pretraining recording; choose from {sorted(by_id)}")
        reidentify = by_id.get(args.reidentify)
    experiment.run_transfer(out, plan, held_out=held_out, pretrain=pretrain, model=args.model, reidentify=reidentify)
    print(f"table in {out / 'table.md'}; figures and results.json in {out}")


def _counts(option: str, text: str) -> tuple[int, ...]:
    """'1,2,4' -> (1, 2, 4)."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise CommandError(f"{option}: expected whole numbers separated by commas, got {text!r}") from None


SCALING_DEFAULTS = {"depths": "1,2,4", "recordings": "3,6", "animals": 3, "sessions": 2, "trials": 100}
SCALING_RUN = "cpu_small_multi_run.yaml"  # lr 4e-3: at the CPU recipe's 1e-2 multi-session models collapsed
SCALING_QUICK = {"depths": "1,2", "recordings": "1,2", "steps": 20, "animals": 2, "sessions": 1, "trials": 24}


def cmd_experiment_scaling(args: argparse.Namespace) -> None:
    from neuropoyo.data.directory import find_recordings
    from neuropoyo.experiments import scaling as experiment
    from neuropoyo.training.config import RunConfig

    simulation_options = [f"--{name}" for name in ("animals", "sessions", "trials") if getattr(args, name) is not None]
    if args.data is not None and simulation_options:
        raise CommandError(f"{', '.join(simulation_options)} size the simulated data; drop them with --data")
    for name, value in {**SCALING_DEFAULTS, **(SCALING_QUICK if args.quick else {})}.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.steps is None and args.data is None:
        args.steps = experiment.SIMULATED_STEPS
    out = Path(args.out)
    plan = experiment.ScalingPlan(
        config=RunConfig.from_yaml(args.config), depths=_counts("--depths", args.depths),
        widths=_counts("--widths", args.widths) if args.widths is not None else None,
        recordings=_counts("--recordings", args.recordings), steps=args.steps, device=args.device,
    )
    if args.data is None:
        paths = experiment.simulated_recordings(
            out / "data", animals=args.animals, sessions=args.sessions, trials=args.trials
        )
        print(f"simulated recordings in {out / 'data'}")
    else:
        paths = find_recordings(args.data)
    experiment.run_scaling(out, plan, paths)
    print(f"table in {out / 'table.md'}; scaling.csv, scaling.json and scaling.png in {out}")


def cmd_evaluate(args: argparse.Namespace) -> None:
    from neuropoyo import distributed
    from neuropoyo.evaluation.evaluate import evaluate
    from neuropoyo.evaluation.report import format_table

    try:
        summary = evaluate(
            args.model, args.data, args.out, split=args.split, eval_intervals=args.eval_intervals,
            num_workers=args.num_workers, device=args.device,
        )
    finally:
        distributed.leave()
    if not distributed.from_environment().is_main:  # under torchrun, rank 0 reports
        return
    _print_model_used(args.model)
    print(format_table(summary))
    print(f"report in {args.out} (metrics.json, predictions/, figures/)")


def cmd_embeddings(args: argparse.Namespace) -> None:
    from neuropoyo.evaluation.embeddings import (
        SESSION_PANELS,
        UNIT_PANELS,
        embedding_maps,
    )

    maps, paths = embedding_maps(args.model, args.out, data=args.data or (), method=args.method)
    _print_model_used(args.model)
    for path in maps.skipped:
        print(f"skipped {path}: the model has no embedding for its session")
    if maps.undescribed:
        where = "no recording file in --data" if args.data else "pass their recording files with --data"
        print(f"animal and task unknown for {len(maps.undescribed)} of {len(maps.sessions.ids)} sessions ({where})")
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
    if args.method == "pca":
        for table in (sessions, units):
            x, y = table.explained
            print(f"{table.kind} map: PC1 {x:.1%}, PC2 {y:.1%} of the embedding variance")


def cmd_model_info(args: argparse.Namespace) -> None:
    from neuropoyo.model.info import format_model_info, model_info
    from neuropoyo.training.config import RunConfig

    config = RunConfig.from_yaml(args.config).model
    info = model_info(config, args.tokens, args.outputs, args.batch_size)
    print(f"{args.config}: {args.tokens} input tokens and {args.outputs} outputs per window, "
          f"batch {args.batch_size}")
    print(format_model_info(info))


def cmd_bench_stream(args: argparse.Namespace) -> None:
    from neuropoyo.data.store import read_recording
    from neuropoyo.devices import checked_device
    from neuropoyo.io import write_text_atomic
    from neuropoyo.machine import gpu_line, machine_line
    from neuropoyo.streaming.bench import REFERENCE_MS, bench_stream
    from neuropoyo.trained import load_model

    device = checked_device(args.device)
    result = bench_stream(
        load_model(args.model, device=device), read_recording(args.data), readout=args.readout, update_ms=args.update_ms,
        seconds=args.seconds, compare_every=args.compare_every, torch_brain=not args.no_torch_brain,
        dtype=args.dtype, compile=args.compile,
    )
    print(machine_line())
    if device.type == "cuda":
        print(gpu_line(device))
    print(f"{result['recording']}: {result['updates']} updates every {args.update_ms:g} ms, "
          f"R2 of the streamed {result['readout']} = {result['r2']:.4f}")
    mode = result["dtype"] + (", compiled" if result["compiled"] else "")
    labels = {
        "stream": f"streaming update (ours, {mode})",
        "full_window": "full-window forward (ours)",
        "torch_brain_full_window": "full-window forward (torch_brain)",
        "reference": f"fixed matmul reference (~{REFERENCE_MS:g} ms)",
    }
    print(f"{'latency, ms':<46}{'p50':>8}{'p99':>8}{'max':>8}")
    for key, label in labels.items():
        if key in result:
            print(f"{label:<46}" + "".join(f"{result[key][q]:>8.2f}" for q in ("p50", "p99", "max")))
    if "ratio" in result:
        print(f"torch_brain full-window p50 / our update p50 = {result['ratio']:.2f}x")
    print(f"streamed estimates against our full-window forward on the same windows: max |difference| "
          f"{result['max_abs_difference']:.2e} (z-scored)")
    if args.out:
        write_text_atomic(args.out, json.dumps(result, indent=2))
        print(f"figures in {args.out}")


def cmd_import_checkpoint(args: argparse.Namespace) -> None:
    from neuropoyo.interop.torch_brain_checkpoint import (
        DEFAULT_READOUT,
        import_checkpoint,
    )

    readout = args.readout or DEFAULT_READOUT
    out = import_checkpoint(args.checkpoint, args.out, trust_pickle=args.trust_pickle, readout=readout)
    print(
        f"wrote model directory {out} (readout {readout!r}, identity normalizer); "
        f"evaluate it with `neuropoyo evaluate --model {out} --data ... --out ...`"
    )


def cmd_baselines(args: argparse.Namespace) -> None:
    from neuropoyo.baselines.run import run_baselines
    from neuropoyo.evaluation.report import format_table
    from neuropoyo.evaluation.selection import EvaluationConfig

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    evaluation = EvaluationConfig()
    if args.eval_intervals:
        evaluation = evaluation.with_intervals(args.eval_intervals)
    summaries = run_baselines(
        args.data, args.out, methods=methods, stream=args.stream, bin_s=args.bin_size,
        n_lags=args.lags, seed=args.seed, evaluation=evaluation,
    )
    for method, summary in summaries.items():
        print(f"== {method}")
        print(format_table(summary))
    print(f"reports in {args.out}/<method>; compare with POYO: neuropoyo compare EVAL {args.out}")


def cmd_compare(args: argparse.Namespace) -> None:
    from neuropoyo.evaluation.compare import find_metrics

    _print_comparison(find_metrics(args.runs), args.out, group_by=args.group_by)


def _print_comparison(metrics: dict, out: str | Path | None, *, group_by: str = "task") -> None:
    """Print the method x group R2 table; with ``out``, also write comparison.md and .png there."""
    from neuropoyo.evaluation.compare import (
        comparison,
        format_markdown,
        plot_comparison,
    )
    from neuropoyo.io import write_text_atomic

    table = comparison(metrics, group_by=group_by)
    text = format_markdown(table)
    print(text)
    if out:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "comparison.md", text + "\n")
        plot_comparison(table, out / "comparison.png")
        print(f"wrote {out / 'comparison.md'} and {out / 'comparison.png'}")


DATA_HELP = "see 'Datasets of many recordings' in the README"
CPU_RUN = "cpu_small_run.yaml"  # the CPU recipe (demo and `train` default), a shipped preset
CPU_MULTI_RUN = "cpu_small_multi_run.yaml"  # the same at lr 4e-3: `train`'s default from MANY_RECORDINGS
MANY_RECORDINGS = 5
DEMO_QUICK_STEPS = 350
DEMO_BASELINES = ("wiener", "mlp")  # the GRU would add minutes on 2 CPU cores: `neuropoyo baselines`


def cmd_demo(args: argparse.Namespace) -> None:
    from neuropoyo.baselines.run import run_baselines
    from neuropoyo.data.store import read_recording
    from neuropoyo.data.summary import format_summary, summarize
    from neuropoyo.evaluation.evaluate import evaluate
    from neuropoyo.evaluation.report import format_table
    from neuropoyo.training.config import RunConfig
    from neuropoyo.training.loop import train

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="neuropoyo-demo-"))
    data_dir = out / "data"
    print(f"neuropoyo {__version__} demo: simulating recordings into {data_dir}")
    paths = simulate_to(data_dir, args)
    for path in paths:
        print(format_summary(summarize(read_recording(path))), end="\n\n")
    config = RunConfig.from_yaml(CPU_RUN)
    if args.quick:
        config = config.with_training(max_steps=DEMO_QUICK_STEPS)
    print(f"training a small POYO (preset {CPU_RUN}) for {config.training.max_steps} steps")
    result = train(config, [data_dir], out / "run")
    _print_training(result)
    summary = evaluate(result.run_dir, [data_dir], out / "eval")
    print(format_table(summary))
    print(f"\nclassic decoders on the same splits and samples: {', '.join(DEMO_BASELINES)}")
    baselines = run_baselines(
        [data_dir], out / "baselines", methods=DEMO_BASELINES, evaluation=config.evaluation
    )
    print("\ntest R2 by task (mean +- std over recordings):")
    _print_comparison({"POYO": summary, **baselines}, out / "comparison")
    if args.quick:
        print(
            f"\nsmoke run (--quick): short sessions and {DEMO_QUICK_STEPS} training steps, so these "
            "scores say little about the decoders; `neuropoyo demo` gives the comparison that counts"
        )
    print(
        f"\nrun directory {out / 'run'}; evaluation report in {out / 'eval'}; baseline reports in "
        f"{out / 'baselines'}"
    )


def build_parser() -> argparse.ArgumentParser:
    from neuropoyo.baselines.binning import BIN_S, N_LAGS  # numpy only
    from neuropoyo.data.importers.nwb import DOMAIN_SOURCES

    parser = argparse.ArgumentParser(
        prog="neuropoyo",
        description="POYO spike-token transformers: decode behavior from many neural recordings.",
    )
    parser.add_argument("--version", action="version", version=f"neuropoyo {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="simulate a multi-animal dataset, train a small POYO, print test R2 (no download)"
    )
    demo.add_argument("--out", help="folder for the demo's files (default: a new temp folder)")
    demo.add_argument("--quick", action="store_true", help="a smaller dataset, for smoke tests")
    demo.set_defaults(func=cmd_demo)

    simulate = commands.add_parser("simulate", help="write simulated recordings to a folder")
    simulate.add_argument("--out", required=True, help="folder to write <recording_id>.h5 files to")
    _add_simulation_options(simulate, trials=100, duration=300.0)
    simulate.set_defaults(func=cmd_simulate)

    prepare = commands.add_parser("prepare", help="import recordings from other formats")
    sources = prepare.add_subparsers(dest="source", required=True, metavar="SOURCE")
    nwb = sources.add_parser("nwb", help="import NWB 2.x files (Neural Latents Benchmark layout)")
    nwb.add_argument("files", nargs="+", type=Path, metavar="FILES")
    nwb.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the .h5 files")
    nwb.add_argument(
        "--behavior", action="append", metavar="NAME",
        help="behavior series to load; repeat for several (default: hand_vel)",
    )
    nwb.add_argument(
        "--behavior-location", metavar="PATH",
        help="group holding the series (default processing/behavior), e.g. "
        "acquisition/CompassDirection, or one series' full path",
    )
    nwb.add_argument(
        "--circular", action="append", metavar="NAME",
        help="behavior series NAME holds angles (rad or deg): store it as (cos, sin) so the decoder "
        "has no jump at the wrap, and report angular error (e.g. head direction); repeatable",
    )
    nwb.add_argument("--brainset", metavar="NAME", help="default: the file name's first '_' word")
    nwb.add_argument("--task", metavar="NAME", help="e.g. center_out (default: the session description)")
    nwb.add_argument(
        "--domain", choices=("auto", *DOMAIN_SOURCES), default="auto",
        help="where the recorded spans come from (default: the first of these the file has)",
    )
    nwb.add_argument("--split-seed", type=NON_NEGATIVE, default=0, help="seed of the train/valid/test split")
    _add_strict_option(nwb)
    nwb.set_defaults(func=cmd_prepare_nwb)
    brainsets = sources.add_parser(
        "brainsets", help="import brainsets / torch_brain session files (one .h5 per session)"
    )
    brainsets.add_argument("files", nargs="+", type=Path, metavar="FILES")
    brainsets.add_argument(
        "--out", required=True, type=Path, metavar="DIR", help="folder for the .h5 files"
    )
    brainsets.add_argument(
        "--behavior", action="append", metavar="GROUP.FIELD",
        help="series to decode, e.g. hand.vel; repeat for several "
        "(default: the first of cursor.vel, hand.vel the file has)",
    )
    brainsets.add_argument("--brainset", metavar="NAME", help="default: the file's brainset.id")
    brainsets.add_argument(
        "--task", metavar="NAME", help="e.g. center_out (default: the file's session.task)"
    )
    brainsets.add_argument(
        "--split-seed", type=NON_NEGATIVE, default=0,
        help="seed of the train/valid/test split of files without train/valid/test_domain",
    )
    _add_strict_option(brainsets)
    brainsets.set_defaults(func=cmd_prepare_brainsets)

    inspect = commands.add_parser("inspect", help="validate recordings and print a summary")
    inspect.add_argument("files", nargs="+", help="recording files or folders of them")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")
    inspect.set_defaults(func=cmd_inspect)

    validate = commands.add_parser(
        "validate", help="report every problem of a dataset at once (exit 2 when any file is unusable)"
    )
    validate.add_argument("files", nargs="+", help="recording files or folders of them")
    validate.add_argument(
        "--context-s", type=POSITIVE, default=1.0, help="window length to check recordings against"
    )
    validate.set_defaults(func=cmd_validate)

    trainer = commands.add_parser("train", help="train POYO on the training splits of recordings")
    trainer.add_argument(
        "--config",
        help=f"run file or model preset: a path, or the name of a shipped preset (default: the CPU "
        f"recipe, {CPU_RUN}, or {CPU_MULTI_RUN} for {MANY_RECORDINGS} recordings or more; "
        "poyo_single_session_gpu.yaml is the paper's for a GPU)",
    )
    trainer.add_argument(
        "--data", nargs="+", metavar="PATH",
        help=f"recordings: files, folders, quoted globs ('data/*/*.h5') or dataset files (.yaml) with "
        f"per-source options; {DATA_HELP}. With --resume, default: the run's, from RUN/run.json",
    )
    trainer.add_argument("--out", required=True, help="run directory (model, checkpoint, logs)")
    length = trainer.add_mutually_exclusive_group()
    length.add_argument("--max-steps", type=COUNT, help="optimisation steps (overrides the config)")
    length.add_argument("--epochs", type=COUNT, help="passes over the training data")
    trainer.add_argument(
        "--readout", action="append", metavar="STREAM",
        help="behavior stream to decode instead of the config's readouts (its width is read from "
        "the data); repeat for several, e.g. --readout cursor_vel or --readout ry",
    )
    trainer.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint")
    trainer.add_argument("--seed", type=NON_NEGATIVE, help="random seed (overrides the config)")
    trainer.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    trainer.set_defaults(func=cmd_train)

    tuner = commands.add_parser(
        "finetune", help="adapt a trained model to new recordings: unit identification or finetuning"
    )
    tuner.add_argument("--model", required=True, help="run directory or model directory to adapt")
    tuner.add_argument(
        "--data", nargs="+", required=True, metavar="PATH",
        help=f"the new recordings: files, folders, quoted globs or dataset files; {DATA_HELP}",
    )
    tuner.add_argument("--out", required=True, help="run directory of the adapted model")
    tuner.add_argument(
        "--mode", choices=("unit-id", "full"),
        help="unit-id: learn only the new unit and session embeddings (default); full: unit-id, "
        "then every weight from --unfreeze-at",
    )
    few = tuner.add_mutually_exclusive_group()
    few.add_argument("--trials", type=COUNT, help="use only the first N training trials of each recording")
    few.add_argument("--minutes", type=POSITIVE, help="use only the first M minutes of training data")
    tuner.add_argument("--max-steps", type=COUNT, help="optimisation steps (default 600)")
    tuner.add_argument("--unfreeze-at", type=NON_NEGATIVE, help="full mode: step that unfreezes the network (default: a third of the steps)")
    tuner.add_argument("--embedding-lr", type=POSITIVE, help="LAMB rate of the new rows and heads (default 0.02)")
    tuner.add_argument("--lr", type=POSITIVE, help="LAMB rate of the pretrained weights once unfrozen (default 1e-4)")
    tuner.add_argument("--batch-size", type=COUNT, help="windows per step (default 32)")
    tuner.add_argument(
        "--readout", action="append", metavar="STREAM",
        help="stream to decode (default: the model's readouts the data hold); a stream the model has "
        "no head for gets a new one; repeatable",
    )
    tuner.add_argument("--seed", type=NON_NEGATIVE, help="random seed (default 0)")
    tuner.add_argument("--num-workers", type=NON_NEGATIVE, help="DataLoader worker processes (default 0)")
    tuner.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    tuner.set_defaults(func=cmd_finetune)

    evaluator = commands.add_parser("evaluate", help="score a trained model (R2 per recording)")
    evaluator.add_argument("--model", required=True, help="run directory or model directory")
    evaluator.add_argument(
        "--data", nargs="+", metavar="PATH",
        help=f"recordings: files, folders, quoted globs or dataset files; {DATA_HELP}. Default: the "
        "dataset the model's run trained on (RUN/run.json), with its per-source options",
    )
    evaluator.add_argument("--split", default="test", choices=("train", "valid", "test"))
    _add_eval_intervals(evaluator, "the model's evaluation settings")
    evaluator.add_argument(
        "--num-workers", type=NON_NEGATIVE, default=0, help="DataLoader worker processes (default 0)"
    )
    evaluator.add_argument("--out", required=True, help="folder for metrics.json, predictions, figures")
    evaluator.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    evaluator.set_defaults(func=cmd_evaluate)

    baselines = commands.add_parser(
        "baselines", help="Wiener filter, MLP and GRU per recording, scored like POYO"
    )
    baselines.add_argument(
        "--data", nargs="+", required=True, metavar="PATH",
        help="recordings: files, folders, quoted globs or dataset files (their recordings; per-source "
        "options do not apply to the baselines)",
    )
    baselines.add_argument("--out", required=True, help="folder; one report per method inside")
    baselines.add_argument("--methods", default="wiener,mlp,gru", help="comma list (default all)")
    baselines.add_argument("--stream", default="hand_vel", help="behavior stream to decode")
    baselines.add_argument(
        "--bin-size", type=POSITIVE, default=BIN_S, metavar="SECONDS",
        help=f"spike-count bin width (default {BIN_S}; e.g. 0.005)",
    )
    baselines.add_argument(
        "--lags", type=COUNT, default=N_LAGS, help=f"history bins before each sample (default {N_LAGS})"
    )
    baselines.add_argument("--seed", type=NON_NEGATIVE, default=0, help="seed of the MLP and GRU")
    _add_eval_intervals(baselines, "the default evaluation settings")
    baselines.set_defaults(func=cmd_baselines)

    compare = commands.add_parser("compare", help="table of R2 per method and dataset group")
    compare.add_argument("runs", nargs="+", help="evaluation folders or metrics.json files")
    compare.add_argument("--group-by", default="task", choices=("task", "brainset", "stream"))
    compare.add_argument("--out", help="folder for comparison.md and comparison.png")
    compare.set_defaults(func=cmd_compare)

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

    info = commands.add_parser("model-info", help="parameter counts and FLOPs of a config")
    info.add_argument(
        "--config", required=True, help="run file or model preset: a path or a shipped preset name"
    )
    info.add_argument("--tokens", type=COUNT, default=2000, help="input tokens per window (default 2000)")
    info.add_argument("--outputs", type=COUNT, default=100, help="output queries per window (default 100)")
    info.add_argument("--batch-size", type=COUNT, default=128, help="windows per step (default 128)")
    info.set_defaults(func=cmd_model_info)

    streamer = commands.add_parser(
        "bench-stream", help="replay a recording through the streaming decoder and time each update"
    )
    streamer.add_argument("--model", required=True, help="trained model directory")
    streamer.add_argument("--data", required=True, help="recording file (.h5) to replay")
    streamer.add_argument("--readout", default=None, help="behavior stream (default: the model's only readout)")
    streamer.add_argument("--update-ms", type=POSITIVE, default=10.0, help="time between updates (default 10)")
    streamer.add_argument("--seconds", type=POSITIVE, default=30.0, help="recording time replayed (default 30)")
    streamer.add_argument(
        "--compare-every", type=COUNT, default=10,
        help="every N updates, run the full-window forwards and the reference on the latest windows (default 10)",
    )
    streamer.add_argument("--no-torch-brain", action="store_true", help="skip torch_brain's full-window forward")
    streamer.add_argument(
        "--dtype", choices=("float32", "bfloat16"), default="float32",
        help="streaming decoder precision (default float32; bfloat16 pays off on CPUs with AMX)",
    )
    streamer.add_argument(
        "--compile", action="store_true",
        help="compile the streaming decoder's latent stack and readout (torch.compile, frozen weights)",
    )
    streamer.add_argument("--device", default="cpu", help="where the models decode: cpu or cuda (default cpu)")
    streamer.add_argument("--out", default=None, help="also write the figures to this JSON file")
    streamer.set_defaults(func=cmd_bench_stream)

    importer = commands.add_parser(
        "import-checkpoint", help="convert a torch_brain POYO checkpoint (.ckpt) into a model directory"
    )
    importer.add_argument("checkpoint", type=Path, metavar="CKPT", help="Lightning .ckpt file")
    importer.add_argument("--out", required=True, type=Path, metavar="DIR", help="model directory to write")
    importer.add_argument(
        "--trust-pickle", action="store_true",
        help="allow full unpickling when PyTorch's safe loader (torch.load with weights_only=True) "
        "cannot read the file, e.g. a .ckpt holding Lightning or omegaconf objects; unpickling can "
        "run arbitrary code, so pass this only for files from a source you trust",
    )
    importer.add_argument(
        "--readout", metavar="NAME",
        help="behavior stream the readout decodes (default cursor_vel, the stream `prepare brainsets` "
        "makes of cursor.vel); recordings must hold "
        "a stream of this name. torch_brain checkpoints carry no behavior scale, so the model gets an "
        "identity normalizer (mean 0, std 1): targets and predictions stay in the units it was trained on",
    )
    importer.set_defaults(func=cmd_import_checkpoint)

    experiment = commands.add_parser("experiment", help="the paper's experiments: tables and figures")
    experiments = experiment.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    transfer = experiments.add_parser(
        "transfer", help="transfer to held-out recordings and animals (Table 2, Figure 4, Table 5)",
        description="Pretrain on some recordings (or take --model), hold out recordings of a seen "
        "animal and of an unseen one, and for each training-set size fit POYO from scratch, the MLP "
        "and GRU, unit identification and full finetuning. Without --data it simulates 3 animals x 2 "
        "days. A rerun into the same --out skips finished fits.",
    )
    transfer.add_argument("--out", required=True, help="folder of the results, table and figures")
    transfer.add_argument("--data", nargs="+", help="recording files or folders (default: simulated)")
    transfer.add_argument("--seen", nargs="+", default=[], metavar="ID", help="held-out recordings of pretrained animals")
    transfer.add_argument("--unseen", nargs="+", default=[], metavar="ID", help="held-out recordings of a new animal")
    transfer.add_argument("--pretrain", nargs="+", default=[], metavar="ID", help="recordings to pretrain on (default: the rest)")
    transfer.add_argument("--model", help="a pretrained run or model directory instead of pretraining")
    transfer.add_argument("--reidentify", metavar="ID", help="a pretraining recording to re-identify (simulated: animal 0 day 0)")
    transfer.add_argument("--config", default="demo_run.yaml", help="run file of pretraining and from-scratch POYO (default demo_run.yaml)")
    transfer.add_argument("--pretrain-steps", type=COUNT, help="pretraining steps (default: the run file's; "
                          "3000 on simulated data)")
    transfer.add_argument("--sizes", default="14,35,all", help="training-set sizes in trials (default 14,35,all)")
    transfer.add_argument("--methods", help="comma-separated subset of mlp,gru,scratch,unit-id,full (default: all)")
    transfer.add_argument("--steps", type=COUNT, default=600, help="unit-identification and finetuning steps (default 600)")
    transfer.add_argument("--reid-steps", type=NON_NEGATIVE, default=1000, help="re-identification steps (0: skip; default 1000)")
    transfer.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    transfer.set_defaults(func=cmd_experiment_transfer)
    scaling = experiments.add_parser(
        "scaling", help="R2 against model size and training tokens, multi- vs single-session (Figure 3)",
        description="Train POYO of several depths (and widths) on the first N recordings, and one "
        "single-session POYO per recording with the run file's model, all with the same run file and "
        "steps; score each on the test splits of its recordings and plot test R2 against parameters "
        "and training tokens, with the single-session average as reference. Without --data it "
        "simulates 3 animals x 2 days. A rerun into the same --out skips finished fits.",
    )
    scaling.add_argument("--out", required=True, help="folder of the results, table and figure")
    scaling.add_argument("--data", nargs="+", help="recording files or folders, used in this order (default: simulated)")
    scaling.add_argument("--config", default=SCALING_RUN, help=f"run file of every fit (default {SCALING_RUN})")
    scaling.add_argument("--depths", help="self-attention depths, comma-separated (default 1,2,4)")
    scaling.add_argument("--widths", help="model widths (dim), comma-separated (default: the run file's)")
    scaling.add_argument("--recordings", help="numbers of recordings to train on, comma-separated (default 3,6)")
    scaling.add_argument("--steps", type=COUNT, help="optimisation steps of every fit (default: 400 on simulated "
                         "data, else the run file's)")
    scaling.add_argument("--animals", type=COUNT, help="simulated animals (default 3)")
    scaling.add_argument("--sessions", type=COUNT, help="simulated days per animal (default 2)")
    scaling.add_argument("--trials", type=COUNT, help="simulated trials per recording (default 100)")
    scaling.add_argument("--quick", action="store_true", help="a tiny grid for smoke tests (2 recordings, 20 steps)")
    scaling.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    scaling.set_defaults(func=cmd_experiment_scaling)
    return parser


def _add_eval_intervals(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--eval-intervals", nargs="+", metavar="NAME",
        help=f"interval names whose samples are scored, for every task (e.g. reach, or trials), or "
        f"'all' for the whole split (default: {default})",
    )


def _demo_defaults(args: argparse.Namespace) -> None:
    """The demo simulates two animals, one session each per task; --quick makes them short."""
    args.animals, args.sessions, args.tasks, args.seed = 2, 1, TASKS, 0
    args.trials, args.duration = (40, 120.0) if args.quick else (120, 300.0)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line for people at a terminal, without the library's source line."""
    print(f"neuropoyo: warning: {message}", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        _demo_defaults(args)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            args.func(args)
    except (CommandError, FileNotFoundError, ConfigError, DataError, CheckpointError, TrainingError) as error:
        print(f"neuropoyo {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
