"""
Real-time decoding with the streaming decoder
=============================================

During an experiment, spikes arrive a few at a time and the decoder must say, every few
milliseconds, what the hand is doing now. ``neuropoyo.StreamingDecoder`` does this with a trained
POYO model: spikes are pushed as they arrive, and ``estimate(now)`` returns the behavior at
``now`` from the spikes of the last context window (1 s). Each estimate is exactly what the
offline model computes on that window; the decoder only avoids redoing work between updates
(:doc:`/explanation/streaming`).

This tutorial trains a small model, replays a test stretch of a recording through the streaming
decoder as a live feed with an estimate every 10 ms, checks the estimates against the offline
model on the same windows, and runs ``neuropoyo bench-stream``.
"""

# %%
# Running commands from Python
# ----------------------------
#
# Each command runs through ``run``, a small helper that does what typing the command in a
# terminal does: it prints the command after a ``$``, then everything the program printed, and
# stops with an error if the command fails. A progress bar redraws its line many times; ``run``
# keeps its last drawing, as a terminal shows it.

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np


# Everything this tutorial writes goes to a new temporary folder, ``work``, so nothing lands next
# to this script; the commands run there, as in a terminal opened in that folder.
work = Path(tempfile.mkdtemp(prefix="neuropoyo-tutorial-"))


def run(command):
    """Run one command line in ``work`` as a terminal would: print it, then everything it prints."""
    words = shlex.split(command)
    programs = {"neuropoyo": ["-m", "neuropoyo"], "torchrun": ["-m", "torch.distributed.run"]}
    argv = [sys.executable, *programs[words[0]], *words[1:]]
    done = subprocess.run(
        argv, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )
    text = done.stdout.decode("utf-8", errors="replace")
    # a progress bar redraws its line after each carriage return: keep its last drawing
    output = "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n"))
    print(f"$ {command}\n{output.rstrip()}\n")
    if done.returncode != 0:
        raise RuntimeError(f"`{command}` failed with exit status {done.returncode}:\n{output}")


# %%
# A small trained model
# ---------------------
#
# One simulated random-target session (two minutes of continuous reaching), and a POYO model
# trained on its training split with the CPU recipe, shortened to 150 steps for this page (the
# recipe runs 900; drop ``--max-steps`` for it).

run("neuropoyo simulate --out data --animals 1 --days 1 --tasks random_target --duration-s 120")
run("neuropoyo train --data data/sim_monkey0_day0_rt.h5 --out run --max-steps 150")

# %%
# A streaming decoder for the recording
# -------------------------------------
#
# ``StreamingDecoder.for_recording`` builds a decoder for a recording the model knows (trained on
# it, or adapted to it with ``neuropoyo finetune``): it looks up the rows of the recording's units
# and session, and returns estimates in the stream's own units (m/s here). Pushed spikes name their
# unit by its position in the recording's unit table, as an acquisition system would number its
# channels.

import neuropoyo

trained = neuropoyo.load_model(work / "run")  # a run directory: its best model on validation
recording = neuropoyo.read_recording(work / "data/sim_monkey0_day0_rt.h5")
decoder = neuropoyo.StreamingDecoder.for_recording(trained, recording)
T = decoder.context_length_s
print(f"readout {decoder.readout!r}, {decoder.num_units} units, context window {T} s")

# %%
# Replay a test stretch as a live feed
# ------------------------------------
#
# We take the first block of the recording's test split (spans the model never trained on) and
# replay it in recording time. Every 10 ms the feed delivers the spikes fired since the last
# update, and we ask for the estimate at that moment. The first estimate comes one window after
# the block starts, so that every window lies inside it.

test = recording.splits["test"]
start, end = test.start[0] + T, test.end[0]
updates = np.arange(start, end, 0.010)  # an estimate every 10 ms
spikes = recording.spikes

estimates = np.zeros((updates.size, 2))
delivered = np.searchsorted(spikes.times, start - T)  # the feed starts one window before the first estimate
for i, now in enumerate(updates):
    arrived = np.searchsorted(spikes.times, now)  # spikes fired before `now`
    decoder.push(spikes.unit_index[delivered:arrived], spikes.times[delivered:arrived])
    delivered = arrived
    estimates[i] = decoder.estimate(now)
print(f"{updates.size} estimates from {start:.2f} s to {updates[-1]:.2f} s, {delivered} spikes pushed in all")

# %%
# The same windows, decoded offline
# ---------------------------------
#
# The offline model sees a window as a batch of tokens: one per spike in ``[now - T, now)`` with
# its unit and time, a START and an END token for every unit at the window's edges, and one output
# query at the window's end. We build those tokens for every 10th update (as ``bench-stream``
# does), run the plain forward pass, and undo the normalisation the way the streaming decoder does.

import torch
from neuropoyo.tokens.tokenizer import input_tokens

