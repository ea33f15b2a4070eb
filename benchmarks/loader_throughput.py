"""Does the training DataLoader keep up with the training step? Windows/s of each, and the loop's wait.

    python benchmarks/loader_throughput.py [--size table4 demo] [--batches 6] [--steps 2]
        [--workers N] [--threads N] [--device cpu|cuda]

Sizes: ``table4``, the Table 4 recipe (run file ``paper-single-session``: the paper model, batch 128)
on one simulated center-out session of 120 trials; ``demo``, the run file ``cpu-small`` (the CPU
recipe of `neuropoyo demo`, batch 32) on the demo's dataset (2 animals x {center-out 120 trials, random-target 300 s}).
Recordings are simulated into a temporary folder. The DataLoader is the one ``fit`` builds (the same
pipeline, dataset seed, EpochBatches and pinning) with the run file's ``num_workers`` unless
--workers says otherwise. Per size, one after the other:

(a) loader alone: --batches batches after max(1, workers) warm-up batches, no model step;
    windows/s = their windows / the time they took (with workers, single next() times alternate
    between ~0 and a whole batch, so the rate is taken over the span; the median next() is printed too);
(b) step alone: forward + weighted MSE + backward + clip + LAMB (fit's step) on batches of (a), loader
    shut down; median over --steps steps after one warm-up;
(c) the loop as it runs: ``fit`` itself for 1 + --steps steps, timed by its before_step/after_step
    hooks; the time from one step's end to the next step's start is the wait on ``next(loader)``
    (plus fit's CSV log line). Step 0 (worker start-up) is left out. The workers prefetch 2 batches
    each during step 0, so with workers take --steps above 2 x workers to see the steady state.
    On a GPU each step is timed to its end (synchronised) and the loop also reports the GPU's busy
    fraction: its kernels' time (PyTorch's CUDA profiler, steps 1 on) over the same wall time, which
    is below 1 - wait where the step itself leaves the GPU idle (launch-bound small kernels).

loader / step > 1 means the loader produces windows faster than the step consumes them; the wait
fraction of (c) says whether the loop nevertheless waits (with num_workers 0 it always does: the
main process prepares each batch between two steps).
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from neuropoyo import seeding
from neuropoyo.data.directory import write_dataset
from neuropoyo.data.simulate import simulate_dataset
from neuropoyo.devices import checked_device
from neuropoyo.machine import gpu_line, machine_line, synchronize
from neuropoyo.pipeline import WindowDataset, training_pipeline, window_loader
from neuropoyo.schema import MODEL_KEYS
from neuropoyo.training.config import RunConfig
from neuropoyo.training.lamb import Lamb
from neuropoyo.training.loop import _autocast, _setup, epoch_batches, fit, lamb_groups
from neuropoyo.training.loss import weighted_mse


@dataclass(frozen=True)
class Size:
    run_file: str
    data: dict = field(default_factory=dict)  # simulate_dataset arguments


SIZES = {
    "table4": Size("paper-single-session", dict(n_animals=1, tasks=("center_out",), n_trials=120)),
    "demo": Size("cpu-small", dict(n_animals=2, n_trials=120, duration_s=300.0)),
}


def training_loader(recordings, config: RunConfig, batches, device: torch.device):
    """The DataLoader ``fit`` builds for ``config`` over ``batches``."""
    pipeline = training_pipeline(
        recordings, context_length_s=config.model.context_length_s, loss=config.loss, augment=config.augment
    )
    return window_loader(
        WindowDataset(recordings, pipeline, seed=config.training.seed),
        batches,
        num_workers=config.training.num_workers,
        pin_memory=device.type == "cuda",
    )


def train_step(model, optimizer, batch, config: RunConfig, device: torch.device) -> None:
    """One optimisation step as ``fit`` takes it (without the LR schedule and the log)."""
    batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    with _autocast(device, config.training.amp):
        predictions = model(**{k: batch[k] for k in MODEL_KEYS})
    loss = weighted_mse(predictions, batch, dict(model.config.readouts))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), config.training.grad_clip)
    optimizer.step()
    loss.item()  # waits for the device


def loader_alone(loader, n: int, warmup: int) -> tuple[float, float, list[dict]]:
    """(windows/s, median next() s, batches) of ``n`` batches after ``warmup`` ones."""
    iterator = iter(loader)
    for _ in range(warmup):
        next(iterator)
    times, kept, windows = [], [], 0
    started = time.perf_counter()
    for _ in range(n):
        start = time.perf_counter()
        window_list, batch = next(iterator)
        times.append(time.perf_counter() - start)
        windows += len(window_list)
        kept.append(batch)
    return windows / (time.perf_counter() - started), statistics.median(times), kept


def step_alone(model, config, batches: list[dict], steps: int, device) -> tuple[float, float]:
    """(windows/s, median s) of ``steps`` steps after one warm-up, cycling over ``batches``."""
    optimizer = Lamb(lamb_groups(model, config.training.weight_decay), lr=config.training.lr,
                     weight_decay=config.training.weight_decay)
    model.train()
    rates, times = [], []
    for i in range(steps + 1):
        batch = batches[i % len(batches)]
        start = time.perf_counter()
        train_step(model, optimizer, batch, config, device)
        if i:
            times.append(time.perf_counter() - start)
            rates.append(batch["input_mask"].shape[0] / times[-1])
    return statistics.median(rates), statistics.median(times)


def loop_as_it_runs(trained, recordings, config, steps: int, device, run_dir: Path) -> dict[str, float]:
    """``fit`` for 1 + ``steps`` steps: wait fraction, median wait and step, windows/s (step 0 left out);
    on a GPU also "gpu_busy", the time its kernels ran over the same wall time (CUDA profiler)."""
    before, after = [], []
    total = steps + 1
    gpu = device.type == "cuda"
    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) if gpu else None

    def before_step(step: int) -> None:
        if gpu and len(before) == 1:  # step 0's kernels are left out, like its time
            profiler.start()
        before.append(time.perf_counter())

    def after_step(step: int, _trained) -> None:
        synchronize(device)
        after.append(time.perf_counter())
        if gpu and len(after) == total:
            profiler.stop()

    run_dir.mkdir(parents=True, exist_ok=True)
    config = config.with_training(max_steps=total, checkpoint_every=10**9, log_every=10**9)
    fit(trained, recordings, config, run_dir, batches=epoch_batches(recordings, config), total_steps=total,
        device=device, progress=False, before_step=before_step, after_step=after_step)
    waits = [before[k] - after[k - 1] for k in range(1, total)]
    step_times = [after[k] - before[k] for k in range(1, total)]
    wall = after[-1] - after[0]
    sizes = [len(b) for b in itertools.islice(epoch_batches(recordings, config), total)]  # fit's batches
    loop = {
        "wait_fraction": sum(waits) / wall,
        "median_wait": statistics.median(waits),
        "median_step": statistics.median(step_times),
        "windows_per_s": sum(sizes[1:]) / wall,
    }
    if gpu:
        kernel_us = sum(event.self_device_time_total for event in profiler.key_averages())
        loop["gpu_busy"] = kernel_us / 1e6 / wall
    return loop


def run_size(name: str, args, out: Path) -> dict:
    size = SIZES[name]
    device = args.device
    config = RunConfig.from_yaml(size.run_file)
    if args.workers is not None:
        config = config.with_training(num_workers=args.workers)
    tc = config.training
    paths = write_dataset(simulate_dataset(sessions_per_animal=1, **size.data), out / name / "data")
    torch.manual_seed(seeding.torch_seed(tc.seed))
    trained, recordings, _ = _setup(config, paths, out / name / "run", False, device, None)
    print(f"\n## {name}: {size.run_file}, batch {tc.batch_size}, num_workers {tc.num_workers}, "
          f"{len(paths)} recording(s), {recordings.split_spans('train')[0].total_duration():.0f} s "
          f"of training split in the first; device {device}")

    loader = training_loader(recordings, config, epoch_batches(recordings, config), device)
    warmup = max(1, tc.num_workers)
    loader_rate, loader_median, kept = loader_alone(loader, args.batches, warmup)
    del loader  # shuts its workers down before the step is timed
    tokens = statistics.fmean(float(b["input_mask"].sum()) / b["input_mask"].shape[0] for b in kept)
    print(f"(a) loader alone: {loader_rate:,.1f} windows/s ({args.batches} batches after {warmup} "
          f"warm-up; median next() {loader_median * 1e3:,.0f} ms; {tokens:,.0f} input tokens/window)")

    step_rate, step_median = step_alone(trained.model, config, kept, args.steps, device)
    print(f"(b) step alone: {step_rate:,.1f} windows/s (median of {args.steps} steps, "
          f"{step_median * 1e3:,.0f} ms/step)")

    loop = loop_as_it_runs(trained, recordings, config, args.steps, device, out / name / "run")
    print(f"(c) loop: waits {loop['wait_fraction']:.1%} of its wall time on the next batch (median wait "
          f"{loop['median_wait'] * 1e3:,.0f} ms, median step {loop['median_step'] * 1e3:,.0f} ms), "
          f"{loop['windows_per_s']:,.1f} windows/s over {args.steps} steps")
    if "gpu_busy" in loop:
        print(f"    GPU busy (its kernels' time over the loop's wall time): {loop['gpu_busy']:.1%}")
    print(f"loader / step: {loader_rate / step_rate:.2f}x ({'keeps up' if loader_rate > step_rate else 'FALLS BEHIND'})")
    return {"config": size.run_file, "batch": tc.batch_size, "workers": tc.num_workers,
            "loader": loader_rate, "step": step_rate, "loop": loop}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", nargs="+", choices=tuple(SIZES), default=list(SIZES))
    parser.add_argument("--batches", type=int, default=6, help="timed loader batches (after warm-up)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps, alone and in the loop")
    parser.add_argument("--workers", type=int, default=None, help="num_workers (default: the run file's)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the main process "
                        "(default torch's; on a busy machine 1 avoids OpenMP oversubscription)")
    parser.add_argument("--device", type=checked_device, default=torch.device("cpu"), help="cpu (default) or cuda")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(machine_line())
    if args.device.type == "cuda":
        print(gpu_line(args.device))
    with tempfile.TemporaryDirectory(prefix="neuropoyo-loader-") as tmp:
        results = {name: run_size(name, args, Path(tmp)) for name in args.size}

    print("\n| size | run file | batch | workers | loader windows/s | step windows/s | loader / step "
          "| loop windows/s | loop waiting on data |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['config']} | {r['batch']} | {r['workers']} | {r['loader']:,.1f} | "
              f"{r['step']:,.1f} | {r['loader'] / r['step']:.2f}x | {r['loop']['windows_per_s']:,.1f} | "
              f"{r['loop']['wait_fraction']:.1%} |")
    print(f"\ncommand: {shlex.join([sys.executable, *sys.argv])}")


if __name__ == "__main__":
    main()
