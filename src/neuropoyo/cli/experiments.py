"""``neuropoyo experiment transfer|scaling``: the paper's experiments (neuropoyo.experiments)."""

from __future__ import annotations

import argparse
from pathlib import Path

from neuropoyo.cli.options import (
    COUNT,
    NON_NEGATIVE,
    POSITIVE,
    add_device,
    add_list,
    add_renamed,
    trial_count,
)

TRANSFER_METHODS = ("mlp", "gru", "scratch", "unit-id", "full")  # experiments.transfer.METHODS, without torch
CONFIG_DEFAULT = "default: the CPU recipe (runs/cpu-small) for the number of {what}, said when it applies"


def cmd_transfer(args: argparse.Namespace) -> None:
    from neuropoyo.experiments import transfer

    transfer.run_experiment(
        args.out, data=args.data, seen=args.seen, unseen=args.unseen, pretrain=args.pretrain, model=args.model,
        reidentify=args.reidentify, config=args.config, pretrain_steps=args.pretrain_steps, sizes=args.sizes,
        methods=args.methods, max_steps=args.max_steps, unfreeze_at=args.unfreeze_at, finetune_lr=args.finetune_lr,
        reid_steps=args.reid_steps, seeds=args.seeds,
        device=args.device, log=print,
    )
    print(f"table in {Path(args.out) / 'table.md'}; figures and results.json in {args.out}")


def cmd_scaling(args: argparse.Namespace) -> None:
    from neuropoyo.experiments import scaling

    scaling.run_experiment(
        args.out, data=args.data, config=args.config, depths=args.depths, widths=args.widths,
        recordings=args.recordings, max_steps=args.max_steps, seeds=args.seeds, animals=args.animals, days=args.days,
        trials=args.trials, quick=args.quick, device=args.device, log=print,
    )
    print(f"table in {Path(args.out) / 'table.md'}; scaling.csv, scaling.json and scaling.png in {args.out}")


def _add_max_steps(parser, text: str, default: int | None = None) -> None:
    max_steps = parser.add_argument("--max-steps", type=COUNT, default=default, help=text)
    add_renamed(parser, "--steps", max_steps)


def _add_transfer(experiments) -> None:
    transfer = experiments.add_parser(
        "transfer", help="transfer to held-out recordings and animals (Table 2, Figure 4, Table 5)",
        description="Pretrain on some recordings (or take --model), hold out recordings of a seen "
        "animal and of an unseen one, and for each training-set size fit POYO from scratch, the MLP "
        "and GRU, unit identification and full finetuning, once per seed. Without --data it simulates "
        "3 animals x 2 days. A rerun into the same --out skips finished fits.",
    )
    transfer.add_argument("--out", required=True, help="folder of the results, table and figures")
    transfer.add_argument("--data", nargs="+", help="recording files or folders (default: simulated)")
    add_list(transfer, "--seen", default=(), metavar="ID", help="held-out recordings of pretrained animals")
    add_list(transfer, "--unseen", default=(), metavar="ID", help="held-out recordings of a new animal")
    add_list(transfer, "--pretrain", default=(), metavar="ID", help="recordings to pretrain on (default: the rest)")
    transfer.add_argument("--model", help="a pretrained run or model directory instead of pretraining")
    transfer.add_argument("--reidentify", metavar="ID", help="a pretraining recording to re-identify (simulated: animal 0 day 0)")
    transfer.add_argument(
        "--config", help="run file or preset of pretraining and from-scratch POYO, e.g. runs/cpu-small "
        f"({CONFIG_DEFAULT.format(what='pretraining recordings')})",
    )
    transfer.add_argument(
        "--pretrain-steps", type=COUNT, help="pretraining steps (default: the run file's; 3000 on simulated data)"
    )
    add_list(
        transfer, "--sizes", item=trial_count, commas=True, default=(14, 35, None), metavar="N",
        help="training-set sizes in trials, or all (default: 14 35 all)",
    )
    add_list(
        transfer, "--methods", commas=True, default=TRANSFER_METHODS, metavar="METHOD",
        help=f"a subset of {' '.join(TRANSFER_METHODS)} (default: all)",
    )
    _add_max_steps(transfer, "unit-identification and full finetuning steps (default 600 and 900)")
    transfer.add_argument(
        "--unfreeze-at", type=NON_NEGATIVE,
        help="full finetuning: the step that unfreezes the network (default 0: at once)",
    )
    transfer.add_argument(
        "--finetune-lr", type=POSITIVE,
        help="full finetuning: LAMB rate of the pretrained weights once unfrozen (default 4e-3)",
    )
    transfer.add_argument("--reid-steps", type=NON_NEGATIVE, default=1000, help="re-identification steps (0: skip; default 1000)")
    transfer.add_argument(
        "--seeds", type=COUNT, default=3, metavar="N",
        help="seeds 0..N-1: each pretrains a model (unless --model) and repeats every fit; tables give "
        "mean ± sd over seeds and paired differences (default 3)",
    )
    add_device(transfer)
    transfer.set_defaults(func=cmd_transfer)


def _add_scaling(experiments) -> None:
    scaling = experiments.add_parser(
        "scaling", help="R2 against model size and training tokens, multi- vs single-session (Figure 3)",
        description="Train POYO of several depths (and widths) on the first N recordings, and one "
        "single-session POYO per recording with the run file's model, all with the same run file and "
        "steps, once per seed; score each on the test splits of its recordings and plot test R2 against "
        "parameters and training tokens, with the single-session average as reference. Without --data it "
        "simulates 3 animals x 2 days. A rerun into the same --out skips finished fits.",
    )
    scaling.add_argument("--out", required=True, help="folder of the results, table and figure")
    scaling.add_argument("--data", nargs="+", help="recording files or folders, used in this order (default: simulated)")
    scaling.add_argument(
        "--config", help=f"run file or preset of every fit, e.g. runs/cpu-small ({CONFIG_DEFAULT.format(what='recordings')})"
    )
    add_list(scaling, "--depths", item=NON_NEGATIVE, commas=True, metavar="N", help="self-attention depths (default: 1 2 4)")
    add_list(scaling, "--widths", item=COUNT, commas=True, metavar="DIM", help="model widths (dim) (default: the run file's)")
    add_list(scaling, "--recordings", item=COUNT, commas=True, metavar="N", help="numbers of recordings to train on (default: 3 6)")
    _add_max_steps(scaling, "optimisation steps of every fit (default: 400 on simulated data, else the run file's)")
    scaling.add_argument(
        "--seeds", type=COUNT, metavar="N",
        help="seeds 0..N-1: every fit once per seed; tables give mean ± sd over seeds (default 3; 1 with --quick)",
    )
    scaling.add_argument("--animals", type=COUNT, help="simulated animals (default 3)")
    days = scaling.add_argument("--days", type=COUNT, help="simulated days (recordings) per animal (default 2)")
    add_renamed(scaling, "--sessions", days)
    scaling.add_argument("--trials", type=COUNT, help="simulated trials per recording (default 100)")
    scaling.add_argument("--quick", action="store_true", help="a tiny grid for smoke tests (2 recordings, 20 steps)")
    add_device(scaling)
    scaling.set_defaults(func=cmd_scaling)


def add_commands(commands) -> None:
    """experiment transfer, experiment scaling."""
    experiment = commands.add_parser("experiment", help="the paper's experiments: tables and figures")
    experiments = experiment.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    _add_transfer(experiments)
    _add_scaling(experiments)
