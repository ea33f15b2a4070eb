"""
Place cells: position on a linear track
=======================================

Hippocampal place cells fire where the animal is: each has a place field, a stretch of the track
where its rate rises. Decoding the position from them is the classic test of a hippocampal
recording, with a classic decoder of its own, the Bayesian place-field decoder: it learns each
cell's rate at each position from the training data and, for a window of spikes, picks the
positions whose rates explain those spikes best (a Poisson likelihood).

This tutorial imports a place-cell session from an NWB file whose position is tracked only while
the animal runs, trains POYO to decode the position, and compares it with the Wiener filter, the
MLP, the GRU and the Bayesian decoder on the same test samples, by R2 and by the median position
error in the file's unit.
"""

# %%
# Running commands from Python
# ----------------------------
#
# Each command runs through ``run``, a small helper that does what typing the command in a
# terminal does: it prints the command after a ``$``, then everything the program printed, and
# stops with an error if the command fails. A progress bar redraws its line many times; ``run``
# keeps its last drawing, as a terminal shows it.

import json
import os
import shlex
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
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
# A stand-in for your file
# ------------------------
#
# The real file this tutorial is modelled on, ``nelpy_linear_track.nwb`` in the project's real-data
# set, holds 31 CA1 units of a rat (tetrodes, real spike times) with the video position in pixels
# (x, y at about 60 Hz), tracked only while the rat runs on a linear track; an ``epochs`` table
# marks the running (``run``) and the rest in a sleep box (``rest``), where there is no position.
# It is not on the machine that built this page, so this step simulates a session laid out the
# same way, with ``numpy`` alone.
#
# The rat runs laps on a 100 cm track (speeds vary from lap to lap; it pauses at each end) for
# 200 s, rests for 100 s out of the camera's view, then runs for another 100 s. Each of 30 place
# cells has a Gaussian place field (8 to 16 cm wide, a peak of 5 to 20 spikes/s) whose height
# depends on the running direction, as CA1 place fields on linear tracks do; spikes are Poisson.
# At rest the cells fire at 0.5 spikes/s and the position is not recorded.

rng = np.random.default_rng(7)
TRACK_CM = 100.0
epochs = [("run", 0.0, 200.0), ("rest", 200.0, 300.0), ("run", 300.0, 400.0)]


def laps(start, stop):
    """Times (30 Hz) and positions (cm) of laps back and forth along the track from start to stop."""
    times, positions, t, here = [], [], start, 0.0
    while t < stop:
        pause = rng.uniform(1.0, 3.0)  # at the end of the track
        times.append(np.arange(t, t + pause, 1 / 30)), positions.append(np.full(len(times[-1]), here))
        t += pause
        duration = TRACK_CM / rng.uniform(20.0, 45.0)  # 20-45 cm/s
        phase = np.arange(0.0, duration, 1 / 30) / duration
        there = TRACK_CM - here
        times.append(t + phase * duration), positions.append(here + (there - here) * (1 - np.cos(np.pi * phase)) / 2)
        t, here = t + duration, there
    times, positions = np.concatenate(times), np.concatenate(positions)
    return times[times < stop], positions[times < stop]


tracked = [laps(start, stop) for kind, start, stop in epochs if kind == "run"]
times = np.concatenate([t for t, _ in tracked])
position = np.concatenate([p for _, p in tracked])

n_cells = 30
centres = np.sort(rng.uniform(0.0, TRACK_CM, n_cells))
widths = rng.uniform(4.0, 8.0, n_cells)  # standard deviation (cm): fields 8-16 cm wide
peaks = rng.uniform(5.0, 20.0, n_cells)[:, None] * rng.uniform(0.2, 1.0, (n_cells, 2))  # per direction

fine = np.arange(0.0, 400.0, 0.002)  # 2 ms steps
where = np.interp(fine, times, position)
heading = np.gradient(where) >= 0  # True: running towards 100 cm
fields = np.exp(-0.5 * ((where[:, None] - centres) / widths) ** 2) * np.where(heading[:, None], peaks[:, 0], peaks[:, 1])
resting = (fine >= 200.0) & (fine < 300.0)
rate = np.where(resting[:, None], 0.5, 0.2 + fields)
step, cell = np.nonzero(rng.random(rate.shape) < rate * 0.002)
spike_times = fine[step] + rng.uniform(0.0, 0.002, step.size)
print(f"{n_cells} cells, {spike_times.size} spikes; position: {times.size} samples in {len(tracked)} run epochs")

