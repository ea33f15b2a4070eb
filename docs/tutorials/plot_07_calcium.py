"""
Calcium imaging: direction and running speed
============================================

Two-photon imaging records a population as dF/F traces of regions of interest (ROIs), one value
per ROI and frame, not as spike times. POYO reads them the way POYO+ does: each (ROI, frame) is one
token, the ROI's learned embedding joined with a learned projection of its value at that frame,
placed at the frame's time. The rest of the model is the same as for spikes, so one model can also
decode several tasks at once. Here it decodes two from one imaging session: a direction, one of 8
classes per trial (a classification task, scored by accuracy), and a running speed (a continuous
stream, scored by R2), and the classic decoders of each kind are fitted on the same trials.

The file should hold the dF/F traces as a ``RoiResponseSeries`` in ``processing/ophys/DfOverF``
(ROIs from its plane segmentation, named by a ``roi_name`` column if it has one), the behavior
series in ``processing/behavior`` and a trials table with the class of each trial in a column.
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
# The real files this tutorial is modelled on, the five ``park2024_*_v1_2p.nwb`` recordings of the
# project's real-data set (Park et al. 2025, eLife), are mouse V1 imaged at 16 Hz during drifting
# gratings: 18 to 74 ROIs, 128 trials of one of 8 grating directions (a ``direction`` column in
# degrees, with ``stimulus_onset_time`` and ``stimulus_offset_time``), and a pupil size and a running
# speed on the frames. They are not on the machine that built this page, so this step writes a file
# laid out the same way from a simulation instead.
#
# ``neuropoyo.simulate(..., modality="calcium")`` simulates a center-out reaching session (96
# trials, 8 targets) and images its neurons at 16 Hz: each neuron's spikes pass through a
# calcium indicator's kernel (fast rise, 0.7 s decay) and saturation, plus noise. We keep 40 ROIs,
# as many as a small field of view. The reach direction (in degrees, as the gratings' direction)
# plays the part of the direction, and the hand's speed, sampled on the frames, the part of the
# running speed. Each trial is labelled from its movement onset to its end, so ``onset`` and
# ``offset`` columns bound it. Importing NWB files needs the ``nwb`` extra:
# ``pip install 'neuropoyo[nwb]'``.

from pynwb import NWBHDF5IO, NWBFile, TimeSeries
from pynwb.file import Subject
from pynwb.ophys import DfOverF, ImageSegmentation, OpticalChannel

import neuropoyo

session = neuropoyo.simulate(
    animals=1, days=1, tasks=["center_out"], trials=96, seed=3, modality="calcium", frame_rate_hz=16.0
)[0]
traces = session.traces
n_rois = 40
frames, dff = traces.timestamps, traces.values[:, :n_rois]
velocity = session.behavior["hand_vel"]
speed = np.interp(frames, velocity.timestamps, np.linalg.norm(velocity.values, axis=1))

nwb = NWBFile(
    session_description="center_out",
    identifier="mouseA-fov1",
    session_start_time=datetime(2024, 8, 3, 10, 0, tzinfo=timezone.utc),
    subject=Subject(subject_id="mouseA", species="Mus musculus"),
)
plane = nwb.create_imaging_plane(
    name="plane", optical_channel=OpticalChannel(name="green", description="GCaMP", emission_lambda=520.0),
    description="layer 2/3", device=nwb.create_device(name="two-photon microscope"), excitation_lambda=920.0,
    imaging_rate=16.0, indicator="GCaMP6s", location="VISp",
)
ophys = nwb.create_processing_module("ophys", "two-photon imaging")
segmentation = ImageSegmentation()
ophys.add(segmentation)
rois = segmentation.create_plane_segmentation(name="PlaneSegmentation", description="ROIs", imaging_plane=plane)
rois.add_column("roi_name", "name of the ROI")
for k in range(n_rois):
    rois.add_roi(pixel_mask=[(k, k, 1.0)], roi_name=f"roi_{k:03d}")
dfoverf = DfOverF(name="DfOverF")
ophys.add(dfoverf)
dfoverf.create_roi_response_series(
    name="dff", data=dff, rois=rois.create_roi_table_region(region=list(range(n_rois)), description="all ROIs"),
    unit="a.u. (dF/F)", timestamps=frames,
)
behavior = nwb.create_processing_module("behavior", "behavior on the frames")
behavior.add(TimeSeries(name="running_speed", data=speed, unit="m/s", timestamps=frames))
nwb.add_trial_column("direction", "direction of the trial, degrees")
nwb.add_trial_column("onset_time", "start of the labelled span (s)")
nwb.add_trial_column("offset_time", "end of the labelled span (s)")
trials = session.trials
for i in range(len(trials)):
    nwb.add_trial(
        start_time=trials.start[i], stop_time=trials.end[i], direction=45.0 * trials.columns["target_id"][i],
        onset_time=trials.columns["move_onset_time"][i], offset_time=trials.end[i],
    )
with NWBHDF5IO(str(work / "lee2024_mouseA_fov1_2p.nwb"), "w") as io:
    io.write(nwb)
print(f"wrote lee2024_mouseA_fov1_2p.nwb: {n_rois} ROIs x {len(frames)} frames at 16 Hz, {len(trials)} trials")

# %%
# What the traces look like
# -------------------------
#
# Ten ROIs over the first 40 s, one line each, with the trials' labelled spans shaded and their
# direction written above. The traces are slow (the indicator integrates spikes over about a
# second) and noisy; some ROIs respond to some directions.

fig, ax = plt.subplots(figsize=(9, 4.2))
shown = frames < 40.0
for k in range(10):
    ax.plot(frames[shown], dff[shown, k] / 2 + k, lw=0.7, color="tab:green")
for i in np.flatnonzero(trials.columns["move_onset_time"] < 40.0):
    ax.axvspan(trials.columns["move_onset_time"][i], trials.end[i], color="0.9", zorder=0)
    ax.text(trials.columns["move_onset_time"][i], 10.1, f"{45 * trials.columns['target_id'][i]}°", fontsize=7)
ax.set_yticks(range(10), [f"roi_{k:03d}" for k in range(10)], fontsize=7)
ax.set_xlabel("time (s)")
ax.set_xlim(0, 40)
ax.set_title("dF/F of 10 ROIs (shaded: labelled spans, with their direction)", fontsize=10)
fig.tight_layout()

# %%
# Import the file
# ---------------
#
# ``neuropoyo prepare nwb`` reads the dF/F traces (``--traces`` names another series), the behavior
# series (here ``running_speed``, the only one) and the trials. ``--label`` makes a
# classification task from a trials-table column: ``direction=direction:onset_time:offset_time`` is a
# label stream ``direction`` holding each trial's ``direction`` as its class, sampled at 10 Hz from
# the trial's ``onset_time`` to its ``offset_time``; without ``:START:STOP`` it covers the whole
# trial. The splits then hold out whole trials, stratified by direction: 20 % of the trials for
# test and 10 % for validation. For a Park file, the same option reads
# ``--label direction=direction:stimulus_onset_time:stimulus_offset_time``.

run("neuropoyo prepare nwb lee2024_mouseA_fov1_2p.nwb --out data --label direction=direction:onset_time:offset_time")

# %%
# Check what was read
# -------------------
#
# ``neuropoyo inspect`` shows the traces (their kind, frames, ROIs and frame rate) in place of
# spikes, and the label stream with its classes next to the running speed.

run("neuropoyo inspect data")

# %%
# Train one model on both tasks
# -----------------------------
#
# ``--readout direction running_speed`` gives the model two readouts, one per stream: the label
# stream gets a classification head trained with cross-entropy, the running speed a continuous head
# trained with the mean squared error, both on the same latent tokens. Each ROI's trace is z-scored
# over the training frames. To keep this page quick we stop after 300 steps; real runs train
# longer (drop ``--max-steps`` for the recipe's 900 steps, or more).

run("neuropoyo train --data data --out run --readout direction running_speed --max-steps 300")

# %%
# Score on the test trials
# ------------------------
#
# ``neuropoyo evaluate`` scores each stream with its own metric. The model decodes a label at every
# sample of a trial; the trial's decision is the class with the highest mean log-probability over
# its samples, and the accuracy is the share of test trials decided right. Balanced accuracy
# averages the accuracy of each class, and chance is one in the number of classes. The running
# speed gets its R2.

run("neuropoyo evaluate --model run --data data --out reports/poyo")

# %%
# Classic decoders on the same trials
# -----------------------------------
#
# ``neuropoyo baselines`` fits, per recording, the classic decoders of the stream named by
# ``--readout``. For a label stream they are classifiers on binned traces (1 s of history in
# 100 ms bins): logistic regression and an MLP classifier, deciding each test trial the same way.
# For the running speed they are the Wiener filter, the MLP and the GRU (here the first two; the GRU
# takes longer). The two tasks go to two folders, since both have an ``mlp``.

run("neuropoyo baselines --data data --out reports/direction --readout direction")
run("neuropoyo baselines --data data --out reports/speed --readout running_speed --methods wiener mlp")

# %%
# The tables
# ----------
#
# ``neuropoyo compare`` prints an accuracy table for the label streams next to the R2 table of the
# continuous ones. One comparison per task:

run("neuropoyo compare reports/poyo reports/direction")
run("neuropoyo compare reports/poyo reports/speed")

# %%
# The same scores in a figure
# ---------------------------
#
# Each ``metrics.json`` holds, per recording and stream, its scores: ``accuracy``,
# ``balanced_accuracy`` and ``chance`` for a label stream, ``r2`` for a continuous one.

recording = "lee2024_mouseA_fov1_2p"


def score(folder, stream, metric):
    summary = json.loads((work / "reports" / folder / "metrics.json").read_text())
    return summary["recordings"][recording]["streams"][stream][metric]


accuracy = {
    "POYO": score("poyo", "direction", "accuracy"),
    "logistic\nregression": score("direction/logistic", "direction", "accuracy"),
    "MLP\nclassifier": score("direction/mlp", "direction", "accuracy"),
}
r2 = {
    "POYO": score("poyo", "running_speed", "r2"),
    "Wiener\nfilter": score("speed/wiener", "running_speed", "r2"),
    "MLP": score("speed/mlp", "running_speed", "r2"),
}
chance = score("poyo", "direction", "chance")

fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.4))
bars = left.bar(list(accuracy), list(accuracy.values()), color=["tab:orange", "tab:blue", "tab:green"])
left.bar_label(bars, fmt="%.2f", fontsize=8)
left.axhline(chance, color="black", ls="--", lw=1)
left.text(2.45, chance + 0.02, "chance", ha="right", fontsize=8)
left.set_ylim(0, 1)
left.set_ylabel("test accuracy (trials)")
left.set_title("direction, 8 classes", fontsize=10)
bars = right.bar(list(r2), list(r2.values()), color=["tab:orange", "tab:purple", "tab:green"])
right.bar_label(bars, fmt="%.2f", fontsize=8)
right.set_ylim(min(0, *r2.values()), 1)
right.set_ylabel("test R2")
right.set_title("running speed", fontsize=10)
fig.tight_layout()

# %%
# Which direction each test trial got
# -----------------------------------
#
# ``reports/poyo/predictions/<recording>/direction.csv`` has one row per scored label sample: its
# time, the true class, the model's probability of each class, and its ``segment`` (the trial).
# ``pooled_decisions`` pools the rows of each trial as ``evaluate`` does (the class of highest mean
# log-probability), one decision per test trial; the confusion matrix counts them.

table = np.genfromtxt(
    work / f"reports/poyo/predictions/{recording}/direction.csv", delimiter=",", names=True, dtype=None, encoding="utf-8"
)
print("columns:", ", ".join(table.dtype.names))
from neuropoyo.evaluation.metrics import pooled_decisions

logits = np.stack([table[f"logit_direction_{k}"] for k in range(8)], axis=1)
decided, first = pooled_decisions(logits, table["trial"])  # one decision per trial, as evaluate
confusion = np.zeros((8, 8), dtype=int)
np.add.at(confusion, (table["true_direction_0"][first].astype(int), decided), 1)
print(f"{confusion.sum()} test trials, {np.trace(confusion)} decided right")

fig, ax = plt.subplots(figsize=(4, 3.6))
ax.imshow(confusion, cmap="Blues")
for (i, j), n in np.ndenumerate(confusion):
    if n:
        ax.text(j, i, str(n), ha="center", va="center", fontsize=8)
ticks = [f"{45 * k}°" for k in range(8)]
ax.set_xticks(range(8), ticks, fontsize=7)
ax.set_yticks(range(8), ticks, fontsize=7)
ax.set_xlabel("decided direction")
ax.set_ylabel("true direction")
ax.set_title("POYO, test trials", fontsize=10)
fig.tight_layout()

# %%
# Reading the numbers
# -------------------
#
# This page trains for 300 steps on one small simulated session, with one seed, and the test
# split holds about twenty trials, so one trial moves the accuracy by five points. On such small
# single sessions the classifiers on binned traces are strong: on a simulated session of 160 trials
# (40 ROIs at 16 Hz), POYO with the full CPU recipe (900 steps) reached a test accuracy of 0.67
# (mean of 3 seeds; 0.53 to 0.73) against 0.73 for the logistic regression and 0.77 for the MLP
# classifier, and on the real Park et al. files POYO has not yet matched them (:doc:`/results`).
# What POYO brings is one model for many sessions and animals, and unit identification of a new
# session's ROIs (:doc:`/auto_tutorials/plot_03_adapt`).
#
# With your own files
# -------------------
#
# The commands, as you would type them::
#
#     neuropoyo prepare nwb *.nwb --out data --label direction=direction:stimulus_onset_time:stimulus_offset_time
#     neuropoyo inspect data
#     neuropoyo train --data data --out run --readout direction running_speed
#     neuropoyo evaluate --model run --data data --out reports/poyo
#     neuropoyo baselines --data data --out reports/direction --readout direction
#     neuropoyo baselines --data data --out reports/speed --readout running_speed
#     neuropoyo compare reports/poyo reports/direction
#
# Several files train one model (their ROIs each get their own embedding); a file with spikes and
# one with traces can be in the same run. ``--traces`` picks a series other than ``DfOverF``
# (``--traces none`` reads only the units table); :doc:`/how-to/import-data` lists the options.
