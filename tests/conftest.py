"""Shared fixtures: a small hand-built recording whose every value is known."""

from __future__ import annotations

import os
import tempfile
import zlib

import numpy as np
import pytest

from neuropoyo.data import (
    Intervals,
    Recording,
    RecordingInfo,
    Spikes,
    TimeSeries,
    Units,
)


def pytest_configure(config):
    """Under pytest-xdist (``-n N``) each worker keeps to its own cores: torch and every process a
    test starts take their threads from the cores they may run on (``distributed.cores``), and
    workers sharing all the cores would each take them all (two 2-thread trainings on 2 cores ran
    14x slower than one)."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if not worker or not count or not hasattr(os, "sched_setaffinity"):
        return
    cores, count = sorted(os.sched_getaffinity(0)), int(count)
    if len(cores) >= count:
        import torch

        index = int(worker.removeprefix("gw"))
        mine = cores[index * len(cores) // count : (index + 1) * len(cores) // count]
        os.sched_setaffinity(0, mine)
        torch.set_num_threads(len(mine))


@pytest.fixture(autouse=True, scope="session")
def _temporary_folders_under_pytests_own(tmp_path_factory):
    """Folders the library makes with ``tempfile`` (``Decoder.fit`` without ``out``, the
    tutorials) and those of the processes tests start land in pytest's temporary folder, which
    pytest prunes, not in the system's."""
    folder = str(tmp_path_factory.mktemp("tempfile"))
    before = os.environ.get("TMPDIR")
    tempfile.tempdir, os.environ["TMPDIR"] = folder, folder
    yield
    tempfile.tempdir = None
    if before is None:
        os.environ.pop("TMPDIR")
    else:
        os.environ["TMPDIR"] = before


@pytest.fixture(autouse=True)
def _same_random_state_whatever_ran_before(request):
    """Each test starts torch's and NumPy's global generators from a seed of its own name, so
    its result does not depend on which tests its process ran before it (pytest-xdist hands
    tests to workers in no fixed order). Tests that draw a fresh seed on purpose still do."""
    import torch

    seed = zlib.crc32(request.node.nodeid.encode())
    torch.manual_seed(seed)
    np.random.seed(seed)


def build_recording(seed: int = 0, *, duration: float = 20.0, n_units: int = 5) -> Recording:
    """A 20 s recording with a gap at [9, 11), 5 units (one silent), two behavior streams,
    6 trials with columns and 'reach' sub-intervals."""
    rng = np.random.default_rng(seed)
    domain = Intervals([0.0, 11.0], [9.0, duration])
    times = np.sort(rng.uniform(0, duration, 400))
    times = times[domain.contains(times)]
    units = rng.integers(0, n_units - 1, times.size)  # the last unit never fires
    slow_t = np.arange(0, duration, 0.01)
    fast_t = np.arange(0, duration, 0.002)
    slow_t, fast_t = slow_t[domain.contains(slow_t)], fast_t[domain.contains(fast_t)]
    trials = Intervals(
        [0.5, 3.0, 6.0, 11.5, 14.0, 17.0],
        [2.5, 5.5, 8.5, 13.5, 16.5, 19.5],
        {
            "target_id": np.array([0, 1, 0, 1, 0, 1]),
            "go_cue_time": np.array([1.0, 3.5, 6.5, 12.0, 14.5, 17.5]),
            "success": np.array([True, True, False, True, True, True]),
        },
    )
    return Recording(
        info=RecordingInfo(
            recording_id=f"test_rec_{seed}",
            brainset="test_lab",
            subject="monkey_t",
            task="center_out",
            species="macaca_mulatta",
            brain_areas=("M1",),
            extra={"note": "built in conftest"},
        ),
        spikes=Spikes(times, units),
        units=Units(
            [f"u{k}" for k in range(n_units)],
            {"area": np.array(["M1"] * n_units), "electrode": np.arange(n_units)},
        ),
        behavior={
            "hand_vel": TimeSeries(slow_t, rng.normal(size=(slow_t.size, 2)).astype(np.float32), "m/s"),
            "emg": TimeSeries(fast_t, rng.normal(size=(fast_t.size, 3)), "mV"),
        },
        domain=domain,
        trials=trials,
        intervals={
            "reach": Intervals(
                trials.columns["go_cue_time"] + 0.3, trials.columns["go_cue_time"] + 0.9
            )
        },
    )


