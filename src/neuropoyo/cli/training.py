"""Training commands: train (from scratch or resumed) and finetune (adapt a model to new recordings)."""

from __future__ import annotations

import argparse

from neuropoyo.cli.options import (
    CONFIG_HELP,
    COUNT,
    DATA_HELP,
    NON_NEGATIVE,
    POSITIVE,
    add_device,
    add_list,
)

READOUT_HELP = "repeat or list several, e.g. --readout cursor_vel or --readout hand_vel hand_pos"
FINETUNE_OPTIONS = ("unfreeze_at", "embedding_lr", "lr", "batch_size", "seed", "num_workers")


def cmd_train(args: argparse.Namespace) -> None:
    from neuropoyo import api, distributed

    try:
        result = api.train(
            args.data, args.out, config=args.config, readouts=args.readout, max_steps=args.max_steps,
            epochs=args.epochs, seed=args.seed, resume=args.resume, device=args.device, log=print,
        )
    finally:
        distributed.leave()
    if distributed.from_environment().is_main:  # under torchrun, rank 0 reports
        print(api.describe_training(result))


def cmd_finetune(args: argparse.Namespace) -> None:
    from neuropoyo import api
    from neuropoyo.training.finetune import FinetuneConfig

    result = api.finetune(
        args.model, args.data, args.out, mode=args.mode, trials=args.trials, minutes=args.minutes,
        max_steps=args.max_steps, readouts=args.readout, device=args.device,
        **{name: getattr(args, name) for name in FINETUNE_OPTIONS},
    )
    print(api.describe_training(result))
    print(
        f"adapted ({args.mode or FinetuneConfig.mode}); score it with `neuropoyo evaluate --model {args.out} "
        f"--data {' '.join(map(str, args.data))} --out EVAL`"
    )


def _add_train(commands) -> None:
    trainer = commands.add_parser("train", help="train POYO on the training splits of recordings")
    trainer.add_argument(
        "--config",
        help=f"{CONFIG_HELP}. Default: the CPU recipe (runs/cpu-small) for the number of recordings, "
        "said when it applies; runs/paper-single-session is the paper's, for a GPU",
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
    add_list(
        trainer, "--readout", metavar="STREAM",
        help=f"behavior stream to decode instead of the config's readouts (its width is read from the data); {READOUT_HELP}",
    )
    trainer.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint")
    trainer.add_argument("--seed", type=NON_NEGATIVE, help="random seed (overrides the config)")
    add_device(trainer)
    trainer.set_defaults(func=cmd_train)


def _add_finetune(commands) -> None:
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
    tuner.add_argument("--max-steps", type=COUNT, help="optimisation steps (default 600; 900 in full mode)")
    tuner.add_argument("--unfreeze-at", type=NON_NEGATIVE, help="full mode: step that unfreezes the network (default 0: at once)")
    tuner.add_argument("--embedding-lr", type=POSITIVE, help="LAMB rate of the new rows and heads (default 0.02)")
    tuner.add_argument("--lr", type=POSITIVE, help="LAMB rate of the pretrained weights once unfrozen (default 4e-3)")
    tuner.add_argument("--batch-size", type=COUNT, help="windows per step (default 32)")
    add_list(
        tuner, "--readout", metavar="STREAM",
        help=f"stream to decode (default: the model's readouts the data hold); a stream the model has "
        f"no head for gets a new one; {READOUT_HELP}",
    )
    tuner.add_argument("--seed", type=NON_NEGATIVE, help="random seed (default 0)")
    tuner.add_argument("--num-workers", type=NON_NEGATIVE, help="DataLoader worker processes (default 0)")
    add_device(tuner)
    tuner.set_defaults(func=cmd_finetune)


def add_commands(commands) -> None:
    """train, finetune."""
    _add_train(commands)
    _add_finetune(commands)
