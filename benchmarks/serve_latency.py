"""End-to-end latency of `neuropoyo serve` over LSL loopback, for the small CPU model and the
paper's Table-4 model, at 100 Hz updates.

This script is the spike source: it sends a simulated recording's spikes in real time, one 10 ms
chunk (spikes + a tick at its end) at a time, and notes the LSL clock just before each push. The
service (a separate `neuropoyo serve` process, as on a rig) decodes the window ending at each tick
and publishes it; its --record file gives, per estimate, when its last input arrived, the decoder's
time and when it was published. Per update:

  transport   = arrival at the service - push of the chunk that completed the window
  decoder     = push to the decoder + estimate (the update itself)
  end to end  = publication on the outlet - push of that chunk

Configurations (model x service threads x decoder backend: torch, or ONNX Runtime running the
update after the push) alternate (A, B, A, B) and a fixed matmul workload (~10 ms) runs before
each, as the noise reference of this shared machine. The models have random weights: latency does not depend
on training. Prints the machine, every run, and medians over rounds.

    python benchmarks/serve_latency.py [--seconds 20] [--rounds 2] [--threads 1 2]
        [--backends torch onnxruntime] [--out FILE]
    python benchmarks/serve_latency.py --quick      # a smoke run: 3 s, one round
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import neuropoyo
from neuropoyo.data.normalize import Normalizer, Scale
from neuropoyo.data.store import write_recording
from neuropoyo.machine import machine_line
from neuropoyo.model import POYO
from neuropoyo.streaming.bench import matmul_reference
from neuropoyo.streaming.replay import describe
from neuropoyo.streaming.transport import TICK, LSLSpikeOutlet, local_clock
from neuropoyo.tokens.vocab import Vocabulary, session_key_of, unit_keys
from neuropoyo.trained import TrainedModel, save_model
from neuropoyo.training.config import RunConfig

MODELS = {"small": "cpu-small", "table4": "paper-single-session"}
CHUNK_S = 0.01


def model_dir(preset: str, recording, folder: Path) -> Path:
    config = dataclasses.replace(RunConfig.from_yaml(preset).model, num_units=len(recording.units.ids), num_sessions=1)
    torch.manual_seed(0)
    trained = TrainedModel(
        model=POYO(config).eval(), unit_vocab=Vocabulary(unit_keys(recording)),
        session_vocab=Vocabulary([session_key_of(recording)]),
        normalizer=Normalizer({recording.info.brainset: {"hand_vel": Scale(mean=(0.0, 0.0), std=(1.0, 1.0))}}),
        settings={},
    )
    return save_model(trained, folder / preset)


def stream(recording, name: str, seconds: float) -> dict[float, float]:
    """Send ``seconds`` of spikes in real time; returns {tick stream time: push moment}."""
    outlet = LSLSpikeOutlet(name, describe(recording))
    if not outlet.wait_for_consumer(60):
        raise RuntimeError("the service did not connect")
    spikes, offset, pushed = recording.spikes, local_clock() + 0.2, {}
    outlet.push(np.array([TICK]), np.array([offset]))
    for k in range(1, int(seconds / CHUNK_S) + 1):
        lo, hi = (k - 1) * CHUNK_S, k * CHUNK_S
        keep = slice(*np.searchsorted(spikes.times, [lo, hi]))
        units = np.append(spikes.unit_index[keep], TICK)
        times = np.append(spikes.times[keep], hi) + offset
        while (wait := times[-1] - local_clock()) > 0:
            time.sleep(wait)
        pushed[times[-1]] = local_clock()
        outlet.push(units, times)
    time.sleep(0.3)
    outlet.close()
    return pushed


def one_run(model: Path, recording, seconds: float, threads: int, extra: list[str], folder: Path) -> dict:
    name = f"np-bench-{time.monotonic_ns()}"
    record = folder / "served.csv"
    server = subprocess.Popen(
        [sys.executable, "-m", "neuropoyo", "serve", "--model", str(model), "--spikes", name,
         "--estimates", name + "-out", "--record", str(record), "--threads", str(threads), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    server.stderr.readline()  # "waiting for the lsl spike stream"
    pushed = stream(recording, name, seconds)
    server.send_signal(signal.SIGINT)
    out, err = server.communicate(timeout=120)
    if server.returncode != 0:
        raise RuntimeError(err)
    final = next(json.loads(line) for line in out.splitlines() if '"final"' in line)
    table = np.loadtxt(record, delimiter=",", skiprows=1, ndmin=2)
    ticks = np.array(sorted(pushed))
    at = np.searchsorted(ticks, table[:, 0] - 1e-6)
    matched = (at < ticks.size) & (np.abs(ticks[np.minimum(at, ticks.size - 1)] - table[:, 0]) < 1e-6)
    push = np.array([pushed[t] for t in ticks[at[matched]]])
    arrived, published, decode = table[matched, -3], table[matched, -2], table[matched, -1]
    parts = {"transport": (arrived - push) * 1e3, "decoder": decode, "end_to_end": (published - push) * 1e3}
    return {
        "updates": int(matched.sum()), "dropped_updates": final["dropped_updates"], "late_spikes": final["late_spikes"],
        **{k: {"p50": float(np.median(v)), "p99": float(np.percentile(v, 99)), "max": float(v.max())}
           for k, v in parts.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="streamed seconds per run (default 20)")
    parser.add_argument("--rounds", type=int, default=2, help="A, B rounds (default 2)")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["small", "table4"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="torch threads of the service")
    parser.add_argument("--backends", nargs="+", choices=["torch", "onnxruntime"], default=["torch", "onnxruntime"],
                        help="decoder backends of the service (default both)")
    parser.add_argument("--serve-args", default="", help="more `neuropoyo serve` flags, e.g. '--dtype bfloat16'")
    parser.add_argument("--quick", action="store_true", help="3 s, one round, small model, 1 thread")
    parser.add_argument("--out", help="also write the figures to this JSON file")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds, args.models, args.threads, args.backends = 3.0, 1, ["small"], [1], ["torch"]
    print(machine_line())
    print(f"torch {torch.__version__}, neuropoyo {neuropoyo.__version__}; command: python {' '.join(sys.argv)}")
    recording = neuropoyo.simulate(animals=1, days=1, trials=40, duration_s=args.seconds + 5, seed=0)[0]
    reference = matmul_reference()
    configurations = [(key, threads, backend) for key in args.models for threads in args.threads for backend in args.backends]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_recording(recording, folder / "rec.h5")
        models = {key: model_dir(MODELS[key], recording, folder) for key in args.models}
        for round_ in range(args.rounds):
            for key, threads, backend in configurations:
                ref = []
                for _ in range(30):
                    start = time.perf_counter()
                    reference()
                    ref.append((time.perf_counter() - start) * 1e3)
                extra = ["--backend", backend, *args.serve_args.split()]
                run = one_run(models[key], recording, args.seconds, threads, extra, folder)
                run.update(model=key, threads=threads, backend=backend, round=round_,
                           reference={"p50": float(np.median(ref)), "p99": float(np.percentile(ref, 99))})
                results.append(run)
                print(_row(run), flush=True)
    print("\nmedians over rounds (ms):")
    for key, threads, backend in configurations:
        runs = [r for r in results if (r["model"], r["threads"], r["backend"]) == (key, threads, backend)]
        cells = " ".join(f"{part} p50 {np.median([r[part]['p50'] for r in runs]):.2f} "
                         f"p99 {np.median([r[part]['p99'] for r in runs]):.2f}"
                         for part in ("transport", "decoder", "end_to_end"))
        print(f"{key:<7} {threads} thread(s) {backend:<11}: {cells}; "
              f"reference p50 {np.median([r['reference']['p50'] for r in runs]):.2f}")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


def _row(run: dict) -> str:
    cells = " | ".join(f"{part} {run[part]['p50']:.2f} / {run[part]['p99']:.2f} / {run[part]['max']:.2f}"
                       for part in ("transport", "decoder", "end_to_end"))
    return (f"round {run['round']} {run['model']:<7} {run['threads']} thr {run['backend']:<11}: {cells} (p50/p99/max ms); "
            f"{run['updates']} updates, {run['dropped_updates']} dropped; "
            f"reference {run['reference']['p50']:.2f} / {run['reference']['p99']:.2f}")


if __name__ == "__main__":
    main()
