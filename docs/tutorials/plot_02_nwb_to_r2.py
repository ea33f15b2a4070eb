"""
Your NWB file to an R2 table
============================

From one NWB file to a trained POYO model, its test R2, and the same table for classic decoders
on the same test samples: six commands. The file should be laid out as in the Neural Latents
Benchmark: a units table with spike times, the hand velocity ``hand_vel`` in
``processing/behavior``, and a trials table with a ``move_onset_time`` column.

Your file is not on the machine that built this page, so the first step writes a small NWB file
from a simulated recording. With your own file, skip that step and start at
`Import the file`_.
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
from pathlib import Path
from datetime import datetime, timezone

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
# This step only exists because your file is not here. It simulates one center-out session (40
# trials of reaching to one of 8 targets) and writes it with ``pynwb`` the way NLB files are
# laid out: units with their spike times, names, brain areas and the spans they were observed in
# (``obs_intervals``); ``hand_vel`` (m/s) with its timestamps in a ``behavior`` processing module;
# the trials with their target, movement onset and success. Importing NWB files needs the ``nwb``
# extra: ``pip install 'neuropoyo[nwb]'``.

from pynwb import NWBHDF5IO, NWBFile, TimeSeries
from pynwb.file import Subject

import neuropoyo

session = neuropoyo.simulate(animals=1, days=1, tasks=["center_out"], trials=40, seed=3)[0]
observed = np.stack([session.domain.start, session.domain.end], axis=1)  # the recorded spans

nwb = NWBFile(
    session_description="center_out",
    identifier="monkeyA-day1",
    session_start_time=datetime(2024, 5, 14, 9, 30, tzinfo=timezone.utc),
    subject=Subject(subject_id="monkeyA", species="Macaca mulatta"),
)
nwb.add_unit_column("unit_name", "name of the unit")
nwb.add_unit_column("brain_area", "where the unit was recorded")
spikes = session.spikes
for unit, area in enumerate(session.units.columns["area"]):
    nwb.add_unit(
        spike_times=spikes.times[spikes.unit_index == unit], obs_intervals=observed,
        unit_name=f"unit{unit:03d}", brain_area=str(area),
    )
velocity = session.behavior["hand_vel"]
behavior = nwb.create_processing_module("behavior", "hand kinematics")
behavior.add(TimeSeries(name="hand_vel", data=velocity.values, unit="m/s", timestamps=velocity.timestamps))
nwb.add_trial_column("target_dir", "target, one of 8 directions")
nwb.add_trial_column("move_onset_time", "movement onset (s)")
nwb.add_trial_column("success", "whether the trial succeeded")
trials = session.trials
for i in range(len(trials)):
    nwb.add_trial(
        start_time=trials.start[i], stop_time=trials.end[i], target_dir=int(trials.columns["target_id"][i]),
        move_onset_time=trials.columns["move_onset_time"][i], success=bool(trials.columns["success"][i]),
    )
with NWBHDF5IO(str(work / "jones2024_monkeyA_day1.nwb"), "w") as io:
    io.write(nwb)
print("wrote jones2024_monkeyA_day1.nwb:", len(session.units), "units,", len(trials), "trials")

# %%
# Import the file
# ---------------
#
# ``neuropoyo prepare nwb`` reads the file and writes one recording file per session to
# ``--out``, its name taken from the file name. The lab (*brainset*) is the file name's first
# ``_``-separated word, here ``jones2024``. ``--task`` names the task: it decides which samples
# are scored (for ``center_out``, the reach periods of successful trials). On the way it assigns
# the train / valid / test splits: 20 % of the trials for test and 10 % for validation,
# stratified by ``target_dir``. Behavior stored elsewhere, other series, angles (head
# direction) and files that need repairs: :doc:`/how-to/import-data`.

run("neuropoyo prepare nwb jones2024_monkeyA_day1.nwb --out data --task center_out")

# %%
# Check what was read
# -------------------
#
# ``neuropoyo inspect`` validates recording files and summarises each: units (and how many never
# fire), the recorded time and its spans, spikes, each behavior stream with its rate and unit, the
# trials with their columns, the splits, and the named intervals (``reach``: from movement onset to
# the trial's end). Check here that the units, the rates and the trial count are what you expect.

run("neuropoyo inspect data")

# %%
# Train
# -----
#
# ``neuropoyo train`` trains POYO on the training split into the run directory ``run``. Without
# ``--config`` it uses the CPU recipe, ``runs/cpu-small`` (it says so). To keep this page quick we
# stop after 150 steps; the recipe's own length is 900 steps (drop ``--max-steps`` for it), one to
# two and a half minutes per recording on two CPU cores, and scores higher.

run("neuropoyo train --data data --out run --max-steps 150")

# %%
# Score on the test split
# -----------------------
#
# ``neuropoyo evaluate`` scores the run's best model on validation on the test split and writes a
# report: ``metrics.json``, the predictions and figures. We write it to ``reports/poyo``.

run("neuropoyo evaluate --model run --data data --out reports/poyo")

# %%
# Classic decoders on the same samples
# ------------------------------------
#
# ``neuropoyo baselines`` fits classic decoders on the same training split and scores them on
# exactly the test samples that ``evaluate`` scored: here the Wiener filter and the MLP (the GRU,
# also in the default set, takes longer). Each method's report goes to its own folder inside
# ``--out``: ``reports/wiener`` and ``reports/mlp``. See :doc:`/how-to/baselines-and-comparison`.

run("neuropoyo baselines --data data --out reports --methods wiener mlp")

# %%
# The R2 table
# ------------
#
# ``neuropoyo compare`` reads the ``metrics.json`` of evaluation folders; a folder whose subfolders
# hold reports, like ``reports``, gives one method per subfolder, named after it. Rows are methods,
# columns are tasks, cells are mean +- std of test R2 over the recordings (one here) with their
# number in brackets; the best of each column is in bold. ``--out`` also writes ``comparison.md``
# and a bar chart.

run("neuropoyo compare reports --out comparison")

# %%
# The same scores in a figure
# ---------------------------
#
# Each ``metrics.json`` holds, per recording and stream, the R2 and its value per dimension. Here
# they are side by side: x and y of the hand velocity, per method.

recording = "jones2024_monkeyA_day1"
methods = {"POYO": "poyo", "Wiener filter": "wiener", "MLP": "mlp"}
scores = {}
for name, folder in methods.items():
    summary = json.loads((work / "reports" / folder / "metrics.json").read_text())
    scores[name] = summary["recordings"][recording]["streams"]["hand_vel"]["r2_per_dim"]

fig, ax = plt.subplots(figsize=(5.5, 3.2))
for i, (name, per_dim) in enumerate(scores.items()):
    bars = ax.bar(np.arange(2) + (i - 1) * 0.26, per_dim, 0.26, label=name)
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
ax.set_xticks([0, 1], ["hand velocity x", "hand velocity y"])
ax.set_ylabel("test R2")
ax.set_ylim(0, 1)
ax.set_title(f"Test R2 on {recording}", fontsize=10)
ax.legend(loc="lower right", fontsize=8)
fig.tight_layout()

# %%
# And the predictions themselves
# ------------------------------
#
# ``reports/poyo/predictions/<recording>/hand_vel.csv`` has one row per scored sample: its time,
# the true and predicted values, and its ``segment`` (here, one test trial's reach). Six test
# reaches, one after the other (``evaluate`` also draws this figure itself, in
# ``reports/poyo/figures/traces/``):

table = np.genfromtxt(work / f"reports/poyo/predictions/{recording}/hand_vel.csv", delimiter=",", names=True)
fig, axes = plt.subplots(2, 6, figsize=(9, 3.8), sharey="row")
for column, segment in enumerate(np.unique(table["segment"])[:6]):
    rows = table[table["segment"] == segment]
    t = rows["timestamp"] - rows["timestamp"][0]
    for dim in (0, 1):
        ax = axes[dim, column]
        ax.plot(t, rows[f"true_hand_vel_{dim}"], color="black", lw=1.5, label="true")
        ax.plot(t, rows[f"pred_hand_vel_{dim}"], color="tab:orange", lw=1.2, label="POYO")
        ax.set_xlabel("s" if dim else "")
    axes[0, column].set_title(f"reach {column + 1}", fontsize=9)
axes[0, 0].set_ylabel("x (m/s)")
axes[1, 0].set_ylabel("y (m/s)")
axes[0, 0].legend(fontsize=7, loc="upper left")
fig.tight_layout()

# %%
# With your own file
# ------------------
#
# The six commands, as you would type them::
#
#     neuropoyo prepare nwb session.nwb --out data --task center_out
#     neuropoyo inspect data
#     neuropoyo train --data data --out run
#     neuropoyo evaluate --model run --data data --out reports/poyo
#     neuropoyo baselines --data data --out reports
#     neuropoyo compare reports --out comparison
#
# Without ``--max-steps`` the training runs the recipe's 900 steps; ``baselines`` without
# ``--methods`` fits all three classic decoders. The numbers above come from a short run on a
# small simulated session; :doc:`/results` has the figures measured on real recordings with the
# full recipe. Several files at once: give ``prepare nwb`` all of them, and one model trains on
# all their recordings (:doc:`/how-to/dataset-files`). On a GPU: :doc:`/how-to/gpu`.
