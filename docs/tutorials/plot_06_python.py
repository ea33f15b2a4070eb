"""
The same in Python, in a notebook
=================================

Every ``neuropoyo`` command is one call of the Python API, and in Python the recordings can stay
in memory: no files to write or keep track of. ``neuropoyo.Decoder`` wraps POYO as an estimator
with the shape of a scikit-learn one: ``fit``, ``score``, ``predict``, ``adapt`` to a new
recording, ``save`` and ``load``.

This tutorial simulates four recordings (two animals, two days each), fits one decoder on three of
them, scores it and plots its predictions, adapts it to the fourth with 20 labelled trials, and
saves and loads it. Run it cell by cell in a notebook (the link at the foot of the page downloads
it as one).
"""

# %%
# Recordings in memory
# --------------------
#
# ``neuropoyo.simulate`` returns ``neuropoyo.Recording`` objects with their train /
# valid / test splits assigned (seeded: the same arguments give the same recordings). Each holds
# the spike times with the unit that fired, the unit table, the behavior streams (``hand_vel`` and
# ``hand_pos``), the trials, named intervals such as ``reach``, and its metadata.

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

import neuropoyo

# The files this tutorial writes (the saved model) go to a new temporary folder, ``work``.
work = Path(tempfile.mkdtemp(prefix="neuropoyo-tutorial-"))

recordings = neuropoyo.simulate(animals=2, days=2, tasks=["center_out"], trials=40)
for recording in recordings:
    print(recording)
known, new = recordings[:3], recordings[3]  # the 4th: animal 1 on its second day

# %%
# Your own data come in the same way: ``neuropoyo.Recording.from_arrays(...)`` from spike times,
# unit ids, behavior and trials; ``neuropoyo.from_pynapple(...)`` from pynapple objects;
# ``neuropoyo.prepare_nwb(...)`` from NWB files (:doc:`/how-to/import-data`).
#
# Fit
# ---
#
# ``Decoder()`` takes the CPU recipe, ``runs/cpu-small`` (a run file or preset name, or a
# ``RunConfig``, chooses another; see :doc:`/reference/presets`). Here it is shortened to 200
# steps so that this page runs quickly; leave ``max_steps`` out for the recipe's 900, which scores
# higher. ``fit`` trains in a temporary run directory (``fit(known, out="run")`` keeps it);
# ``log=print`` prints the recipe's note. ``progress=False`` hides the progress bar on this page;
# in a notebook, leave it out to see one.

decoder = neuropoyo.Decoder(max_steps=200, progress=False)
decoder.fit(known, log=print)
print(decoder)

# %%
# Score
# -----
#
# ``score`` returns what ``neuropoyo evaluate`` writes to ``metrics.json``: the mean test R2, and
# R2 per task, per stream and per recording (with its value per dimension).

scores = decoder.score(known)
print("mean test R2:", round(scores["mean_r2"], 4))
for recording_id, record in scores["recordings"].items():
    print(f"  {recording_id}: {record['r2']:.4f}  (x, y: "
          f"{', '.join(f'{v:.4f}' for v in record['streams']['hand_vel']['r2_per_dim'])})")

# %%
# Predict
# -------
#
# ``predict`` decodes a whole recording: ``{stream: (timestamps, values)}`` at the recording's
# own behavior timestamps (inside its recorded spans), in the stream's units. Here we keep the
# samples of the first test trials and put them next to the true hand velocity; the shaded part of
# each trial is its ``reach`` interval.

recording = known[1]
times, predicted = decoder.predict(recording)["hand_vel"]
print(predicted.shape, "predictions from", times[0], "to", times[-1], "s")

stream = recording.behavior["hand_vel"]
true = stream.values[np.searchsorted(stream.timestamps, times)]  # the same samples

test, reach = recording.splits["test"], recording.intervals["reach"]
fig, axes = plt.subplots(2, 4, figsize=(9, 4), sharey="row")
for column in range(4):
    first, last = test.start[column], test.end[column]  # one test trial
    inside = (times >= first) & (times < last)
    t = times[inside] - first
    for dim in (0, 1):
        for start, end in zip(reach.start, reach.end):
            if start < last and end > first:
                axes[dim, column].axvspan(max(start, first) - first, min(end, last) - first, color="0.9")
        axes[dim, column].plot(t, true[inside, dim], color="black", lw=1.5, label="true")
        axes[dim, column].plot(t, predicted[inside, dim], color="tab:orange", lw=1.2, label="predicted")
    axes[0, column].set_title(f"test trial {column + 1}", fontsize=9)
    axes[1, column].set_xlabel("s from trial start")
axes[0, 0].set_ylabel("x (m/s)")
axes[1, 0].set_ylabel("y (m/s)")
axes[0, 0].legend(fontsize=7)
fig.suptitle(f"{recording.recording_id}: hand velocity on held-out trials", fontsize=10)
fig.tight_layout()

# %%
# ``score`` counts only the reach periods of successful test trials (the center-out task's
# evaluation intervals, :doc:`/how-to/evaluation-intervals`), and training weighs them five times
# the rest; ``predict`` returns every sample, the hold before the reach and the return to the
# center after it included, where this short run decodes less well.
#
# Adapt to a new recording
# ------------------------
#
# The fourth recording is animal 1 on another day: some of its units are new, and the session is
# new. ``adapt`` returns a new decoder (this one is left as it is) in which the new units and the
# new session have learned their embedding rows from the first 20 training trials, every other
# weight frozen: unit identification. ``mode="full"`` would go on to finetune every weight. 60
# steps here; the default is 600.

adapted = decoder.adapt(new, trials=20, max_steps=60)
print("test R2 on the new recording:", round(adapted.score(new)["mean_r2"], 4))
print("test R2 on the first three, unchanged:", round(adapted.score(known)["mean_r2"], 4))

# %%
# Unit identification leaves the old rows and the network bit-identical, so the first three
# recordings decode exactly as before.
#
# Save and load
# -------------
#
# ``save`` writes a model directory (weights as safetensors, config, unit and session
# vocabularies, behavior normaliser; :doc:`/reference/file-formats`); ``Decoder.load`` reads it
# back, as does ``neuropoyo evaluate --model``. Loading runs no code from the files.

path = adapted.save(work / "adapted-model")
print("saved:", sorted(p.name for p in path.iterdir()))
loaded = neuropoyo.Decoder.load(work / "adapted-model")
same = np.array_equal(loaded.predict(new)["hand_vel"][1], adapted.predict(new)["hand_vel"][1])
print("the loaded model predicts the same values:", same)

# %%
# The numbers above come from short runs (200 and 60 steps) on small simulated recordings; with
# the recipe's full length the scores are higher (:doc:`/results`). Each method's arguments:
# :doc:`/reference/api`. Every call has a command of the same name (``neuropoyo train``,
# ``evaluate``, ``finetune``, ...; :doc:`/reference/cli`), and the names are the same in both
# (:doc:`/reference/glossary`).
