"""The ``neuropoyo`` command line: one command, one subcommand per job.

Every subcommand is a thin wrapper around a library call, so scripts can do the same in Python.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Sequence

from tqdm.auto import tqdm

from neuropoyo import __version__
from neuropoyo.data.directory import find_recordings, write_dataset
from neuropoyo.data.simulate import simulate_dataset
from neuropoyo.data.store import read_recording
from neuropoyo.data.summary import format_summary, summarize
from neuropoyo.data.validate import InvalidRecordingError

TASKS = ("center_out", "random_target")


class CommandError(Exception):
    """A user-facing failure: printed without a traceback, exit status 2."""


def _tasks(text: str) -> tuple[str, ...]:
    tasks = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = set(tasks) - set(TASKS)
    if unknown or not tasks:
        raise argparse.ArgumentTypeError(f"tasks must be a comma list of {', '.join(TASKS)}")
    return tasks


def _add_simulation_options(parser: argparse.ArgumentParser, *, trials: int, duration: float):
    parser.add_argument("--animals", type=int, default=2, help="number of animals (default 2)")
    parser.add_argument("--sessions", type=int, default=2, help="sessions (days) per animal and task")
    parser.add_argument("--tasks", type=_tasks, default=TASKS, help="comma list of " + ", ".join(TASKS))
    parser.add_argument("--trials", type=int, default=trials, help="trials per center-out session")
    parser.add_argument(
        "--duration", type=float, default=duration, help="seconds per random-target session"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same data)")


def simulate_to(out: Path, args: argparse.Namespace) -> list[Path]:
    """Simulate the dataset ``args`` describe and write it to ``out``; returns the files."""
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


def cmd_inspect(args: argparse.Namespace) -> None:
    summaries = [summarize(read_recording(path)) for path in find_recordings(args.files)]
    if args.json:
        print(json.dumps(summaries, indent=2))
        return
    print("\n\n".join(format_summary(s) for s in summaries))


def cmd_demo(args: argparse.Namespace) -> None:
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="neuropoyo-demo-"))
    data_dir = out / "data"
    print(f"neuropoyo {__version__} demo: simulating recordings into {data_dir}")
    paths = simulate_to(data_dir, args)
    for path in paths:
        print()
        print(format_summary(summarize(read_recording(path))))
    print(f"\n{len(paths)} recordings in {data_dir}; inspect them with `neuropoyo inspect {data_dir}`")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuropoyo",
        description="POYO spike-token transformers: decode behavior from many neural recordings.",
    )
    parser.add_argument("--version", action="version", version=f"neuropoyo {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="simulate a small multi-animal dataset and summarise it (no download)"
    )
    demo.add_argument("--out", help="folder for the demo's files (default: a new temp folder)")
    demo.add_argument("--quick", action="store_true", help="a smaller dataset, for smoke tests")
    demo.set_defaults(func=cmd_demo)

    simulate = commands.add_parser("simulate", help="write simulated recordings to a folder")
    simulate.add_argument("--out", required=True, help="folder to write <recording_id>.h5 files to")
    _add_simulation_options(simulate, trials=100, duration=300.0)
    simulate.set_defaults(func=cmd_simulate)

    inspect = commands.add_parser("inspect", help="validate recordings and print a summary")
    inspect.add_argument("files", nargs="+", help="recording files or folders of them")
    inspect.add_argument("--json", action="store_true", help="print JSON instead of text")
    inspect.set_defaults(func=cmd_inspect)
    return parser


def _demo_defaults(args: argparse.Namespace) -> None:
    """The demo simulates two animals, one session each per task; --quick makes them short."""
    args.animals, args.sessions, args.tasks, args.seed = 2, 1, TASKS, 0
    args.trials, args.duration = (24, 60.0) if args.quick else (120, 300.0)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        _demo_defaults(args)
    try:
        args.func(args)
    except (CommandError, InvalidRecordingError, FileNotFoundError) as error:
        print(f"neuropoyo {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
