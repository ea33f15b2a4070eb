"""``neuropoyo demo``: simulate, train, score and compare in one command (neuropoyo.api.demo)."""

from __future__ import annotations

import argparse


def cmd_demo(args: argparse.Namespace) -> None:
    from neuropoyo import api

    api.demo(args.out, quick=args.quick, log=print)


def add_commands(commands) -> None:
    """demo."""
    demo = commands.add_parser(
        "demo", help="simulate a multi-animal dataset, train a small POYO, print test R2 (no download)"
    )
    demo.add_argument("--out", help="folder for the demo's files (default: a new temp folder)")
    demo.add_argument("--quick", action="store_true", help="a smaller dataset and 350 steps, for smoke tests")
    demo.set_defaults(func=cmd_demo)
