"""
The demo, and what its output means
===================================

``neuropoyo demo`` is the shortest way to see POYO work: it simulates recordings, trains a small
model on them, scores it on held-out trials and compares it with two classic decoders, with no
download. This tutorial runs it, goes through everything it prints, then opens the files it wrote
and plots what the model predicted against the true hand velocity.

We run ``neuropoyo demo --quick``: shorter recordings and 350 training steps, about a minute and a
half on two CPU cores. It is a smoke run, so its scores are lower than the real ones. The full demo,
``neuropoyo demo`` (a few minutes on two cores), gives the figures reported on :doc:`/results`.
"""

# %%
# Running commands from Python
# ----------------------------
#
# The tutorials run each command through ``run``, a small helper that does what typing the
# command in a terminal does: it starts the program, prints the command after a ``$`` and then
# everything the program printed, and stops with an error if the command fails. You would type the
# same line in a shell. A progress bar redraws its line many times; ``run`` keeps its last drawing,
# as a terminal shows it.

import json
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
# Run the demo
# ------------
#
# ``--out demo`` keeps its files in the folder ``demo`` (by default the demo makes a new temporary
# folder and says where).

run("neuropoyo demo --quick --out demo")

# %%
# What it printed, part by part
# -----------------------------
#
# **The simulated recordings.** The demo simulates two animals (``sim_monkey0`` and
# ``sim_monkey1``), recorded by two labs (the *brainsets* ``sim_lab_a`` and ``sim_lab_b``), each in
# one center-out session (``_co``: reaches from the center to one of 8 targets, in trials) and one
# random-target session (``_rt``: continuous reaching, no trials). The simulator models motor
# cortex: units (neurons) whose firing depends nonlinearly on the hand's velocity and position,
# leading the movement by about 100 ms. For each recording the summary gives:
#
# - ``units``: the number of units, and how many never fire;
# - ``time``: the recorded time and the spans it lies in (the *domain*: a gap between spans is
#   neither silence nor behavior, and nothing treats it as data);
# - ``spikes``: their number and rates;
# - ``behavior``: each behavior stream with its samples, dimensions, rate and unit. The two labs
#   sample at different rates (100 Hz and 500 Hz): the model reads behavior at any timestamps;
# - ``trials``: the trial table and its columns (center-out only);
# - ``split``: the train / valid / test spans. Of a trialized recording, 20 % of the trials are
#   held out for test and 10 % for validation; a continuous one is cut into 10 blocks, 2 for test
#   and 1 for validation. Test and training spans never overlap;
# - ``interval``: named sub-intervals such as ``reach``, used to weight the loss and to choose
#   which samples are scored.
#
# **The recipe note.** ``config: runs/cpu-small, the default CPU recipe, for 4 recording(s), with
# lr 0.004 instead of 0.01`` says which settings train the model: ``runs/cpu-small`` is the CPU
# recipe, a small POYO (width 64, two self-attention blocks) and its training settings (see
# :doc:`/reference/presets` and :doc:`/explanation/training-recipe`). From 2 recordings on the
# recipe lowers its learning rate from 1e-2 to 4e-3, and the note says so.
#
# **Training.** The progress bar ends with the last loss (the mean squared error on z-scored hand
# velocity, weighted five times inside ``reach`` intervals), the learning rate (constant, then
# decaying over the last quarter of the steps) and ``best_valid_r2``: during training the model is
# scored on the validation split, and the best model on validation is kept in ``run/best``. The
# two lines after the bar say how long training took and where the models went: ``run/model`` is
# the last one, ``run/best`` the one ``evaluate`` uses.
#
# **POYO's R2 table.** One row per recording: the coefficient of determination R2 of the predicted
# hand velocity on the test split (1 is perfect, 0 is no better than predicting the mean), its two
# dimensions (x and y) and the number of test samples scored. Center-out recordings are scored on
# the reach periods of successful test trials, random-target ones on their whole test split. Below
# the rows, the mean and standard deviation per task, then the mean over recordings.
#
# **The classic decoders.** A Wiener filter (ridge regression on 200 ms of binned spike counts) and
# an MLP on the same inputs are fitted on each recording's training split and scored on exactly
# the same test samples as POYO (one line per fit). The GRU of ``neuropoyo baselines`` is left out
# of the demo to keep it short; :doc:`/how-to/baselines-and-comparison` runs all three.
#
# **The comparison.** Test R2 per method and task, mean +- std over the recordings, with the number
# of recordings in brackets and the best of each column in bold. The quick run trains for only
# 350 steps on short recordings, so the MLP can come out ahead here, and the demo's closing lines
# say so; in the full demo POYO is ahead on both tasks (:doc:`/results`).
#
# **Where the files went.** The last line names the folders; we open them next.

demo = work / "demo"
for folder in sorted(demo.iterdir()):
    print(f"demo/{folder.name}/:", ", ".join(sorted(p.name for p in folder.iterdir())))