model = trained.model.eval()
scale = trained.normalizer.scale(recording.info.brainset, decoder.readout)
query = {
    "output_session_index": torch.tensor([[decoder.session_index]]),
    "output_timestamps": torch.tensor([[T]]),  # the window's end
    "output_decoder_index": torch.tensor([[model.readout_names.index(decoder.readout)]]),
}


def offline(now):
    """The offline model's estimate at the end of the window [now - T, now), in m/s."""
    window = recording.slice(now - T, now)  # times relative to the window's start
    tokens = input_tokens(window, observed=neuropoyo.Intervals([0.0], [T]), unit_index=decoder.unit_index)
    inputs = {key: torch.as_tensor(value)[None] for key, value in tokens.items() if key != "input_mask"}
    with torch.inference_mode():
        output = model(**inputs, **query)[decoder.readout][0, 0].double().numpy()
    return output * np.asarray(scale.std) + np.asarray(scale.mean)


checked = np.arange(0, updates.size, 10)
reference = np.stack([offline(updates[i]) for i in checked])
difference = np.abs(estimates[checked] - reference)
print(f"max |streamed - offline| over {checked.size} windows: {difference.max():.2e} m/s "
      f"({(difference / np.asarray(scale.std)).max():.2e} in z-scored units)")

# %%
# The two agree within float32 rounding (the tests hold a float32 decoder to 1e-4 of the float64
# model in z-scored units, and a float64 decoder to 1e-10): the streaming decoder computes the
# same thing, it only keeps each spike's projected key and value from one update to the next
# instead of recomputing them, and takes its rotation angles in float64.
#
# Streamed against true behavior
# ------------------------------

stream = recording.behavior[decoder.readout]
true = np.stack([np.interp(updates, stream.timestamps, stream.values[:, d]) for d in (0, 1)], axis=1)
r2 = 1 - ((true - estimates) ** 2).sum(0) / ((true - true.mean(0)) ** 2).sum(0)
print(f"R2 of the streamed estimates on this test stretch: x {r2[0]:.3f}, y {r2[1]:.3f}")

fig, axes = plt.subplots(2, 1, figsize=(7.5, 4.5), sharex=True)
for dim, ax in enumerate(axes):
    ax.plot(updates, true[:, dim], color="black", lw=1.5, label="true")
    ax.plot(updates, estimates[:, dim], color="tab:orange", lw=1.0, label="streamed, every 10 ms")
    ax.plot(updates[checked], reference[:, dim], "o", ms=3, mfc="none", color="tab:blue", label="offline model")
    ax.set_ylabel(f"hand velocity {'xy'[dim]} (m/s)")
axes[0].legend(loc="upper right", fontsize=8, ncol=3)
axes[0].set_title("Streaming decoder on a test stretch (model trained for 150 steps)", fontsize=10)
axes[1].set_xlabel("time in the recording (s)")
fig.tight_layout()

# %%
# A streamed estimate is causal: it uses only spikes before ``now``, and reads the behavior at the
# window's end, where no later spike can refine it. ``neuropoyo evaluate`` scores something else
# (windows slid over the test split, each sample's predictions averaged over the windows that hold
# it), so its R2 is not this one.
#
# ``bench-stream``: latency of the updates
# ----------------------------------------
#
# ``neuropoyo bench-stream`` replays a recording the same way (from its start, for
# ``--duration-s`` seconds, an update every ``--update-ms``) and times every update. Every
# ``--compare-every`` updates it also runs the full-window forward on the latest windows, and a
# fixed matrix-product workload of about 10 ms that shows how noisy the machine is. With the
# ``bench`` extra installed it also times torch_brain's POYO of the same size; here we leave it out
# with ``--no-torch-brain``.

run("neuropoyo bench-stream --model run --data data/sim_monkey0_day0_rt.h5 --duration-s 8 --no-torch-brain")

# %%
# What it printed:
#
# - the machine (CPU, cores, threads, PyTorch version), since latencies only compare on one machine;
# - the number of updates and the R2 of the streamed estimates over the replayed stretch. The
#   replay starts at the recording's beginning, which lies mostly in the training split: this R2
#   is a check that the stream decodes, not a test score;
# - the latency of a streaming update, of the plain full-window forward (our model) and of the
#   reference workload, as the median (p50), the 99th percentile and the maximum, in
#   milliseconds. This small model needs a few milliseconds per update on two cores; the
#   :doc:`/explanation/streaming` page has measured figures for the paper's model, and
#   :doc:`/results` the dated measurements;
# - the largest difference between a streamed estimate and the full-window forward on the same
#   window, in z-scored units: the check we made above.
#
# ``--dtype bfloat16`` and ``--compile`` trade precision or start-up time for speed (see
# :doc:`/explanation/streaming`); ``--device cuda`` decodes on a GPU; ``--out FILE`` writes the
# figures as JSON.
