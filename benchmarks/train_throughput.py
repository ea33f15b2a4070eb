"""Training-step throughput: neuropoyo's POYO against torch_brain's, on the same batches.

    python benchmarks/train_throughput.py [--steps 6] [--batch-size 32] [--set fixed realistic] [--no-bf16]
        [--device cpu|cuda] [--no-torch-brain]

Both models: dim 128, head_dim 64, 6 self-attention blocks of 8 heads, 2 cross-attention heads,
128 latents (8 times x 16), GEGLU, no dropout, AdamW, MSE on 100 output queries per window.
Sets: ``fixed``, B windows of exactly 2,200 tokens (no padding); ``realistic``, simulated windows
of sessions with 100-200 units firing at 5-40 Hz (Poisson), START/END for every unit, padded to the
batch's longest window (torch_brain pads so; neuropoyo groups windows by length inside its encoder).
Steps run interleaved (torch_brain, neuropoyo, [torch_brain bf16, neuropoyo bf16]) on the same
batch, after one warm-up round; medians over --steps rounds. tokens/s counts real tokens only;
GFLOP/s is the nominal matmul count of the real tokens (``neuropoyo.model.info``, 3x forward),
the same for both models, next to this run's fp32 and bf16 matmul rates. The ceiling line divides
a step's matmul FLOPs (the nominal count, and the smaller count neuropoyo executes) by the best
fp32 matmul rate this run has read (before the sets and after each; noise only slows a reading
down): no fp32 step doing that work is faster on this machine, so torch_brain's step time over it
bounds the attainable speed-up. With --device cuda both models and the batches live on
the GPU, every step is timed to its end (synchronised), the matmul rates are the GPU's (8192^3
products) and its name is printed. Needs ``torch_brain`` unless --no-torch-brain (neuropoyo alone).
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from typing import Callable

import numpy as np
import torch

from neuropoyo.devices import checked_device
from neuropoyo.machine import gpu_line, machine_line, matmul_gflops, synchronize
from neuropoyo.model.config import POYOConfig
from neuropoyo.model.info import forward_flops
from neuropoyo.model.poyo import POYO
from neuropoyo.streaming.bench import torch_brain_peer

DIM, HEAD_DIM, DEPTH, SELF_HEADS, CROSS_HEADS = 128, 64, 6, 8, 2
LATENT_TIMES, LATENTS_PER_TIME = 8, 16
FIXED_TOKENS, OUTPUTS, SESSIONS = 2_200, 100, 8


def neuropoyo_model(num_units: int) -> POYO:
    config = POYOConfig(
        num_units=num_units,
        num_sessions=SESSIONS,
        dim=DIM,
        head_dim=HEAD_DIM,
        num_heads=SELF_HEADS,
        cross_heads=CROSS_HEADS,
        depth=DEPTH,
        ffn="geglu",
        num_latent_timestamps=LATENT_TIMES,
        latents_per_timestamp=LATENTS_PER_TIME,
        readouts={"hand_vel": 2},
    )
    return POYO(config)


def session_units(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """(unit indices, rates in Hz) of each simulated session: 100-200 units at 5-40 Hz."""
    sessions, first = [], 0
    for _ in range(SESSIONS):
        n = int(rng.integers(100, 201))
        sessions.append((np.arange(first, first + n), rng.uniform(5.0, 40.0, n)))
        first += n
    return sessions


def realistic_window(rng: np.random.Generator, units: np.ndarray, rates: np.ndarray) -> dict[str, np.ndarray]:
    """A 1 s window: START at 0 and END at 1 for every unit, then Poisson spikes, sorted by time."""
    counts = rng.poisson(rates)
    spike_units = np.repeat(units, counts)
    unit = np.concatenate([units, units, spike_units])
    time_s = np.concatenate([np.zeros(len(units)), np.ones(len(units)), rng.random(len(spike_units))])
    kind = np.concatenate([np.full(len(units), 1), np.full(len(units), 2), np.zeros(len(spike_units), int)])
    order = np.argsort(time_s, kind="stable")
    return {"unit": unit[order], "time": time_s[order], "type": kind[order]}


def fixed_window(rng: np.random.Generator, units: np.ndarray, rates: np.ndarray) -> dict[str, np.ndarray]:
    """A window of exactly FIXED_TOKENS tokens: the realistic window cut or topped up with spikes."""
    window = realistic_window(rng, units, rates)
    extra = max(0, FIXED_TOKENS - len(window["unit"]))
    unit = np.concatenate([window["unit"], rng.choice(units, extra)])[:FIXED_TOKENS]
    time_s = np.concatenate([window["time"], rng.random(extra)])[:FIXED_TOKENS]
    kind = np.concatenate([window["type"], np.zeros(extra, int)])[:FIXED_TOKENS]
    return {"unit": unit, "time": time_s, "type": kind}


def make_batch(rng: np.random.Generator, sessions, batch_size: int, fixed: bool) -> dict[str, torch.Tensor]:
    """One padded batch, as both models read it (unit indices from 0; torch_brain's get +1)."""
    picks = rng.integers(0, SESSIONS, batch_size)
    windows = [(fixed_window if fixed else realistic_window)(rng, *sessions[s]) for s in picks]
    m = max(len(w["unit"]) for w in windows)
    batch = {
        "input_unit_index": torch.zeros(batch_size, m, dtype=torch.long),
        "input_timestamps": torch.zeros(batch_size, m),
        "input_token_type": torch.zeros(batch_size, m, dtype=torch.long),
        "input_mask": torch.zeros(batch_size, m, dtype=torch.bool),
    }
    for i, w in enumerate(windows):
        n = len(w["unit"])
        batch["input_unit_index"][i, :n] = torch.from_numpy(w["unit"])
        batch["input_timestamps"][i, :n] = torch.from_numpy(w["time"]).float()
        batch["input_token_type"][i, :n] = torch.from_numpy(w["type"])
        batch["input_mask"][i, :n] = True
    batch["session_index"] = torch.from_numpy(picks)
    batch["output_timestamps"] = torch.from_numpy(np.sort(rng.random((batch_size, OUTPUTS)), 1)).float()
    batch["target"] = torch.from_numpy(rng.standard_normal((batch_size, OUTPUTS, 2))).float()
    return batch


def neuropoyo_step(model, optimizer, batch, bf16: bool) -> None:
    queries = batch["session_index"][:, None].expand(-1, OUTPUTS)
    with torch.autocast(batch["target"].device.type, dtype=torch.bfloat16, enabled=bf16):
        out = model(
            input_unit_index=batch["input_unit_index"],
            input_timestamps=batch["input_timestamps"],
            input_token_type=batch["input_token_type"],
            input_mask=batch["input_mask"],
            output_session_index=queries,
            output_timestamps=batch["output_timestamps"],
        )["hand_vel"]
    loss = torch.nn.functional.mse_loss(out.float(), batch["target"])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def torch_brain_step(model, optimizer, batch, bf16: bool, latent_index, latent_timestamps) -> None:
    b = batch["input_unit_index"].shape[0]
    with torch.autocast(batch["target"].device.type, dtype=torch.bfloat16, enabled=bf16):
        out = model(
            input_unit_index=batch["input_unit_index"] + 1,
            input_timestamps=batch["input_timestamps"],
            input_token_type=batch["input_token_type"],
            input_mask=batch["input_mask"],
            latent_index=latent_index.expand(b, -1),
            latent_timestamps=latent_timestamps.expand(b, -1),
            session_index=batch["session_index"] + 1,
            output_timestamps=batch["output_timestamps"],
        )
    loss = torch.nn.functional.mse_loss(out.float(), batch["target"])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def nominal_flops(config: POYOConfig, batch) -> int:
    """3x the forward matmul FLOPs of every window at its real token count."""
    lengths = batch["input_mask"].sum(1).tolist()
    return 3 * sum(forward_flops(config, num_input_tokens=n, num_outputs=OUTPUTS) for n in lengths)


def per_token_kv_flops(config: POYOConfig, batch) -> int:
    """3x the encoder's key/value projection of every real token, counted in the nominal FLOPs;
    neuropoyo projects each distinct (unit, token type) pair once instead (a negligible count)."""
    tokens = int(batch["input_mask"].sum())
    return 3 * 2 * tokens * config.dim * 2 * config.cross_heads * config.head_dim


def run_set(name: str, args, sessions, num_units: int, fp32_rate: Callable[[], float]) -> dict[str, float]:
    rng = np.random.default_rng(1)
    torch.manual_seed(0)
    device = args.device
    ours = neuropoyo_model(num_units).to(device)
    peers = {"neuropoyo": (ours, False)}
    if args.torch_brain:
        theirs = torch_brain_peer(ours.config, readout_dim=2).train().to(device)  # same size, dropout off
        latent_index = torch.arange(LATENTS_PER_TIME, device=device).repeat(LATENT_TIMES)[None]
        latent_timestamps = ours.latent_timestamps[None]
        peers = {"torch_brain": (theirs, False), **peers}
    if args.bf16:
        peers |= {f"{peer} bf16": (model, True) for peer, (model, _) in peers.items()}
    optimizers = {model: torch.optim.AdamW(model.parameters(), lr=1e-4) for model, _ in peers.values()}
    times: dict[str, list[float]] = {peer: [] for peer in peers}
    tokens, flops, padded, skipped = [], [], [], []
    for round_index in range(args.steps + 1):
        batch = {k: v.to(device) for k, v in make_batch(rng, sessions, args.batch_size, fixed=name == "fixed").items()}
        for peer, (model, bf16) in peers.items():
            synchronize(device)
            start = time.perf_counter()
            if model is ours:
                neuropoyo_step(model, optimizers[model], batch, bf16)
            else:
                torch_brain_step(model, optimizers[model], batch, bf16, latent_index, latent_timestamps)
            synchronize(device)
            if round_index:  # round 0 warms up
                times[peer].append(time.perf_counter() - start)
        if round_index:
            tokens.append(int(batch["input_mask"].sum()))
            padded.append(batch["input_mask"].numel())
            flops.append(nominal_flops(ours.config, batch))
            skipped.append(per_token_kv_flops(ours.config, batch))
    print(f"\n## set: {name} (B={args.batch_size}, {args.steps} rounds; mean real tokens/window "
          f"{statistics.fmean(tokens) / args.batch_size:,.0f}, padded {statistics.fmean(padded) / args.batch_size:,.0f})\n")
    print("| model | median step ms | tokens/s | nominal GFLOP/s | vs torch_brain (same precision) |")
    print("|---|---:|---:|---:|---:|")
    medians = {peer: statistics.median(t) for peer, t in times.items()}
    tokens_per_step = statistics.fmean(tokens)
    gflop = statistics.fmean(flops) / 1e9
    for peer, median in medians.items():
        baseline = medians.get("torch_brain bf16" if "bf16" in peer else "torch_brain")
        versus = "-" if baseline is None else f"{baseline / median:.2f}x"
        print(f"| {peer} | {median * 1e3:,.0f} | {tokens_per_step / median:,.0f} | {gflop / median:,.1f} | {versus} |")
    executed = gflop - statistics.fmean(skipped) / 1e9
    fp32_gflops = fp32_rate()  # noise only slows a probe down: the best reading is the machine's rate
    print(f"\nceiling at the best fp32 matmul rate read so far ({fp32_gflops:,.0f} GFLOP/s), every matmul at full speed and "
          f"nothing else costing time: the nominal {gflop:,.0f} GFLOP take {gflop / fp32_gflops * 1e3:,.0f} ms; the "
          f"{executed:,.0f} GFLOP neuropoyo executes (no per-token key/value projection) take "
          f"{executed / fp32_gflops * 1e3:,.0f} ms, and its step runs at {executed / fp32_gflops / medians['neuropoyo']:.0%} "
          "of that ceiling")
    if "torch_brain" in medians:
        print(f"so no fp32 step is faster than {medians['torch_brain'] * fp32_gflops / gflop:.2f}x torch_brain's "
              f"(nominal FLOPs) or {medians['torch_brain'] * fp32_gflops / executed:.2f}x (executed FLOPs) here")
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="timed rounds per set (after one warm-up)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--set", nargs="+", choices=("fixed", "realistic"), default=["fixed", "realistic"])
    parser.add_argument("--no-bf16", dest="bf16", action="store_false", help="skip the bf16 autocast peers")
    parser.add_argument("--device", type=checked_device, default=torch.device("cpu"), help="cpu (default) or cuda")
    parser.add_argument("--no-torch-brain", dest="torch_brain", action="store_false",
                        help="time neuropoyo's step alone (where torch_brain cannot be installed)")
    args = parser.parse_args()
    if args.torch_brain:
        try:
            import torch_brain  # noqa: F401
        except ImportError:
            sys.exit("this benchmark compares against torch_brain: pip install torch_brain, or pass --no-torch-brain")
    print(machine_line())
    if args.device.type == "cuda":
        print(gpu_line(args.device))
    size = (8192, 8192, 8192) if args.device.type == "cuda" else (4096, 512, 1024)

    def rate(dtype: torch.dtype) -> float:
        return matmul_gflops(dtype, device=args.device, size=size)

    fp32_readings = [rate(torch.float32)]

    def best_fp32_rate() -> float:
        fp32_readings.append(rate(torch.float32))
        return max(fp32_readings)

    print(f"matmul ({size[0]}x{size[1]} @ {size[1]}x{size[2]}) on {args.device}: fp32 {fp32_readings[0]:,.0f} GFLOP/s, "
          f"bf16 {rate(torch.bfloat16):,.0f} GFLOP/s")
    sessions = session_units(np.random.default_rng(0))
    num_units = sum(len(units) for units, _ in sessions)
    results = {name: run_set(name, args, sessions, num_units, best_fp32_rate) for name in args.set}
    print(f"\nmatmul after: fp32 {rate(torch.float32):,.0f} GFLOP/s, bf16 {rate(torch.bfloat16):,.0f} GFLOP/s")
    for name, medians in results.items():
        if "torch_brain" in medians:
            print(f"{name}: neuropoyo / torch_brain fp32 speed-up {medians['torch_brain'] / medians['neuropoyo']:.2f}x")
    print(f"\ncommand: {shlex.join([sys.executable, *sys.argv])}")


if __name__ == "__main__":
    main()
