"""Which runtime runs the fixed-shape part of a streaming update fastest on this CPU.

    python benchmarks/stream_runtimes.py [--presets runs/paper-single-session runs/cpu-small]
        [--threads 1 2] [--rounds 30] [--calls 20] [--quick]

The part timed is the fixed-shape end of every update, the LatentStack: the latent self-attention
stack and the output cross-attention with the readout, batch 1 (latents (1, N, dim) and one query
in, the estimate out), for each preset's model with random weights; StreamingDecoder(backend=...)
hands a runtime that and the encoder before it (graphs.RecordingUpdate; the whole update is timed
by benchmarks/update_idle.py and serve_latency.py). Candidates, each
at every --threads count: eager torch fp32, eager torch bf16, torch.compile (frozen weights, as
compile=True does; compiled once per thread count), ONNX Runtime fp32, OpenVINO fp32 and OpenVINO
with its bf16 inference precision hint. Runtimes that are not installed are skipped, with a note.

Every round runs each candidate in turn (A, B, C, ... then again), --calls consecutive timed calls
each, so slow drifts of a shared machine hit all of them alike; the table gives the median and p99
of all calls. Each candidate's output on one input is compared with eager fp32 (max |difference|,
and relative to the output's largest value). FLOPs per call are the matmuls that
torch.utils.flop_counter counts on the eager stack; GFLOP/s is that over the median, and "% peak"
compares it with a large matmul of the same precision at the same thread count
(neuropoyo.machine.matmul_gflops). "overhead" is the same candidate on a near-empty graph with the
same inputs and output (one add): the cost of a call that does no work.
"""

from __future__ import annotations

import argparse
import copy
import shlex
import sys
import time
import warnings
from typing import Callable

import numpy as np
import torch
import torch._inductor.config
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from neuropoyo.machine import machine_line, matmul_gflops
from neuropoyo.model.poyo import POYO, with_parameters_in
from neuropoyo.streaming.graphs import LatentStack
from neuropoyo.streaming.runtimes import missing_runtime, runtime_function
from neuropoyo.training.config import RunConfig

CANDIDATES = ("torch fp32", "torch bf16", "torch.compile", "onnxruntime fp32", "openvino fp32", "openvino bf16")


