"""Thousands of recording files in one training set: open time, open files, memory, windows/s.

Writes ``--files`` small recordings (4 s, 3 units, a 100 Hz hand_vel stream; one written by
``write_recording``, the others copies with their own id and targets, as the tests make them),
builds one :class:`~neuropoyo.pipeline.RecordingSet` over all of them (headers read, scales
fitted), then draws training batches (the training pipeline, collate) whose windows visit every
file. It reports the open time, the open file descriptors of the process and its resident memory
(VmRSS) after opening and after each reader's first pass, and the windows per second (of whole
batches, and of the reads alone), for the LRU reader
(``--max-open`` files attached at a time) and the uncapped reader (every file stays mapped once
read: the reader before issue 15), in turn A, B, A, B, with medians. Linux only (/proc/self).

    python benchmarks/many_recordings.py [--files 2000 --max-open 64 --rounds 3 --batch-size 64] [--fd-limit 1024]
"""

from __future__ import annotations

import argparse
import os
import pickle
import platform
import resource
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import write_many_recordings  # noqa: E402

from neuropoyo.pipeline import (  # noqa: E402
    AugmentConfig,
    LossConfig,
    RandomWindowSampler,
    RecordingSet,
    WindowDataset,
    batches_of,
    training_pipeline,
    window_loader,
)

READOUTS = {"hand_vel": 2}


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def one_window_per_file(recordings: RecordingSet) -> list:
    """The first window of each recording in epoch 0's random order: every file is read once."""
    sampler = RandomWindowSampler(recordings.split_spans("train"), context_s=1.0, seed=0)
    first = {}
    for window in sampler:
        first.setdefault(window.recording, window)
    return list(first.values())


def draw(recordings: RecordingSet, windows: list, batch_size: int) -> tuple[float, int]:
    """(windows per second, most open fds seen) drawing ``windows`` in batches."""
    pipeline = training_pipeline(
        recordings, context_length_s=1.0, loss=LossConfig(), augment=AugmentConfig()
    )
    loader = window_loader(WindowDataset(recordings, pipeline), batches_of(windows, batch_size))
    most = open_fds()
    started = time.perf_counter()
    for _ in loader:
        most = max(most, open_fds())
    return len(windows) / (time.perf_counter() - started), most


def read_only(recordings: RecordingSet, windows: list) -> float:
    """Windows per second of ``RecordingSet.read`` alone (no tokens)."""
    started = time.perf_counter()
    for window in windows:
        recordings.read(window)
    return len(windows) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--max-open", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--fd-limit", type=int,
        help="set the soft limit of open files (e.g. 1024, a common default) and report which reader survives it",
    )
    args = parser.parse_args()
    if args.fd_limit:
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.fd_limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    torch.set_num_threads(1)
    print(f"python benchmarks/many_recordings.py {shlex.join(sys.argv[1:])}")
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, fd limit {os.sysconf('SC_OPEN_MAX')}")
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        paths = write_many_recordings(folder, args.files)
        written = time.perf_counter() - started
        size = sum(p.stat().st_size for p in paths) / 2**20
        fds, rss = open_fds(), rss_mib()
        started = time.perf_counter()
        capped = RecordingSet(paths, readouts=READOUTS, max_open=args.max_open)
        opened = time.perf_counter() - started
        fds_open, rss_open = open_fds(), rss_mib()
        uncapped = pickle.loads(pickle.dumps(capped))  # the same headers, files closed, no cap
        uncapped.max_open = None
        windows = one_window_per_file(capped)
        speeds: dict[str, list[float]] = {"capped": [], "uncapped": []}
        reads: dict[str, list[float]] = {"capped": [], "uncapped": []}
        most: dict[str, int] = {}
        rss_after: dict[str, float] = {}
        failed: dict[str, str] = {}
        for _ in range(args.rounds):
            for name, recordings in (("capped", capped), ("uncapped", uncapped)):
                if name in failed:
                    continue
                try:
                    speed, seen = draw(recordings, windows, args.batch_size)
                except OSError as error:  # too many open files
                    failed[name] = f"{type(error).__name__}: {error}"
                    continue
                reads[name].append(read_only(recordings, windows))
                speeds[name].append(speed)
                most.setdefault(name, seen)  # fds and RSS of each reader's first pass, capped first,
                rss_after.setdefault(name, rss_mib())  # before the uncapped reader maps every file
        print(f"{args.files} files, {size:.1f} MiB, written in {written:.1f} s")
        print(
            f"open (headers + scales): {opened:.1f} s, {1000 * opened / args.files:.2f} ms per file; "
            f"fds {fds} -> {fds_open}; RSS {rss:.0f} -> {rss_open:.0f} MiB"
        )
        print(f"{'reader':<24}{'batches, windows/s':>20}{'reads, windows/s':>18}{'most open fds':>15}{'RSS after, MiB':>16}")
        for name, label in (("capped", f"LRU, max_open={args.max_open}"), ("uncapped", "uncapped (before)")):
            if name in failed:
                print(f"{label:<24}failed with at most {args.fd_limit} open files: {failed[name]}")
                continue
            print(
                f"{label:<24}{statistics.median(speeds[name]):>20.0f}{statistics.median(reads[name]):>18.0f}"
                f"{most[name]:>15}{rss_after[name]:>16.0f}"
            )
        for what, table in () if failed else (("batches", speeds), ("reads", reads)):
            ratio = statistics.median(table["capped"]) / statistics.median(table["uncapped"])
            rounds = ", ".join(f"{a:.0f}/{b:.0f}" for a, b in zip(table["capped"], table["uncapped"]))
            print(f"{what}: capped / uncapped = {ratio:.2f} (medians of {args.rounds} rounds, capped/uncapped: {rounds})")
        print(f"{len(windows)} windows per round, one per file: every capped read re-opens its file")
        for f in uncapped.files:  # release the descriptors, so that the folder can be removed
            f.close()


if __name__ == "__main__":
    main()
