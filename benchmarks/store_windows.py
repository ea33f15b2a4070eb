"""Windows per second, and memory, of random 1 s windows read from a recording file on disk.

Builds an hours-long recording with a simple vectorised Poisson generator (a rate of 1-40 Hz per
unit, generated a minute at a time) plus a 100 Hz 2-D ``hand_vel`` stream and block splits, writes
it with ``write_recording`` and times ``RecordingFile.slice`` on one core against its peers:
``Recording.slice`` with everything in memory, and the h5py path that chunked/compressed files take.

Memory is measured in a fresh process per run: the heap peak (tracemalloc), the growth of private
memory (RssAnon) and of the file pages mapped into the process (RssFile: page cache, shared and
reclaimable, bounded by the bytes that the windows and the kernel's fault-around touch). The same
windows read from the timed file and from a longer one cost the same; windows spread over all of
the longer file map more of its pages, never more private memory. Linux only.

    python benchmarks/store_windows.py [--hours 1 --units 200 --windows 20000 --compare-hours 4]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shlex
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import h5py
import numpy as np

from neuropoyo.data import Intervals, Recording, RecordingInfo, Spikes, TimeSeries, Units
from neuropoyo.data.splits import assign_splits
from neuropoyo.data.store import open_recording, write_recording

CHUNK_S = 60.0
BEHAVIOR_HZ = 100.0
WINDOW_S = 1.0
TRACED_WINDOWS = 2000
MEMORY_COLUMNS = {  # measure_memory key -> table heading (MiB)
    "heap_peak": "heap peak",
    "RssAnon": "RssAnon +",
    "RssFile": "RssFile +",
}


def poisson_spikes(rng: np.random.Generator, rates: np.ndarray, duration: float) -> Spikes:
    """Homogeneous Poisson spikes of U units at ``rates`` (U,) Hz, a minute at a time."""
    times, units = [], []
    for t0 in np.arange(0.0, duration, CHUNK_S):
        length = min(CHUNK_S, duration - t0)
        chunk_units = np.repeat(np.arange(rates.size, dtype=np.int32), rng.poisson(rates * length))
        chunk_times = t0 + rng.uniform(0.0, length, chunk_units.size)
        order = np.argsort(chunk_times, kind="stable")
        times.append(chunk_times[order])
        units.append(chunk_units[order])
    return Spikes(np.concatenate(times), np.concatenate(units))


def hand_velocity(rng: np.random.Generator, duration: float) -> TimeSeries:
    """(N, 2) float32 smooth velocity sampled at 100 Hz."""
    t = np.arange(0.0, duration, 1.0 / BEHAVIOR_HZ)
    phase = rng.uniform(0, 2 * np.pi, 2)
    values = np.stack([np.sin(2.1 * t + phase[0]), np.cos(1.3 * t + phase[1])], axis=1)
    return TimeSeries(t, values.astype(np.float32), "m/s")


def build_recording(hours: float, n_units: int, seed: int) -> Recording:
    """``hours`` of ``n_units`` Poisson units with hand velocity and block splits."""
    rng = np.random.default_rng(seed)
    duration = hours * 3600.0
    recording = Recording(
        info=RecordingInfo(f"poisson_{hours:g}h_{n_units}u", brainset="benchmark"),
        spikes=poisson_spikes(rng, rng.uniform(1.0, 40.0, n_units), duration),
        units=Units([f"unit{k:04d}" for k in range(n_units)]),
        behavior={"hand_vel": hand_velocity(rng, duration)},
        domain=Intervals.single(0.0, duration),
    )
    return assign_splits(recording, seed=seed)


def write_file(hours: float, args: argparse.Namespace, folder: Path) -> tuple[Recording, Path]:
    """Build the recording and write it, reporting size and write time."""
    recording = build_recording(hours, args.units, args.seed)
    begin = time.perf_counter()
    path = write_recording(recording, folder / f"{recording.recording_id}.h5")
    size = path.stat().st_size / 2**20
    print(f"{recording!r}: {size:,.0f} MiB written in {time.perf_counter() - begin:.1f} s")
    return recording, path


def write_chunked_copy(path: Path, out: Path) -> Path:
    """A copy of ``path`` with spikes and behavior chunked and gzip-compressed (h5py path)."""
    shutil.copy(path, out)
    with h5py.File(out, "r+") as file:
        keys = ["spikes/times", "spikes/unit_index"]
        keys += [f"behavior/{n}/{p}" for n in file["behavior"] for p in ("timestamps", "values")]
        for key in keys:
            data = file[key][()]
            del file[key]
            file.create_dataset(key, data=data, chunks=True, compression="gzip", compression_opts=1)
    return out


def use_one_core() -> None:
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def window_starts(duration: float, n: int, seed: int) -> np.ndarray:
    """(n,) uniform random window starts with the whole window inside ``[0, duration)``."""
    return np.random.default_rng(seed).uniform(0.0, duration - WINDOW_S, n)


def windows_per_second(read, starts: np.ndarray, repeats: int) -> float:
    """Median over ``repeats`` passes of windows read per second, after a warm-up pass."""
    rates = []
    for _ in range(repeats + 1):
        begin = time.perf_counter()
        for start in starts:
            read(start, start + WINDOW_S)
        rates.append(starts.size / (time.perf_counter() - begin))
    return float(np.median(rates[1:]))


def speed_rows(recording: Recording, path: Path, args: argparse.Namespace) -> list[list[str]]:
    """[reader, windows/s] for the memory-mapped file, the in-memory peer and the h5py path."""
    use_one_core()
    starts = window_starts(recording.end, args.windows, args.seed)
    mapped = open_recording(path)
    for start in starts[:100]:
        assert mapped.slice(start, start + WINDOW_S) == recording.slice(start, start + WINDOW_S)
    chunked = open_recording(write_chunked_copy(path, path.with_name("chunked.h5")))
    rates = {
        "RecordingFile.slice, memory map": windows_per_second(mapped.slice, starts, args.repeats),
        "Recording.slice, all in memory": windows_per_second(recording.slice, starts, args.repeats),
        "RecordingFile.slice, h5py (chunked+gzip)": windows_per_second(
            chunked.slice, starts[: args.windows // 20], 1
        ),
    }
    return [[name, f"{rate:,.0f}"] for name, rate in rates.items()]


def rss_kib() -> dict[str, int]:
    """Resident private (RssAnon) and file-backed (RssFile) memory now, in KiB."""
    lines = Path("/proc/self/status").read_text().splitlines()
    fields = dict(line.split(":", 1) for line in lines)
    return {key: int(fields[key].split()[0]) for key in ("RssAnon", "RssFile")}


def measure_memory(path: str, duration: float, n_windows: int, seed: int) -> dict[str, float]:
    """Run in a fresh process: memory growth (MiB) of reading random windows from ``path``."""
    use_one_core()
    starts = window_starts(duration, n_windows, seed)
    before = rss_kib()
    file = open_recording(path)
    for start in starts:
        file.slice(start, start + WINDOW_S)
    grown = {key: (kib - before[key]) / 1024 for key, kib in rss_kib().items()}
    tracemalloc.start()
    for start in starts[:TRACED_WINDOWS]:
        file.slice(start, start + WINDOW_S)
    grown["heap_peak"] = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return grown


def memory_row(path: Path, hours: float, span: float, args: argparse.Namespace) -> list[str]:
    """[file, windows' span, size, *memory] of windows drawn from the first ``span`` seconds."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        grown = pool.apply(measure_memory, (str(path), span, args.windows, args.seed))
    size = f"{path.stat().st_size / 2**20:,.0f}"
    memory = [f"{grown[key]:,.1f}" for key in MEMORY_COLUMNS]
    return [f"{hours:g} h", f"first {span / 3600:g} h", size, *memory]


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(x) for x in column) for column in zip(header, *rows)]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(x.rjust(w) for x, w in zip(row, widths)))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=1.0, help="length of the timed recording")
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--windows", type=int, default=20000, help="random windows per pass")
    parser.add_argument("--repeats", type=int, default=5, help="timed passes (median reported)")
    parser.add_argument(
        "--compare-hours", type=float, default=4.0, help="longer file for memory, 0: none"
    )
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    print(f"command: python {shlex.join(sys.argv)}")
    with tempfile.TemporaryDirectory(prefix="neuropoyo-bench-") as tmp:
        recording, path = write_file(args.hours, args, Path(tmp))
        print(f"\n{WINDOW_S:g} s windows, one core, warm page cache, median of {args.repeats}:")
        print_table(["reader", "windows/s"], speed_rows(recording, path, args))
        span = recording.end
        runs = [(path, args.hours, span)]
        del recording
        if args.compare_hours:
            longer, longer_path = write_file(args.compare_hours, args, Path(tmp))
            runs += [(longer_path, args.compare_hours, s) for s in (span, longer.end)]
            del longer
        print(f"\nmemory growth reading {args.windows} windows in a fresh process (MiB; heap")
        print(f"peak over {TRACED_WINDOWS} of them):")
        rows = [memory_row(*run, args) for run in runs]
        print_table(["file", "windows in", "size", *MEMORY_COLUMNS.values()], rows)


if __name__ == "__main__":
    main()
