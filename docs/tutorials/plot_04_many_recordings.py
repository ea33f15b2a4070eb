"""
One model on many recordings, and torchrun
==========================================

POYO is built to learn from many recordings at once: every unit and every session has its own
embedding, and the rest of the network is shared. This tutorial trains one model on four
simulated recordings of two animals and two tasks, described by a dataset file, scores it per
recording, then runs the same training on two processes with ``torchrun``.
"""

# %%
# Running commands from Python
# ----------------------------
#
# Each command runs through ``run``, a small helper that does what typing the command in a
# terminal does: it prints the command after a ``$``, then everything the program printed, and
# stops with an error if the command fails. A progress bar redraws its line many times; ``run``
# keeps its last drawing, as a terminal shows it. ``torchrun`` is run as
# ``python -m torch.distributed.run``, the same program.

import csv
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.patches import Patch


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
# Four recordings, two tasks
# --------------------------
#
# Two animals from two labs, each recorded in a center-out session (40 trials) and a
# random-target session (120 s of continuous reaching). The two labs sample the hand at
# different rates (100 Hz and 500 Hz); the model reads behavior at whatever timestamps a
# recording has.

run("neuropoyo simulate --out data --animals 2 --days 1 --tasks center_out random_target --trials 40 --duration-s 120")

# %%
# A dataset file
# --------------
#
# ``--data`` takes recording files, folders and quoted globs; when sources need settings of their
# own, a dataset file lists them. Each source names its recordings (relative to the file's folder)
# and its options: the streams it decodes (``readouts``), its normalisation, loss weights of named
# intervals, which samples are scored (``evaluation_intervals``) and how often it is sampled
# (``weight``). Here the center-out sessions, shorter than the random-target ones, get twice their
# share of training windows. Every option: :doc:`/how-to/dataset-files` and
# :doc:`/reference/config`.

dataset = """\
sources:
  - recordings: data/*_co.h5    # the center-out sessions
    weight: 2.0                 # twice their share of training windows
  - recordings: data/*_rt.h5    # the random-target sessions, default options
"""
with open(work / "dataset.yaml", "w") as f:
    f.write(dataset)

# %%
# ``neuropoyo validate`` checks every file of a dataset at once and reports every problem it
# finds (exit status 2 if a file cannot be used):

run("neuropoyo validate dataset.yaml")

# %%
# Train one model on the four
# ---------------------------
#
# The CPU recipe, shortened to 200 steps for this page (the recipe runs 900; drop ``--max-steps``
# for it). The first line names the recipe; from 2 recordings on, the recipe also lowers its
# learning rate to 4e-3, and that line says so. Each batch mixes windows of all four recordings, whatever
# their task, stream and sampling rate.

run("neuropoyo train --data dataset.yaml --out run --max-steps 200")

# %%
# ``run.json`` records the dataset with its options, so ``evaluate`` without ``--data`` scores
# the recordings the run trained on, with the same options:

run("neuropoyo evaluate --model run --out eval")

# %%
# R2 per recording
# ----------------

summary = json.loads((work / "eval/metrics.json").read_text())
names = list(summary["recordings"])
values = [summary["recordings"][name]["r2"] for name in names]
colors = ["tab:blue" if summary["recordings"][name]["task"] == "center_out" else "tab:green" for name in names]

fig, ax = plt.subplots(figsize=(7, 3.4))
bars = ax.barh(names, values, color=colors)
ax.bar_label(bars, fmt="%.3f", padding=2)
ax.set_xlim(0, 1)
ax.invert_yaxis()
ax.set_xlabel("test R2 (hand velocity)")
ax.set_title("One model, four recordings", fontsize=10)
ax.legend(handles=[Patch(color="tab:blue", label="center_out"), Patch(color="tab:green", label="random_target")],
          loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
fig.tight_layout()

# %%
# ``evaluate`` draws the same bars in ``eval/figures/r2_per_recording.png``. The numbers come from
# a 200-step run on short recordings; the demo's model, the same recipe at its full length on four
# recordings like these, scores higher (:doc:`/results`).
#
# Several processes with torchrun
# -------------------------------
#
# When ``torchrun`` starts ``neuropoyo train``, it trains with distributed data parallel: gloo
# on CPUs, NCCL on GPUs. ``training.batch_size`` stays the *global* batch, whatever the number of
# processes: every process draws the same windows, takes its share of each batch (balanced by
# token count, :doc:`/explanation/load-balancing`), and the gradients are summed, so a step on two
# processes is the one-process step up to the order of additions. Here, two processes on this
# machine's CPUs, for 20 steps:

run("torchrun --standalone --nproc-per-node 2 -m neuropoyo train --data dataset.yaml --out run-2 --max-steps 20")

# %%
# The banner about ``OMP_NUM_THREADS`` is torchrun's own; ``neuropoyo train`` then gives each
# process its share of the machine's cores. Only rank 0 prints, and only rank 0 writes the run
# directory: the models, the checkpoint, ``metrics.csv`` and ``run.json``, which records the number
# of processes. The run directory must be on storage every machine sees.

print("run-2:", ", ".join(sorted(p.name for p in (work / "run-2").iterdir())))
print("processes:", json.loads((work / "run-2/run.json").read_text())["processes"])

# %%
# Twenty steps only show that it runs: the validation R2 above means nothing yet. ``metrics.csv``
# logs, per step, the real input tokens of the whole batch (``tokens``), the padding fraction and
# each process's tokens (``rank_tokens``). Put next to the one-process run above, the first steps
# hold the same windows (the same token counts), cut into two shares of about equal cost; the
# padding falls, because each process pads only to the longest window of its own share. The losses
# differ from the first step on: with two processes, dropout draws other masks, and the two runs
# drift apart from there (without dropout they agree up to the order of additions).


def first_steps(run_dir, n=4):
    with open(work / run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))[:n]


for one, two in zip(first_steps("run"), first_steps("run-2")):
    print(f"step {one['step']}: tokens {one['tokens']} (1 process) / {two['tokens']} (2 processes: "
          f"{two['rank_tokens'].replace(' ', ' + ')}); padding {one['padding']} / {two['padding']}; "
          f"loss {float(one['loss']):.4f} / {float(two['loss']):.4f}")

# %%
# On several machines the same command runs on each, with ``--nnodes``, ``--node-rank`` and the
# address of the first machine instead of ``--standalone``; a distributed ``evaluate`` shares the
# windows among the processes and rank 0 writes the report. Details, and resuming with another
# number of processes: :doc:`/reference/cli`, :doc:`/how-to/gpu` and
# :doc:`/how-to/resume-and-failures`.
