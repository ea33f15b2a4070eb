"""Load balancing of distributed training: how the global batch is split across ranks.

    python benchmarks/ddp_balance.py [--animals 8] [--days 2] [--batches 200]

Simulated recordings (``simulate_dataset``: animals of 60-160 neurons, two tasks, two labs with
behavior at 100 and 500 Hz) give the random training windows of ``neuropoyo train``. Each global
batch is split across N ranks two ways: **balanced** (:func:`neuropoyo.pipeline.balanced_shares`,
what the training loop does) and **in order** (equal consecutive chunks of the drawn windows, what
a ``DistributedSampler`` does). Token counts are the loader's estimates (spikes + 2 per unit),
which equal the tokenizer's counts without unit dropout. Printed per (batch size, ranks, split):
padding (share of padded slots over all ranks, each rank padding to its own longest window),
straggler (the costliest rank's padded tokens over the mean rank's: a step waits for its slowest
rank), and real tokens per step per rank (median). No training: the figures are exact counts.
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import statistics
import sys
import tempfile

from neuropoyo.data.directory import find_recordings, write_dataset
from neuropoyo.data.simulate import simulate_dataset
from neuropoyo.machine import machine_line
from neuropoyo.model.config import POYOConfig
from neuropoyo.pipeline import RecordingSet, balanced_shares
from neuropoyo.pipeline.samplers import padded_cost
from neuropoyo.training.config import RunConfig, TrainConfig
from neuropoyo.training.loop import epoch_batches


def in_order(lengths: list[int], parts: int) -> list[list[int]]:
    """Equal consecutive chunks of the batch as drawn (the last ranks get one fewer)."""
    size, extra = divmod(len(lengths), parts)
    bounds = [0]
    for k in range(parts):
        bounds.append(bounds[-1] + size + (k < extra))
    return [list(range(bounds[k], bounds[k + 1])) for k in range(parts)]


def split_figures(batches: list[list[int]], parts: int, split) -> dict[str, float]:
    real = padded = 0
    stragglers, per_rank = [], []
    for lengths in batches:
        shares = [[lengths[i] for i in share] for share in split(lengths, parts)]
        costs = [padded_cost(share) for share in shares]
        real += sum(lengths)
        padded += sum(costs)
        stragglers.append(max(costs) / (sum(costs) / parts))
        per_rank.extend(sum(share) for share in shares)
    return {
        "padding": 1 - real / padded,
        "straggler": statistics.median(stragglers),
        "tokens_per_rank": statistics.median(per_rank),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--animals", type=int, default=8)
    parser.add_argument("--days", type=int, default=2, help="recordings per animal")
    parser.add_argument("--batches", type=int, default=200, help="global batches per setting")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--ranks", type=int, nargs="+", default=[2, 4, 8])
    args = parser.parse_args(argv)
    print(machine_line())
    print("command: python " + " ".join(shlex.quote(a) for a in sys.argv))
    with tempfile.TemporaryDirectory() as folder:
        write_dataset(
            simulate_dataset(n_animals=args.animals, sessions_per_animal=args.days, n_trials=60, duration_s=120.0),
            folder,
        )
        recordings = RecordingSet(find_recordings([folder]), readouts={"hand_vel": 2})
        print(f"{len(recordings)} recordings, {len(recordings.unit_vocab)} units")
        print(f"{'batch':>6} {'ranks':>5} {'split':>9} {'padding':>8} {'straggler':>9} {'tokens/rank':>11}")
        for batch_size in args.batch_sizes:
            config = RunConfig(
                model=POYOConfig(num_units=1, num_sessions=1, readouts={"hand_vel": 2}),
                training=TrainConfig(batch_size=batch_size),
            )
            drawn = itertools.islice(iter(epoch_batches(recordings, config)), args.batches)
            batches = [[recordings.token_estimate(w) for w in batch] for batch in drawn]
            for parts in args.ranks:
                for name, split in (("in order", in_order), ("balanced", balanced_shares)):
                    f = split_figures(batches, parts, split)
                    print(
                        f"{batch_size:>6} {parts:>5} {name:>9} {f['padding']:>8.1%} {f['straggler']:>9.3f} "
                        f"{f['tokens_per_rank']:>11,.0f}"
                    )


if __name__ == "__main__":
    main()