# %%
# The file, written with ``pynwb`` the way the real one is laid out: the units with their spike
# times and the span they were recorded in (``obs_intervals``), the position (cm) with its
# timestamps in a ``behavior`` processing module, and the epochs with an ``epoch_type`` column
# (and the same word as a tag). Importing NWB files needs the ``nwb`` extra:
# ``pip install 'neuropoyo[nwb]'``.

from pynwb import NWBHDF5IO, NWBFile, TimeSeries
from pynwb.file import Subject

nwb = NWBFile(
    session_description="linear_track",
    identifier="ratA-track1",
    session_start_time=datetime(2024, 7, 8, 14, 0, tzinfo=timezone.utc),
    subject=Subject(subject_id="ratA", species="Rattus norvegicus"),
)
nwb.add_unit_column("unit_name", "name of the unit")
nwb.add_unit_column("brain_area", "where the unit was recorded")
for k in range(n_cells):
    nwb.add_unit(
        spike_times=np.sort(spike_times[cell == k]), obs_intervals=[[0.0, 400.0]], unit_name=f"cell{k:02d}",
        brain_area="CA1",
    )
behavior = nwb.create_processing_module("behavior", "position on the track")
behavior.add(TimeSeries(name="position", data=position, unit="cm", timestamps=times))
nwb.add_epoch_column("epoch_type", "run or rest")
for kind, start, stop in epochs:
    nwb.add_epoch(start_time=start, stop_time=stop, tags=[kind], epoch_type=kind)
with NWBHDF5IO(str(work / "kim2024_ratA_track.nwb"), "w") as io:
    io.write(nwb)
print("wrote kim2024_ratA_track.nwb")

# %%
# What the cells do
# -----------------
#
# Two laps of the first run: the position on top, and below it each cell's spikes, the cells
# sorted by the centre of their place field. A sequence of cells fires as the rat crosses the track,
# the same sequence reversed on the way back, with some cells firing in one direction only.

fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True, gridspec_kw={"height_ratios": [1, 2.5]})
shown = (times >= 20.0) & (times < 35.0)
top.plot(times[shown], position[shown], color="black", lw=1.2)
top.set_ylabel("position (cm)")
for k in range(n_cells):
    mine = spike_times[(cell == k) & (spike_times >= 20.0) & (spike_times < 35.0)]
    bottom.vlines(mine, k + 0.1, k + 0.9, color=plt.cm.viridis(centres[k] / TRACK_CM), lw=0.8)
bottom.set_ylabel("cell (by field centre)")
bottom.set_xlabel("time (s)")
bottom.set_ylim(0, n_cells)
fig.tight_layout()

# %%
# Import the file
# ---------------
#
# ``neuropoyo prepare nwb`` reads the units and, since the file has no ``hand_vel``, every series
# of ``processing/behavior``: here ``position`` (``--behavior`` chooses some). The epochs become
# named intervals, one per ``epoch_type`` value and tag: ``run`` and ``rest``. The recording spans
# the whole session (the units' ``obs_intervals``), rest included, but the train / valid / test
# splits are drawn only where the position exists, as contiguous blocks of 70 %, 10 % and 20 % of
# that time, so no split lands in the rest. ``--task linear_track`` names the task.

run("neuropoyo prepare nwb kim2024_ratA_track.nwb --out data --task linear_track")

# %%
# Check what was read
# -------------------
#
# ``neuropoyo inspect`` shows the position with its unit (cm) and rate, the named intervals
# (``run``, ``rest``) and where the splits lie.

run("neuropoyo inspect data")

# %%
# Train
# -----
#
# The recording holds ``position`` and no ``hand_vel``, so ``--readout position`` names the stream
# to decode. To keep this page quick the model trains for 300 steps of the CPU recipe; real runs
# train longer (drop ``--max-steps`` for the recipe's 900 steps). On the real file a 4 s context
# did better than the recipe's 1 s (``benchmarks/place_cells.py``, in a run file:
# ``model: {context_length_s: 4.0}``).

run("neuropoyo train --data data --out run --readout position --max-steps 300")

# %%
# Score the test running periods
# ------------------------------
#
# ``--eval-intervals run`` scores only the test samples inside ``run`` epochs. Next to R2, the
# report gives the median position error: the median distance between the true and the decoded
# position over the scored samples, in the stream's unit (here cm; pixels for the real file).

