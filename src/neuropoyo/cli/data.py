"""Data commands: simulate, prepare (nwb, brainsets), inspect, validate."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from neuropoyo.cli.options import (
    COUNT,
    NON_NEGATIVE,
    POSITIVE,
    CommandError,
    add_list,
    add_renamed,
    bounded,
    one_of,
)
from neuropoyo.data.simulate import FRAME_RATE_HZ, MODALITIES, TASKS  # numpy only

NWB_DOMAINS = ("obs_intervals", "epochs", "frames", "behavior", "trials")  # nwb.DOMAIN_SOURCES, without loading h5py


def cmd_simulate(args: argparse.Namespace) -> None:
    from neuropoyo import api

    recordings = api.simulate(
        animals=args.animals, days=args.days, tasks=args.tasks, trials=args.trials, duration_s=args.duration_s,
        seed=args.seed, modality=args.modality, frame_rate_hz=args.frame_rate_hz,
    )
    paths = api.write_recordings(recordings, args.out, split_seed=args.seed, progress=True)
    for path in paths:
        print(path)
    print(f"wrote {len(paths)} simulated recordings to {args.out}")


def cmd_prepare_nwb(args: argparse.Namespace) -> None:
    from neuropoyo.data.importers.nwb import prepare_nwb

    paths = prepare_nwb(
        args.files, args.out, behavior=args.behavior, behavior_location=args.behavior_location,
        circular=args.circular, traces=args.traces, labels=dict(args.label), brainset=args.brainset,
        task=args.task, domain=args.domain, split_seed=args.split_seed, strict=args.strict,
    )
    _print_prepared(paths, args.out)


def _label(text: str) -> tuple[str, str | tuple[str, str, str]]:
    """``NAME=COLUMN`` or ``NAME=COLUMN:START:STOP`` -> (name, column or (column, start, stop))."""
    name, _, spec = text.partition("=")
    parts = spec.split(":")
    if not name or not spec or len(parts) not in (1, 3) or not all(parts):
        raise argparse.ArgumentTypeError(
            f"{text!r}: write NAME=COLUMN or NAME=COLUMN:START_COLUMN:STOP_COLUMN, e.g. "
            "direction=direction:stimulus_onset_time:stimulus_offset_time"
        )
    return name, parts[0] if len(parts) == 1 else tuple(parts)


def cmd_prepare_brainsets(args: argparse.Namespace) -> None:
    from neuropoyo.data.importers.brainsets import prepare_brainsets

    paths = prepare_brainsets(
        args.files, args.out, behavior=args.behavior, brainset=args.brainset, task=args.task,
        split_seed=args.split_seed, strict=args.strict,
    )
    _print_prepared(paths, args.out)


def _print_prepared(paths: list[Path], out: Path) -> None:
    for path in paths:
        print(path)
    print(f"wrote {len(paths)} recording(s) to {out}; check them with `neuropoyo inspect {out}`")


def cmd_inspect(args: argparse.Namespace) -> None:
    from neuropoyo.data.dataset import recording_paths
    from neuropoyo.data.store import read_recording
    from neuropoyo.data.summary import format_summary, summarize

    summaries = [summarize(read_recording(path)) for path in recording_paths(args.files)]  # one at a time
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


def add_simulation_options(parser: argparse.ArgumentParser) -> None:
    """The options of `simulate`: sizes of the simulated dataset, and its modality."""
    parser.add_argument("--animals", type=COUNT, default=2, help="number of animals (default 2)")
    days = parser.add_argument("--days", type=COUNT, default=2, help="recordings (days) per animal and task (default 2)")
    add_renamed(parser, "--sessions", days)
    add_list(parser, "--tasks", item=one_of(*TASKS), commas=True, default=TASKS, metavar="TASK",
             help=f"tasks to simulate, space-separated (default: {' '.join(TASKS)})")
    parser.add_argument("--trials", type=COUNT, default=100, help="trials per center-out recording (default 100)")
    duration = parser.add_argument(
        "--duration-s", type=bounded(float, 5.0), default=300.0, metavar="SECONDS",
        help="length of each random-target recording (default 300)",
    )
    add_renamed(parser, "--duration", duration)
    parser.add_argument("--seed", type=NON_NEGATIVE, default=0, help="random seed (same seed, same data)")
    parser.add_argument(
        "--modality", choices=MODALITIES, default="spikes",
        help="spikes, or calcium: the same neurons seen through two-photon imaging (dF/F traces of "
        "ROIs, no spikes; recording ids end in _ca)",
    )
    parser.add_argument(
        "--frame-rate-hz", type=POSITIVE, default=FRAME_RATE_HZ, metavar="HZ",
        help=f"imaging frame rate of --modality calcium (default {FRAME_RATE_HZ:g})",
    )


def _add_strict_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--strict", action="store_true",
        help="refuse a file that needs a repair (times out of order, NaN times or values, repeated "
        "behavior timestamps, empty trials) instead of repairing it with a warning",
    )


def _add_nwb(sources) -> None:
    nwb = sources.add_parser("nwb", help="import NWB 2.x files (Neural Latents Benchmark layout)")
    nwb.add_argument("files", nargs="+", type=Path, metavar="FILES")
    nwb.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the .h5 files")
    add_list(
        nwb, "--behavior", metavar="NAME",
        help="behavior series to load; space-separated or repeated (default: hand_vel when the "
        "location holds it, else every series there, e.g. position and velocity)",
    )
    nwb.add_argument(
        "--behavior-location", metavar="PATH",
        help="group holding the series (default processing/behavior), e.g. "
        "acquisition/CompassDirection, or one series' full path",
    )
    add_list(
        nwb, "--circular", metavar="NAME", default=(),
        help="behavior series NAME holds angles (rad or deg): store it as (cos, sin) so the decoder "
        "has no jump at the wrap, and report angular error (e.g. head direction); space-separated or repeated",
    )
    nwb.add_argument(
        "--traces", metavar="PATH", default="auto", type=lambda value: None if value == "none" else value,
        help="ROI traces to load (two-photon imaging): a RoiResponseSeries' path, e.g. "
        "processing/ophys/DfOverF/dff, or none (default auto: processing/ophys/DfOverF, else "
        "Fluorescence, when the file has them)",
    )
    add_list(
        nwb, "--label", item=_label, default=(), metavar="NAME=COLUMN[:START:STOP]",
        help="a classification task from a trials-table column: label stream NAME holding each "
        "trial's COLUMN value as its class, sampled at 10 Hz over the trial, or from trial column START "
        "to STOP (e.g. direction=direction:stimulus_onset_time:stimulus_offset_time); splits are then "
        "stratified by COLUMN; space-separated or repeated",
    )
    nwb.add_argument("--brainset", metavar="NAME", help="default: the file name's first '_' word")
    nwb.add_argument(
        "--task", metavar="NAME",
        help="e.g. center_out (default: the session description if it is a short name, else unknown)",
    )
    nwb.add_argument(
        "--domain", choices=("auto", *NWB_DOMAINS), default="auto",
        help="where the recorded spans come from (default: the first of these the file has)",
    )
    nwb.add_argument("--split-seed", type=NON_NEGATIVE, default=0, help="seed of the train/valid/test split")
    _add_strict_option(nwb)
    nwb.set_defaults(func=cmd_prepare_nwb)


def _add_brainsets(sources) -> None:
    brainsets = sources.add_parser("brainsets", help="import brainsets / torch_brain session files (one .h5 per session)")
    brainsets.add_argument("files", nargs="+", type=Path, metavar="FILES")
    brainsets.add_argument("--out", required=True, type=Path, metavar="DIR", help="folder for the .h5 files")
    add_list(
        brainsets, "--behavior", metavar="GROUP.FIELD",
        help="series to decode, e.g. hand.vel; space-separated or repeated "
        "(default: the first of cursor.vel, hand.vel the file has)",
    )
    brainsets.add_argument("--brainset", metavar="NAME", help="default: the file's brainset.id")
    brainsets.add_argument("--task", metavar="NAME", help="e.g. center_out (default: the file's session.task)")
    brainsets.add_argument(
        "--split-seed", type=NON_NEGATIVE, default=0,
        help="seed of the train/valid/test split of files without train/valid/test_domain",
    )
    _add_strict_option(brainsets)
    brainsets.set_defaults(func=cmd_prepare_brainsets)


def add_commands(commands) -> None:
    """simulate, prepare nwb|brainsets, inspect, validate."""
    simulate = commands.add_parser("simulate", help="write simulated recordings to a folder")
    simulate.add_argument("--out", required=True, help="folder to write <recording_id>.h5 files to")
    add_simulation_options(simulate)
    simulate.set_defaults(func=cmd_simulate)

    prepare = commands.add_parser("prepare", help="import recordings from other formats")
    sources = prepare.add_subparsers(dest="source", required=True, metavar="SOURCE")
    _add_nwb(sources)
    _add_brainsets(sources)

    inspect = commands.add_parser("inspect", help="validate recordings and print a summary")
    inspect.add_argument("files", nargs="+", help="recording files or folders of them")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")
    inspect.set_defaults(func=cmd_inspect)

    validate = commands.add_parser(
        "validate", help="report every problem of a dataset at once (exit 2 when any file is unusable)"
    )
    validate.add_argument("files", nargs="+", help="recording files or folders of them")
    validate.add_argument("--context-s", type=POSITIVE, default=1.0, help="window length to check recordings against")
    validate.set_defaults(func=cmd_validate)