class NearEmpty(nn.Module):
    """The LatentStack's interface with no work: latents (1, N, dim), query (1, 1, dim) -> (D,)."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, latents: Tensor, query: Tensor) -> Tensor:
        return latents[0, 0, : self.dim] + query[0, 0, : self.dim]


def candidate(name: str, module: nn.Module, inputs: dict[str, Tensor], threads: int) -> Callable[[], Tensor]:
    """A no-argument call of ``module`` on ``inputs`` run by candidate ``name`` with ``threads``."""
    torch.set_num_threads(threads)
    args = tuple(inputs.values())
    if name == "torch fp32":
        return lambda: module(*args)
    if name == "torch bf16":
        half, halves = _bf16(module), tuple(a.to(torch.bfloat16) for a in args)
        return lambda: half(*halves)
    if name == "torch.compile":
        compiled = torch.compile(copy.deepcopy(module))  # one compilation per thread count
        with torch._inductor.config.patch(freezing=True):
            compiled(*args)
        return lambda: compiled(*args)
    backend, precision = name.split()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    run = runtime_function(module, inputs, backend=backend, threads=threads, dtype=dtype)
    return lambda: run(*args)


def _bf16(module: nn.Module) -> nn.Module:
    """A copy of a LatentStack (or NearEmpty) whose model parameters are bfloat16."""
    if isinstance(module, LatentStack):
        return LatentStack(with_parameters_in(module.model, torch.bfloat16).eval(), module.readout)
    return module


def flops_per_call(module: nn.Module, inputs: dict[str, Tensor]) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(*inputs.values())
    return counter.get_total_flops()


def bench_preset(preset: str, *, threads: list[int], rounds: int, calls: int, names: list[str]) -> None:
    config = RunConfig.from_yaml(preset).model
    torch.manual_seed(0)
    model = POYO(config).eval()
    readout = model.readout_names[0]
    with torch.no_grad():
        query = model.output_queries(torch.tensor([[0]]), torch.tensor([[0]]))
        latents = model.latent_emb(model.latent_index)[None] + torch.randn(1, config.num_latents, config.dim)
    inputs = {"latents": latents, "query": query}
    stack, empty = LatentStack(model, readout), NearEmpty(config.readouts[readout])
    flops = flops_per_call(stack, inputs)
    print(f"\n{preset}: {config.num_latents} latents x dim {config.dim}, depth {config.depth}, "
          f"{config.num_heads} heads of {config.head_dim}; {flops / 1e9:.3f} GFLOP per call (matmuls)", flush=True)
    peak = {(dtype, t): _matmul_rate(dtype, t) for dtype in ("fp32", "bf16") for t in threads}
    print("matmul rate, GFLOP/s: " + ", ".join(f"{d} {t} thread{'s' * (t > 1)} {v:.0f}" for (d, t), v in peak.items()))

    runs: dict[tuple[str, int], tuple[Callable, Callable]] = {}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            if name.split()[0] in ("onnxruntime", "openvino") and missing_runtime(name.split()[0]):
                print(f"skipped {name}: needs {missing_runtime(name.split()[0])}")
                continue
            for t in threads:
                started = time.perf_counter()
                runs[name, t] = (candidate(name, stack, inputs, t), candidate(name, empty, inputs, t))
                print(f"  prepared {name}, {t} thread(s), in {time.perf_counter() - started:.1f} s", flush=True)
        reference = stack(*inputs.values()).double()
        scale = float(reference.abs().max())
        errors = {key: float((run().double() - reference).abs().max()) for key, (run, _) in runs.items()}
        timings = {key: ([], []) for key in runs}
        for _ in range(rounds):
            for key, (run, near_empty) in runs.items():
                torch.set_num_threads(key[1])
                for fn, sink in ((run, timings[key][0]), (near_empty, timings[key][1])):
                    fn()  # the first call after another candidate warms this one's caches
                    for _ in range(calls):
                        started = time.perf_counter()
                        fn()
                        sink.append((time.perf_counter() - started) * 1e3)

    base = {t: float(np.median(timings["torch fp32", t][0])) for t in threads if ("torch fp32", t) in timings}
    print(f"{'candidate':<18}{'threads':>8}{'p50 ms':>9}{'p99 ms':>9}{'x fp32':>8}{'GFLOP/s':>9}{'% peak':>8}"
          f"{'overhead':>10}{'max |err|':>11}{'rel err':>9}")
    for (name, t), (ms, empty_ms) in timings.items():
        p50, p99 = float(np.median(ms)), float(np.percentile(ms, 99))
        rate = flops / p50 / 1e6
        ratio = f"{base[t] / p50:>8.2f}" if t in base else f"{'-':>8}"
        print(f"{name:<18}{t:>8}{p50:>9.3f}{p99:>9.3f}{ratio}{rate:>9.1f}{100 * rate / peak[_precision(name), t]:>7.0f}%"
              f"{float(np.median(empty_ms)):>10.3f}{errors[name, t]:>11.1e}{errors[name, t] / scale:>9.1e}")
    print("x fp32: eager torch fp32's p50 over this one's, at the same threads; overhead: p50 ms of the "
          "near-empty graph; err: against eager fp32 on one input (rel: over its largest |value|)")


def _precision(name: str) -> str:
    return "bf16" if "bf16" in name else "fp32"


def _matmul_rate(dtype: str, threads: int) -> float:
    torch.set_num_threads(threads)
    return matmul_gflops(torch.bfloat16 if dtype == "bf16" else torch.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["runs/paper-single-session", "runs/cpu-small"],
                        help="run files or presets whose model is timed")
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="thread counts (default 1 2)")
    parser.add_argument("--rounds", type=int, default=30, help="rounds over all candidates (default 30)")
    parser.add_argument("--calls", type=int, default=20, help="timed calls per candidate per round (default 20)")
    parser.add_argument("--candidates", nargs="+", choices=CANDIDATES, default=list(CANDIDATES), metavar="NAME",
                        help=f"which to time, of: {', '.join(repr(c) for c in CANDIDATES)}")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 rounds of 3 calls")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.calls = 2, 3
    print("command: python " + shlex.join(["benchmarks/stream_runtimes.py", *sys.argv[1:]]))
    print(machine_line())
    versions = [f"torch {torch.__version__}"]
    for package in ("onnxruntime", "openvino"):
        try:
            versions.append(f"{package} {__import__(package).__version__}")
        except ImportError:
            versions.append(f"{package} not installed")
    print(", ".join(versions))
    for preset in args.presets:
        bench_preset(preset, threads=args.threads, rounds=args.rounds, calls=args.calls, names=args.candidates)


if __name__ == "__main__":
    main()
