"""The ``neuropoyo`` command line: one command, one subcommand per job, over the public API.

Every subcommand parses its options, makes one call of :mod:`neuropoyo.api` (or of the public
library function for its job) and prints the result; one module per family of subcommands.
Subcommands import what they need when they run: ``neuropoyo --help`` loads neither torch nor h5py.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Sequence

from neuropoyo import __version__
from neuropoyo.cli import data, demo, experiments, models, scoring, serving, training
from neuropoyo.cli.options import CommandError
from neuropoyo.errors import CheckpointError, ConfigError, DataError, TrainingError

FAMILIES = (demo, data, training, scoring, models, serving, experiments)  # in the order --help lists them


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neuropoyo",
        description="POYO spike-token transformers: decode behavior from many neural recordings.",
    )
    parser.add_argument("--version", action="version", version=f"neuropoyo {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for family in FAMILIES:
        family.add_commands(commands)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line for people at a terminal, without the library's source line."""
    print(f"neuropoyo: warning: {message}", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    from neuropoyo.interrupt import exit_status, sigterm_interrupts

    with warnings.catch_warnings():  # old flag spellings warn while parsing
        warnings.showwarning = _show_warning
        args = build_parser().parse_args(argv)
        try:
            with sigterm_interrupts():
                args.func(args)
        except (CommandError, FileNotFoundError, ConfigError, DataError, CheckpointError, TrainingError) as error:
            print(f"neuropoyo {args.command}: error: {error}", file=sys.stderr)
            return 2
        except BrokenPipeError:  # the reader stopped early (`neuropoyo inspect ... | head`): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            return 128 + 13  # as a shell reports SIGPIPE
        except KeyboardInterrupt as error:  # Ctrl-C or SIGTERM: one line, no traceback
            if os.environ.get("RANK", "0") == "0":  # under torchrun, rank 0 speaks
                print(f"neuropoyo {args.command}: interrupted; {getattr(error, 'resume', None) or 'nothing was saved'}",
                      file=sys.stderr)
            return exit_status(error)
    return 0
