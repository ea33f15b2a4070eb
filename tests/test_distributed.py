"""Distributed data parallel training and evaluation: 2 CPU processes, gloo backend.

Each test starts its ranks with torch.multiprocessing (the variables torchrun would set), or
torchrun itself for the command line, and compares them with one process on the same global batch.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import NO_DROPOUT, TINY_MODEL, simulated, tiny_run_config
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from neuropoyo import distributed
from neuropoyo.data.directory import find_recordings, write_dataset
from neuropoyo.data.simulate import TASKS
from neuropoyo.errors import ConfigError
from neuropoyo.evaluation.evaluate import evaluate
from neuropoyo.pipeline import (
    RankBatches,
    RecordingSet,
    balanced_shares,
    training_pipeline,
)
from neuropoyo.pipeline.config import AugmentConfig, LossConfig
from neuropoyo.pipeline.samplers import padded_cost
from neuropoyo.trained import load_model
from neuropoyo.training import loop as loop_module
from neuropoyo.training.config import RunConfig

WORLD = 2
MODEL = dict(TINY_MODEL, **NO_DROPOUT)  # the same step on any number of ranks


def _config(steps: int, *, batch_size: int = 6, checkpoint_every: int = 100, validate_every: int = 0) -> RunConfig:
    """The shared tiny run without dropout, lr 1e-3 and with unit dropout on (ranks must augment
    their windows as one process does)."""
    config = tiny_run_config(
        model=MODEL, lr=1e-3, batch_size=batch_size, max_steps=steps, checkpoint_every=checkpoint_every,
        validate_every=validate_every,
    )
    return dataclasses.replace(config, augment=AugmentConfig())


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data")
    write_dataset(simulated(animals=2, tasks=TASKS, trials=12, duration_s=24.0), out)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, job, args) -> None:
    """One rank: the environment torchrun would give it, then ``job(rank, *args)``."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
    )
    try:
        job(rank, *args)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _launch(job, *args, world: int = WORLD) -> None:
    mp.spawn(_rank_main, args=(world, _free_port(), job, args), nprocs=world, join=True)


def _parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def _watch_writes(root: Path) -> list[str]:
    """Every file write, rename, mkdir or removal this process makes under ``root`` (audit hook)."""
    seen: list[str] = []
    root_text = str(root)

    def hook(event, args):
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            mode, flags = args[1], args[2]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
            )
            if writing and os.fsdecode(args[0]).startswith(root_text):
                seen.append(f"open {os.fsdecode(args[0])}")
        elif event in ("os.rename", "os.mkdir", "os.remove", "os.rmdir", "shutil.rmtree") and args:
            if os.fsdecode(args[0]).startswith(root_text):
                seen.append(f"{event} {os.fsdecode(args[0])}")

    sys.addaudithook(hook)
    return seen


class _Stop(Exception):
    """Raised by every rank at the same step: the run ends as if the machine went down."""


def _train_job(rank, config, data, run_dir, out_dir, stop_at):
    """Train (stopping at step ``stop_at`` if given); dump the weights this rank holds in memory
    after its last step, the weights rank 0 saved, and the writes this rank made."""
    torch.set_num_threads(1)
    writes = _watch_writes(Path(run_dir))
    held = {}

    def after_step(step, trained):
        if step == stop_at:
            raise _Stop
        held.update(_parameters(trained.model))

    saved = Path(run_dir) / "model"
    try:
        loop_module.train(config, [data], run_dir, progress=False, after_step=after_step)
    except _Stop:
        saved = Path(run_dir) / "checkpoint"
    trained = load_model(saved)
    save_file(held, str(Path(out_dir) / f"rank{rank}_held.safetensors"))
    save_file(_parameters(trained.model), str(Path(out_dir) / f"rank{rank}_saved.safetensors"))
    (Path(out_dir) / f"rank{rank}_writes.json").write_text(json.dumps(writes))


