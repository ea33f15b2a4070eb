"""Argument types and options the command families share: bounded numbers, lists, old spellings.

Nothing here imports torch or h5py: ``neuropoyo --help`` builds every parser with this module alone.
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

from neuropoyo.errors import warn_renamed

DATA_HELP = "see 'Datasets of many recordings' in the README"
CONFIG_HELP = (
    "run file or model preset: a path, or a shipped preset name such as runs/cpu-small or "
    "runs/paper-single-session (Python: neuropoyo.presets() lists them)"
)


class CommandError(Exception):
    """A user-facing failure: printed without a traceback, exit status 2."""


def bounded(kind: type, low: float, *, strict: bool = False) -> Callable[[str], Any]:
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


COUNT, NON_NEGATIVE, POSITIVE = bounded(int, 1), bounded(int, 0), bounded(float, 0, strict=True)


def one_of(*names: str) -> Callable[[str], str]:
    """argparse type: one of ``names``."""

    def parse(text: str) -> str:
        if text not in names:
            raise argparse.ArgumentTypeError(f"expected one of {', '.join(names)}, got {text!r}")
        return text

    return parse


def trial_count(text: str) -> int | None:
    """argparse type: a number of trials >= 1, or 'all' (None)."""
    if text == "all":
        return None
    try:
        return COUNT(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a trial count >= 1 or all, got {text!r}") from None


class _ListAction(argparse.Action):
    """Space-separated values, converted by ``item``; a repeated flag adds to the list. The first
    use replaces the default. With ``commas``, an old comma-joined value is split, with a warning."""

    def __init__(self, option_strings, dest, *, item=str, commas=False, **kwargs):
        super().__init__(option_strings, dest, nargs="+", **kwargs)
        self.item, self.commas = item, commas

    def __call__(self, parser, namespace, values, option_string=None):
        if self.commas and any("," in value for value in values):
            values = [part for value in values for part in value.split(",") if part.strip()]
            flag = self.option_strings[-1]
            warn_renamed(f"comma-separated {flag}", f"space-separated {flag} {' '.join(values)}")
        try:
            items = [self.item(value) for value in values]
        except argparse.ArgumentTypeError as error:
            raise argparse.ArgumentError(self, str(error)) from None
        current = getattr(namespace, self.dest, None)
        before = [] if current is None or current is self.default else list(current)
        setattr(namespace, self.dest, before + items)


def add_list(parser, *flags: str, item: Callable[[str], Any] = str, commas: bool = False, **kwargs) -> argparse.Action:
    """A list option: ``--flag A B``, repeatable (``--flag A --flag B``). ``commas``: the flag took a
    comma-joined list in earlier releases (``--flag A,B`` still works, with a RenamedWarning)."""
    return parser.add_argument(*flags, action=_ListAction, item=item, commas=commas, **kwargs)


def _renamed_action(new: str) -> type[argparse.Action]:
    class Renamed(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            warn_renamed(option_string, new)
            setattr(namespace, self.dest, values)

    return Renamed


def add_renamed(parser, old: str, option: argparse.Action) -> None:
    """Accept ``old``, the spelling of ``option`` in earlier releases: hidden from --help, stored
    where ``option`` stores, with a RenamedWarning naming the new flag."""
    parser.add_argument(
        old, dest=option.dest, type=option.type, metavar=option.metavar, default=argparse.SUPPRESS,
        help=argparse.SUPPRESS, action=_renamed_action(option.option_strings[0]),
    )


def add_device(parser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")


def add_eval_intervals(parser, default: str) -> None:
    add_list(
        parser, "--eval-intervals", metavar="NAME",
        help=f"interval names whose samples are scored, for every task (e.g. reach, or trials), or "
        f"'all' for the whole split (default: {default})",
    )