run("neuropoyo evaluate --model run --data data --out reports/poyo --eval-intervals run")

# %%
# Classic decoders on the same samples
# ------------------------------------
#
# ``--methods wiener mlp gru bayes`` fits the three classic regressors on binned spike counts (20
# bins of 10 ms of history each) and the Bayesian place-field decoder (``bayes``) on one window of
# 0.5 s: it bins the training positions, estimates each cell's rate in each position bin, and
# decodes each test sample from the spike counts of the 0.5 s before it. All are scored on exactly
# the samples ``evaluate`` scored.

run("neuropoyo baselines --data data --out reports --readout position --methods wiener mlp gru bayes --eval-intervals run")

# %%
# The tables
# ----------
#
# ``neuropoyo compare`` prints the R2 table and, for streams with a unit, a table of median errors
# per recording and stream (errors in different units are never averaged together).

run("neuropoyo compare reports --out comparison")

# %%
# The scores in a figure
# ----------------------

recording = "kim2024_ratA_track"
methods = {"POYO": "poyo", "Wiener": "wiener", "MLP": "mlp", "GRU": "gru", "Bayes": "bayes"}
scores = {}
for name, folder in methods.items():
    summary = json.loads((work / "reports" / folder / "metrics.json").read_text())
    scores[name] = summary["recordings"][recording]["streams"]["position"]

fig, (left, right) = plt.subplots(1, 2, figsize=(8.5, 3.2))
colors = ["tab:orange", "tab:purple", "tab:green", "tab:red", "tab:blue"]
bars = left.bar(list(scores), [s["r2"] for s in scores.values()], color=colors)
left.bar_label(bars, fmt="%.2f", fontsize=8)
left.set_ylabel("test R2 (run epochs)")
left.set_ylim(min(0, *(s["r2"] for s in scores.values())), 1)
bars = right.bar(list(scores), [s["median_error"] for s in scores.values()], color=colors)
right.bar_label(bars, fmt="%.1f", fontsize=8)
right.set_ylabel("median position error (cm)")
fig.suptitle(f"Position on {recording}: one short run, one seed", fontsize=10)
fig.tight_layout()

# %%
# The decoded positions
# ---------------------
#
# Each report's ``predictions/<recording>/position.csv`` has one row per scored sample: its time,
# the true and decoded position, and its ``segment`` (a stretch of the test split). Here 40 s of the
# test running, POYO and the Bayesian decoder against the truth:

def predictions(folder):
    path = work / "reports" / folder / "predictions" / recording / "position.csv"
    return np.genfromtxt(path, delimiter=",", names=True)


poyo, bayes = predictions("poyo"), predictions("bayes")
start = poyo["timestamp"][0]
fig, ax = plt.subplots(figsize=(9, 3.2))
for table, name, color in ((poyo, "POYO", "tab:orange"), (bayes, "Bayes", "tab:blue")):
    shown = table["timestamp"] < start + 40.0
    ax.plot(table["timestamp"][shown], table["pred_position_0"][shown], ".", ms=2, color=color, label=name)
shown = poyo["timestamp"] < start + 40.0
ax.plot(poyo["timestamp"][shown], poyo["true_position_0"][shown], color="black", lw=1, label="true")
ax.set_xlabel("time (s)")
ax.set_ylabel("position (cm)")
ax.legend(fontsize=8, loc="upper right", ncol=3)
fig.tight_layout()

# %%
# With your own file
# ------------------
#
# The commands, as you would type them::
#
#     neuropoyo prepare nwb session.nwb --out data
#     neuropoyo inspect data
#     neuropoyo train --data data --out run --readout position
#     neuropoyo evaluate --model run --data data --out reports/poyo --eval-intervals run
#     neuropoyo baselines --data data --out reports --readout position --methods wiener mlp gru bayes --eval-intervals run
#     neuropoyo compare reports --out comparison
#
# The position may be 1-D (a linearized track) or 2-D (x, y in pixels, as in the real file); the
# Bayesian decoder takes either. The numbers above come from a short run on a small simulated
# session and one seed; :doc:`/results` has the figures measured on ``nelpy_linear_track.nwb``
# with longer training, several seeds and the window-matched baselines
# (``benchmarks/place_cells.py``). Epochs with other names, or a tags column only, work the same way
# (``--eval-intervals`` takes any interval name ``inspect`` lists); a file whose position was
# recorded elsewhere: ``--behavior-location`` (:doc:`/how-to/import-data`).