@pytest.mark.slow
def test_two_ranks_train_the_one_process_model_and_only_rank_0_writes(data, tmp_path):
    """3 steps of a global batch of 6 windows on 2 ranks end at the one-process weights (to float
    tolerance: only the order of additions differs), identical on both ranks; rank 1 writes
    nothing in the run directory; the log shows both ranks' tokens."""
    config = _config(3)
    _launch(_train_job, config, data, str(tmp_path / "ddp"), str(tmp_path), None)
    snapshots = {}
    single = loop_module.train(
        config, [data], tmp_path / "one", progress=False,
        after_step=lambda step, trained: snapshots.setdefault(step, _parameters(trained.model)),
    )
    assert any(not torch.equal(snapshots[1][k], snapshots[3][k]) for k in snapshots[1])  # it learns
    one = _parameters(load_model(single.run_dir / "model").model)
    two = load_file(str(tmp_path / "rank0_saved.safetensors"))
    held = [load_file(str(tmp_path / f"rank{r}_held.safetensors")) for r in range(WORLD)]
    assert all(torch.equal(held[0][k], held[1][k]) and torch.equal(held[0][k], two[k]) for k in two)
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-6, msg=name)
    rank0 = json.loads((tmp_path / "rank0_writes.json").read_text())
    rank1 = json.loads((tmp_path / "rank1_writes.json").read_text())
    assert rank1 == [] and any("metrics.csv" in w for w in rank0) and any("model" in w for w in rank0)
    with open(tmp_path / "ddp" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    with open(tmp_path / "one" / "metrics.csv") as f:
        reference = list(csv.DictReader(f))
    assert [float(r["loss"]) for r in rows] == pytest.approx([float(r["loss"]) for r in reference], rel=1e-4)
    for row, ref in zip(rows, reference):
        per_rank = [int(n) for n in row["rank_tokens"].split()]
        assert len(per_rank) == WORLD and sum(per_rank) == int(row["tokens"]) == int(ref["tokens"])
    assert json.loads((tmp_path / "ddp" / "run.json").read_text())["processes"] == WORLD


@pytest.mark.slow
def test_a_two_rank_checkpoint_resumes_in_one_process(data, tmp_path):
    """A 2-rank run stopped after its step-2 checkpoint, resumed by one process to step 4, ends
    where one process trained all 4 steps ends."""
    config = _config(4, checkpoint_every=2)
    _launch(_train_job, config, data, str(tmp_path / "run"), str(tmp_path), 3)
    assert loop_module.load_trainer_state(tmp_path / "run" / "checkpoint")["step"] == 2
    resumed = loop_module.train(config, [data], tmp_path / "run", resume=True, progress=False)
    assert resumed.steps == 4
    single = loop_module.train(config, [data], tmp_path / "one", progress=False)
    ends = [_parameters(load_model(r.run_dir / "model").model) for r in (resumed, single)]
    for name in ends[0]:
        torch.testing.assert_close(ends[0][name], ends[1][name], rtol=1e-4, atol=1e-6, msg=name)


def _evaluate_job(rank, model_dir, data, out_dir):
    torch.set_num_threads(1)
    summary = evaluate(model_dir, [data], Path(out_dir) / "report", progress=False)
    (Path(out_dir) / f"rank{rank}_summary.json").write_text(json.dumps(summary))


@pytest.mark.slow
def test_distributed_evaluation_equals_one_process(data, tmp_path):
    trained = loop_module.train(_config(2), [data], tmp_path / "run", progress=False)
    single = evaluate(trained.run_dir, [data], tmp_path / "one", progress=False)
    _launch(_evaluate_job, str(trained.run_dir), data, str(tmp_path))
    summaries = [json.loads((tmp_path / f"rank{r}_summary.json").read_text()) for r in range(WORLD)]
    written = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert summaries[0] == summaries[1] == written
    _assert_close_trees(written, single)
    one_csv = sorted((tmp_path / "one" / "predictions").rglob("*.csv"))
    two_csv = sorted((tmp_path / "report" / "predictions").rglob("*.csv"))
    assert [p.name for p in one_csv] == [p.name for p in two_csv] and one_csv
    for a, b in zip(one_csv, two_csv):
        np.testing.assert_allclose(np.loadtxt(a, delimiter=",", skiprows=1), np.loadtxt(b, delimiter=",", skiprows=1), rtol=1e-9)


def _assert_close_trees(a, b) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_close_trees(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_close_trees(x, y)
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-9, abs=1e-12)
    else:
        assert a == b


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 60), min_size=0, max_size=6), st.integers(1, 4))
def test_balanced_shares_are_the_best_split_of_a_batch(lengths, parts):
    """Every window in exactly one share; no share empty while there are windows to go round;
    the costliest share's padded tokens (count x longest) as low as any split of the batch can
    make it (checked against every assignment)."""
    shares = balanced_shares(lengths, parts)
    assert len(shares) == parts
    assert sorted(i for share in shares for i in share) == list(range(len(lengths)))
    assert all(shares[k] for k in range(min(parts, len(lengths))))
    cost = max(padded_cost([lengths[i] for i in share]) for share in shares)
    best = min(
        (
            max(padded_cost([lengths[i] for i, a in enumerate(assign) if a == k]) for k in range(parts))
            for assign in itertools.product(range(parts), repeat=len(lengths))
        ),
        default=0,
    )
    assert cost == best