@pytest.fixture
def recording() -> Recording:
    return build_recording()


def tiny_recording(recording_id: str = "tiny_0000", *, seed: int = 0) -> Recording:
    """A 4 s recording with 3 units, 40 spikes, a 100 Hz 2-D hand_vel stream and splits
    train [0, 2.4), valid [2.4, 3.2), test [3.2, 4): some 30 kB on disk."""
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0, 4, 40))
    samples = np.arange(0, 4, 0.01)
    return Recording(
        info=RecordingInfo(recording_id=recording_id, brainset="tiny_lab", subject="s", task="center_out"),
        spikes=Spikes(times, rng.integers(0, 3, times.size)),
        units=Units(["a", "b", "c"]),
        behavior={"hand_vel": TimeSeries(samples, rng.normal(size=(samples.size, 2)).astype(np.float32))},
        domain=Intervals([0.0], [4.0]),
        splits={
            "train": Intervals([0.0], [2.4]), "valid": Intervals([2.4], [3.2]), "test": Intervals([3.2], [4.0])
        },
    )


def write_many_recordings(out_dir, n: int) -> list:
    """``n`` recording files ``tiny_0000.h5``... in ``out_dir``, fast: one written with
    write_recording, the others copies of it with their own recording id and hand_vel shifted by
    their number (so every file holds different targets)."""
    import json
    import shutil
    from pathlib import Path

    import h5py

    from neuropoyo.data.store import write_recording

    out_dir = Path(out_dir)
    first = write_recording(tiny_recording(), out_dir / "tiny_0000.h5")
    paths = [first]
    for k in range(1, n):
        path = out_dir / f"tiny_{k:04d}.h5"
        shutil.copyfile(first, path)
        with h5py.File(path, "r+") as f:
            info = json.loads(f.attrs["info"])
            f.attrs["info"] = json.dumps({**info, "recording_id": f"tiny_{k:04d}"})
            f["behavior/hand_vel/values"][...] += np.float32(k)
        paths.append(path)
    return paths


# One tiny model for every test that trains: 2 cores, seconds per fit. Tests change fields with
# dict(TINY_MODEL, depth=2) or tiny_run_config(max_steps=...).
TINY_MODEL = dict(
    num_units=1, num_sessions=1, readouts={"hand_vel": 2}, dim=32, head_dim=16, num_heads=2,
    cross_heads=1, depth=1, num_latent_timestamps=4, latents_per_timestamp=2,
    ffn_dropout=0.1, linear_dropout=0.1, attention_dropout=0.0,
)
# For tests whose model must be deterministic in training mode: dict(TINY_MODEL, **NO_DROPOUT).
NO_DROPOUT = dict(ffn_dropout=0.0, linear_dropout=0.0, attention_dropout=0.0)


def tiny_run_config(*, model: dict | None = None, lr: float = 1e-2, **training):
    """A RunConfig of the tiny model (``model`` overrides its fields), batch 4, lr 1e-2, no unit
    dropout, validation only at the end; ``training`` overrides any TrainConfig field."""
    from neuropoyo.model.config import POYOConfig
    from neuropoyo.pipeline.config import AugmentConfig
    from neuropoyo.training.config import RunConfig, TrainConfig

    settings = {"batch_size": 4, "lr": lr, "max_steps": 10, "validate_every": 0, **training}
    return RunConfig(
        model=POYOConfig(**{**TINY_MODEL, **(model or {})}),
        augment=AugmentConfig(unit_dropout=False),
        training=TrainConfig(**settings),
    )


def simulated(*, animals: int = 1, days: int = 1, tasks=("center_out",), trials: int = 16,
              duration_s: float = 30.0, seed: int = 0) -> list:
    """Small simulated recordings with train/valid/test splits (``neuropoyo.simulate``)."""
    import neuropoyo

    return neuropoyo.simulate(
        animals=animals, days=days, tasks=tasks, trials=trials, duration_s=duration_s, seed=seed
    )