# %%
# The files of a run
# ------------------
#
# - ``demo/data``: the four simulated recordings, one HDF5 file each (:doc:`/reference/file-formats`);
# - ``demo/run``: the run directory of the training (the model directories ``model`` and ``best``,
#   the ``checkpoint`` to resume from, ``metrics.csv`` with the loss of every step, and ``run.json``
#   with the resolved config and the data);
# - ``demo/eval``: POYO's evaluation report: ``metrics.json`` (the scores), ``predictions/`` (one
#   CSV per recording and stream: every scored test sample with its true and predicted values) and
#   ``figures/``;
# - ``demo/baselines``: one report of the same layout per classic decoder;
# - ``demo/comparison``: the comparison table as ``comparison.md`` and a bar chart.
#
# ``metrics.json`` holds the mean R2, per task, per stream, and per recording:

metrics = json.loads((demo / "eval" / "metrics.json").read_text())
print("mean test R2:", round(metrics["mean_r2"], 4))
for task, scores in metrics["tasks"].items():
    print(f"  {task}: {scores['mean_r2']:.4f} +- {scores['std_r2']:.4f} over {scores['n']} recordings")
for recording, record in metrics["recordings"].items():
    hand = record["streams"]["hand_vel"]
    print(f"  {recording}: R2 {hand['r2']:.4f} (x {hand['r2_per_dim'][0]:.4f}, y {hand['r2_per_dim'][1]:.4f}),"
          f" {hand['samples']} test samples in {hand['units']}")

# %%
# The same numbers for every method make a bar chart of test R2 by task:

methods = {"POYO": demo / "eval", "MLP": demo / "baselines" / "mlp", "Wiener filter": demo / "baselines" / "wiener"}
colors = {"POYO": "tab:orange", "MLP": "tab:blue", "Wiener filter": "tab:green"}
summaries = {name: json.loads((folder / "metrics.json").read_text()) for name, folder in methods.items()}
tasks = list(summaries["POYO"]["tasks"])

fig, ax = plt.subplots(figsize=(6, 3.2))
width = 0.8 / len(methods)
for i, (name, summary) in enumerate(summaries.items()):
    means = [summary["tasks"][task]["mean_r2"] for task in tasks]
    bars = ax.bar(np.arange(len(tasks)) + (i - 1) * width, means, width, label=name, color=colors[name])
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
ax.set_xticks(np.arange(len(tasks)), tasks)
ax.set_ylabel("test R2 (mean over recordings)")
ax.set_ylim(0, 1)
ax.set_title("Test R2 of the quick demo (a short run)")
ax.legend(loc="lower right", fontsize=8)
fig.tight_layout()

# %%
# True against predicted hand velocity
# ------------------------------------
#
# Each prediction file has one row per scored test sample: its ``timestamp`` (seconds), the true
# values ``true_hand_vel_0`` and ``_1`` (x and y, in m/s), the predicted ones ``pred_hand_vel_0``
# and ``_1``, and ``segment``, the test span the sample lies in. Here are the first seconds of the
# first test segment of one random-target recording, POYO and the MLP against the truth. POYO's
# predictions come from 1 s windows slid over the test split, each sample's predictions averaged
# over the windows that hold it (:doc:`/explanation/model`).


def read_predictions(folder, recording):
    """The columns of one prediction CSV, by name."""
    path = folder / "predictions" / recording / "hand_vel.csv"
    table = np.genfromtxt(path, delimiter=",", names=True)
    return {name: table[name] for name in table.dtype.names}


recording = "sim_monkey0_day0_rt"
poyo = read_predictions(demo / "eval", recording)
mlp = read_predictions(demo / "baselines" / "mlp", recording)
assert np.array_equal(poyo["timestamp"], mlp["timestamp"])  # the MLP was scored on the same samples
first = poyo["segment"] == poyo["segment"].min()
shown = first & (poyo["timestamp"] < poyo["timestamp"][first][0] + 6.0)  # 6 s of it
t = poyo["timestamp"][shown]

fig, axes = plt.subplots(2, 1, figsize=(7, 4.5), sharex=True)
for dim, ax in zip((0, 1), axes):
    ax.plot(t, poyo[f"true_hand_vel_{dim}"][shown], color="black", lw=1.6, label="true")
    ax.plot(t, poyo[f"pred_hand_vel_{dim}"][shown], color="tab:orange", lw=1.2, label="POYO")
    ax.plot(t, mlp[f"pred_hand_vel_{dim}"][shown], color="tab:blue", lw=1.0, ls="--", label="MLP")
    ax.set_ylabel(f"hand velocity {'xy'[dim]} (m/s)")
r2 = {name: summaries[name]["recordings"][recording]["r2"] for name in ("POYO", "MLP")}
axes[0].set_title(f"{recording}, 6 s of the test split (test R2: POYO {r2['POYO']:.2f}, MLP {r2['MLP']:.2f})",
                  fontsize=10)
axes[0].legend(loc="upper right", fontsize=8, ncol=3)
axes[1].set_xlabel("time in the recording (s)")
fig.tight_layout()

# %%
# Next steps
# ----------
#
# - Run ``neuropoyo demo`` without ``--quick`` for the comparison that counts (:doc:`/results`).
# - The next tutorial does the same with your own NWB file, one command at a time.
# - :doc:`/reference/cli` lists every command and flag.
