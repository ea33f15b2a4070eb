"""Linear vs nonlinear decoding of hand velocity on simulated sessions.

The simulator is meant to be hard enough that a linear decoder is clearly beaten by a nonlinear one.
For one center-out and one random-target session this bins spikes at 20 ms, stacks 10 bins of causal
history (200 ms), trains on the first 80% of each session's time and reports the test R2 of hand
velocity for ridge regression and a small MLP trained on the same features.

Run: python benchmarks/simulator_decoders.py
"""

from __future__ import annotations

import time

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score

from neuropoyo.data.simulate import LABS, make_animal, simulate_session

BIN_S = 0.02
HISTORY = 10
TEST_FRACTION = 0.2
SEED = 0


def bin_recording(recording) -> tuple[np.ndarray, np.ndarray]:
    """Features (B, U * HISTORY) of spike counts in the last HISTORY bins and hand velocity (B, 2)
    at each bin's end. History never crosses a gap; bins are in time order."""
    n_units = len(recording.units)
    vel = recording.behavior["hand_vel"]
    features, targets = [], []
    for start, end in zip(recording.domain.start, recording.domain.end):
        n_bins = int((end - start) // BIN_S)
        spikes = recording.spikes.slice(start, start + n_bins * BIN_S)
        flat = spikes.unit_index * n_bins + (spikes.times // BIN_S).astype(np.int64)
        counts = np.bincount(flat, minlength=n_units * n_bins).reshape(n_units, n_bins)
        windows = sliding_window_view(counts, HISTORY, axis=1)  # (U, B, HISTORY)
        features.append(windows.transpose(1, 0, 2).reshape(-1, n_units * HISTORY))
        t = start + BIN_S * np.arange(HISTORY, n_bins + 1)
        targets.append(np.stack([np.interp(t, vel.timestamps, v) for v in vel.values.T], 1))
    return np.concatenate(features).astype(np.float32), np.concatenate(targets).astype(np.float32)


def split(x: np.ndarray, y: np.ndarray):
    """First 80% of bins for training, the last 20% for testing; features standardized on train."""
    cut = int(len(x) * (1 - TEST_FRACTION))
    mean, std = x[:cut].mean(0), x[:cut].std(0) + 1e-3
    x = (x - mean) / std
    return x[:cut], y[:cut], x[cut:], y[cut:]


def ridge_r2(x_train, y_train, x_test, y_test) -> float:
    model = RidgeCV(alphas=np.logspace(-1, 5, 13)).fit(x_train, y_train)
    return r2_score(y_test, model.predict(x_test))


def mlp_r2(x_train, y_train, x_test, y_test, epochs: int = 30) -> float:
    """A 2-hidden-layer MLP (256 units, dropout 0.2, Adam); keeps the epoch with the best
    validation R2 on the last 10% of the training bins."""
    torch.manual_seed(SEED)
    cut = int(len(x_train) * 0.9)
    scale = y_train[:cut].std(0)
    xt, yt = torch.from_numpy(x_train[:cut]), torch.from_numpy(y_train[:cut] / scale)
    xv = torch.from_numpy(x_train[cut:])
    model = torch.nn.Sequential(
        torch.nn.Linear(x_train.shape[1], 256),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(256, 256),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(256, 2),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    best, best_state = -np.inf, None
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(xt)).split(256):
            loss = torch.nn.functional.mse_loss(model(xt[batch]), yt[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            score = r2_score(y_train[cut:], model(xv).numpy() * scale)
        if score > best:
            best, best_state = score, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    with torch.no_grad():
        return r2_score(y_test, model(torch.from_numpy(x_test)).numpy() * scale)


def main() -> None:
    animal = make_animal("sim_monkey0", n_neurons=150, seed=SEED)
    common = dict(animal=animal, day=0, lab=LABS[0])
    sessions = [
        simulate_session(**common, task="center_out", n_trials=200, seed=1),
        simulate_session(**common, task="random_target", duration_s=900.0, seed=2),
    ]
    print("command: python benchmarks/simulator_decoders.py")
    print(f"{BIN_S * 1000:.0f} ms bins x {HISTORY} of history; train on the first 80% of each")
    print("session, test on the last 20%; R2 of hand velocity (x and y averaged)\n")
    header = ("session", "units", "test bins", "ridge R2", "MLP R2", "seconds")
    print(f"{header[0]:<22}" + "".join(f"{h:>10}" for h in header[1:]))
    for recording in sessions:
        start = time.perf_counter()
        data = split(*bin_recording(recording))
        linear, nonlinear = ridge_r2(*data), mlp_r2(*data)
        print(
            f"{recording.recording_id:<22}{len(recording.units):>10}{len(data[2]):>10}"
            f"{linear:>10.3f}{nonlinear:>10.3f}{time.perf_counter() - start:>10.1f}"
        )


if __name__ == "__main__":
    main()