def test_balanced_shares_refuses_zero_parts():
    with pytest.raises(ValueError, match="at least one part"):
        balanced_shares([3, 4], 0)


def test_rank_batches_split_the_global_batch_by_estimated_tokens(data):
    """For each global batch of 8: the ranks' shares are disjoint and make up the batch, whatever
    the number of ranks; the estimate is the tokenizer's exact count without unit dropout."""
    config = _config(1, batch_size=8)
    recordings = RecordingSet(find_recordings([data]), readouts=config.model.readouts)
    batches = loop_module.epoch_batches(recordings, config)
    global_batches = list(itertools.islice(iter(batches), 4))
    for world in (1, 2, 3):
        shares = [
            list(itertools.islice(iter(RankBatches(batches, recordings.token_estimate, rank=r, world=world)), 4))
            for r in range(world)
        ]
        for step, batch in enumerate(global_batches):
            parts = [shares[r][step] for r in range(world)]
            assert sorted(w.key for part in parts for w in part) == sorted(w.key for w in batch)
    pipeline = training_pipeline(
        recordings, context_length_s=1.0, loss=LossConfig(), augment=AugmentConfig(unit_dropout_min=10_000)
    )
    rng = np.random.default_rng(0)
    for window in global_batches[0]:
        tokens = pipeline(recordings.read(window), rng).tokenized()
        assert recordings.token_estimate(window) == len(tokens["input_unit_index"])


def test_a_batch_smaller_than_the_ranks_is_refused():
    class OneWindowBatches:
        batch_size = 1

    with pytest.raises(ConfigError, match="at least the number of processes"):
        RankBatches(OneWindowBatches(), len, rank=0, world=2)


def test_short_last_batch_gives_a_rank_a_stand_in_with_zero_loss(data, tmp_path):
    """An epoch whose last batch holds 1 window, on 2 ranks: rank 1 runs a stand-in and the step
    still equals the one-process step (the stand-in's loss counts zero)."""
    config = _config(1)
    recordings = RecordingSet(find_recordings([data]), readouts=config.model.readouts)
    per_epoch = loop_module.epoch_batches(recordings, config).windows.windows_per_epoch
    batch_size = per_epoch - 1  # epoch 0: one batch of per_epoch - 1 windows, then one of 1 window
    steps = 2
    config = _config(steps, batch_size=batch_size)
    batches = loop_module.epoch_batches(recordings, config)
    second = list(itertools.islice(iter(RankBatches(batches, recordings.token_estimate, rank=1, world=2)), 2))[1]
    assert len(second) == 1 and second[0].stand_in
    _launch(_train_job, config, data, str(tmp_path / "ddp"), str(tmp_path), None)
    single = loop_module.train(config, [data], tmp_path / "one", progress=False)
    one = _parameters(load_model(single.run_dir / "model").model)
    two = load_file(str(tmp_path / "rank0_saved.safetensors"))
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-6, msg=name)


def test_thread_share_divides_the_cores_among_local_processes():
    ranks = distributed.Ranks(rank=3, world=4, local_rank=1, local_world=2)
    assert distributed.thread_share(ranks, available=16) == 8
    assert distributed.thread_share(ranks, workers=3, available=16) == 5
    assert distributed.thread_share(ranks, workers=2, available=2) == 1
    assert distributed.thread_share(distributed.SINGLE, available=2) == 2


def test_a_launch_without_the_rendezvous_variables_is_named(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("MASTER_ADDR", "MASTER_PORT", "RANK"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="torchrun"):
        distributed.from_environment()
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed.from_environment() == distributed.SINGLE


@pytest.mark.slow
def test_torchrun_trains_from_the_command_line(data, tmp_path):
    """The documented launch: torchrun, 2 processes, `-m neuropoyo train`."""
    run_file = tmp_path / "run.yaml"
    run_file.write_text(json.dumps({"model": {**MODEL, "readouts": {"hand_vel": 2}}, "training": {"batch_size": 4}}))
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "neuropoyo", "train", "--config", str(run_file), "--data", str(data), "--out", str(tmp_path / "run"),
        "--max-steps", "2",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    with open(tmp_path / "run" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 and all(len(r["rank_tokens"].split()) == 2 for r in rows)
    assert done.stdout.count("trained") <= 1  # rank 0 alone reports
