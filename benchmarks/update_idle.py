"""Why a streaming update costs more in the service than in a tight loop, and what a runtime
saves: the same update of the small CPU model (1 thread, ~8 spikes per 10 ms; push + estimate),
timed back to back, after a 9 ms sleep and after a 9 ms busy wait (the service waits ~10 ms for
the next chunk between updates), with the torch decoder and with ONNX Runtime or OpenVINO running
the update after the push (``backend=``, where the export / openvino extra is installed). Blocks
of 100 updates interleaved, 6 rounds; medians and p99 in ms. Random weights.

    python benchmarks/update_idle.py
"""

import dataclasses
import time
import warnings

import numpy as np
import torch

from neuropoyo.machine import machine_line
from neuropoyo.model import POYO
from neuropoyo.streaming import StreamingDecoder
from neuropoyo.streaming.runtimes import missing_runtime
from neuropoyo.training.config import RunConfig

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
print(machine_line())
torch.manual_seed(0)
cfg = dataclasses.replace(RunConfig.from_yaml("cpu-small").model, num_units=120, num_sessions=1)
m = POYO(cfg).eval()
backends = ["torch"] + [b for b in ("onnxruntime", "openvino") if not missing_runtime(b)]
decoders = {b: StreamingDecoder(m, unit_index=np.arange(116), session_index=0, backend=b, threads=1) for b in backends}
clocks = dict.fromkeys(backends, 0.0)
rng = np.random.default_rng(0)


def update(backend: str) -> float:
    t = clocks[backend]
    n = rng.poisson(8)
    u = rng.integers(0, 116, n)
    tt = np.sort(rng.uniform(t, t + 0.01, n))
    clocks[backend] = t = t + 0.01
    a = time.perf_counter()
    decoders[backend].push(u, tt)
    decoders[backend].estimate(t)
    return time.perf_counter() - a


def sleep_wait():
    time.sleep(0.009)


def busy_wait():
    end = time.perf_counter() + 0.009
    while time.perf_counter() < end:
        pass


modes = {"back_to_back": None, "sleep_9ms": sleep_wait, "busy_9ms": busy_wait}
res = {(b, k): [] for b in backends for k in modes}
for _ in range(200):
    for b in backends:
        update(b)
for r in range(6):
    for b in backends:
        for k, wait in modes.items():
            for _ in range(100):
                if wait:
                    wait()
                res[b, k].append(update(b))
for (b, k), v in res.items():
    print(f"{b:<12} {k:<13} update p50 {np.median(v) * 1e3:.3f} ms, p99 {np.percentile(v, 99) * 1e3:.3f} ms")
