"""
Adapt a model to a new recording with 20 labelled trials
========================================================

A model trained on some animals has never seen the neurons of a new one. POYO gives every unit
and every session a learned embedding, so a new recording can be decoded once its units are
*identified*: the new units and the new session get embedding rows of their own, learned by
gradient descent on a few labelled trials, while every other weight stays frozen (unit
identification, the paper's section 2.5).

This tutorial pretrains a small model on two simulated animals, adapts it to a third animal with
``neuropoyo finetune --mode unit-id --trials 20``, and compares it on that animal's test trials
with a POYO model trained from scratch on the same 20 trials and with a classic decoder, the
Wiener filter, fitted on the same 20 trials.
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

import matplotlib.pyplot as plt


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
# Three animals
# -------------
#
# One center-out session (40 trials) for each of three simulated animals. Each animal has its own
# neurons: nothing tells the model that a unit of ``sim_monkey2`` resembles one of the others.

run("neuropoyo simulate --out data --animals 3 --days 1 --tasks center_out --trials 40")

# %%
# Pretrain on two of them
# -----------------------
#
# ``sim_monkey2`` is left out. The model trains on the training splits of the other two
# recordings with the CPU recipe, here for only 150 steps to keep this page quick (the recipe
# runs 900; drop ``--max-steps`` for it).

run("neuropoyo train --data data/sim_monkey0_day0_co.h5 data/sim_monkey1_day0_co.h5 --out pretrained --max-steps 150")

# %%
# Unit identification on 20 trials of the new animal
# ---------------------------------------------------
#
# ``neuropoyo finetune`` adapts the model in ``pretrained`` to the new recording into a new run
# directory, ``adapted``. ``--mode unit-id`` (the default) learns only the new rows: one per unit
# of the new recording, one for its session (started at the mean of the trained sessions). The
# network and the old rows stay bit-identical, so the two pretraining animals decode exactly as
# before. ``--trials 20`` keeps only the first 20 trials of the new recording's training split;
# its validation and test splits stay whole, so the scores below are on the same test trials
# whatever the number of trials used. ``--max-steps 60`` shortens the default 600 steps.
#
# ``--mode full`` would train every weight as well, from the first step (see ``neuropoyo finetune
# --help`` and :doc:`/reference/cli`).

run("neuropoyo finetune --model pretrained --data data/sim_monkey2_day0_co.h5 --out adapted --mode unit-id --trials 20 --max-steps 60")
run("neuropoyo evaluate --model adapted --data data/sim_monkey2_day0_co.h5 --out reports/unit-id")

# %%
# The same 20 trials for the others
# ---------------------------------
#
# ``neuropoyo train`` takes whole training splits (``neuropoyo baselines`` has ``--trials`` of its
# own). To give the model from scratch and the classic decoder the same 20 trials, we write a copy
# of the new recording whose training split holds only its first 20 training trials (chosen by the
# function that ``finetune --trials`` uses); its validation and test splits are unchanged.

import neuropoyo
from neuropoyo.data.splits import first_trials

new = neuropoyo.read_recording(work / "data/sim_monkey2_day0_co.h5")
twenty = first_trials(new.splits["train"], new.trials, 20)
few = new.with_splits({**new.splits, "train": twenty})
neuropoyo.write_recordings([few], work / "new-20-trials")
print(f"training split: {new.splits['train'].total_duration():.1f} s -> {twenty.total_duration():.1f} s "
      f"({len(twenty)} trial spans); test split unchanged: {few.splits['test'] == new.splits['test']}")

# %%
# POYO from scratch on the 20 trials, for the same 60 steps as unit identification, scored on the
# same test trials of the full recording:

run("neuropoyo train --data new-20-trials --out scratch --max-steps 60")
run("neuropoyo evaluate --model scratch --data data/sim_monkey2_day0_co.h5 --out reports/scratch")

# %%
# And the Wiener filter (ridge regression on 200 ms of binned spike counts), fitted on the same 20
# trials and scored on the same test samples; its report goes to ``reports/wiener``. The MLP and
# the GRU take longer to fit: ``--methods wiener mlp gru`` for all three.

run("neuropoyo baselines --data new-20-trials --out reports --methods wiener")

# %%
# The comparison
# --------------

run("neuropoyo compare reports --out comparison")

labels = {"unit-id": "POYO pretrained\n+ unit identification", "scratch": "POYO from scratch", "wiener": "Wiener filter"}
r2 = {label: json.loads((work / "reports" / folder / "metrics.json").read_text())["mean_r2"] for folder, label in labels.items()}

fig, ax = plt.subplots(figsize=(5.5, 3.4))
bars = ax.bar(list(r2), list(r2.values()), color=["tab:orange", "tab:blue", "tab:green"])
ax.bar_label(bars, fmt="%.3f")
ax.set_ylabel("test R2 on the new animal")
ax.set_ylim(0, 1)
ax.set_title("20 labelled trials of sim_monkey2 (one seed, short runs)", fontsize=10)
fig.tight_layout()

# %%
# What to read into it
# --------------------
#
# All three were fitted on the same 20 trials and scored on the same test trials. The adapted
# model starts from a network that already decodes reaching and only has to place the new units;
# the model from scratch must learn everything from 20 trials. But this is one seed, short runs
# (150 pretraining steps, 60 adaptation steps) and small simulated data: a second seed or a few
# more steps move each score by several hundredths, and can change the order. With 100 steps each
# instead of 60 (same data, same pretrained model), the model from scratch scored 0.749 and unit
# identification 0.720 when this page was written. Measured transfer
# figures, with longer pretraining, several training-set sizes, a seen and an unseen animal and
# real recordings, are on :doc:`/results`.
#
# For a real comparison:
#
# - pretrain with the recipe's full length (drop ``--max-steps`` from ``train``) or longer, on
#   more recordings;
# - adapt with ``finetune``'s default 600 steps, and try ``--mode full``;
# - ``neuropoyo experiment transfer`` runs this whole comparison (POYO from scratch, MLP, GRU,
#   unit identification, full finetuning) for several training-set sizes and held-out animals,
#   and draws the paper's transfer figure (:doc:`/how-to/reproduce-paper`).
