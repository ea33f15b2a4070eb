"""Ctrl-C (SIGINT to the process group, as a terminal sends it) and SIGTERM (to the process, as
kill, torchrun or a container runtime send it) stop real `neuropoyo` processes with one line saying
what was kept and how to go on, the shell's status 128 + signal, no traceback, and a run that goes
on from there."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from conftest import write_many_recordings
from neuropoyo.experiments.cache import finished_fits
from neuropoyo.interrupt import Interrupted, exit_status, held_signals, raise_lost, signal_of, sigterm_interrupts
from neuropoyo.trained import load_model
from neuropoyo.training.checkpoint import load_trainer_state
from neuropoyo.training.config import RunConfig
from neuropoyo.training.finetune import FinetuneConfig, finetune
from neuropoyo.training.loop import train

TINY_MODEL = {
    "readouts": {"hand_vel": 2}, "dim": 32, "head_dim": 16, "num_heads": 2, "cross_heads": 1, "depth": 1,
    "num_latent_timestamps": 4, "latents_per_timestamp": 2,
}
WAIT_S = 180  # for a loaded machine; the tests take seconds on an idle one


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    write_many_recordings(folder, 2)
    return folder


def _run_file(folder, **training):
    path = folder / "run.yaml"
    settings = {"batch_size": 4, "checkpoint_every": 100000, "validate_every": 0, "log_every": 1, **training}
    path.write_text(yaml.safe_dump({"model": TINY_MODEL, "training": settings}))
    return path


def _default_sigint() -> None:
    """In the child before it starts: SIGINT as a terminal leaves it. When the suite itself runs
    with SIGINT ignored (a background job of a non-interactive shell: `bash .ci/run &`), a child
    inherits that, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class _Command:
    """`python -m neuropoyo ARGV` in a child process leading its own process group, its output in
    files (a pipe nobody reads could fill and stall it)."""

    def __init__(self, folder, *argv):
        self.out, self.err = folder / "stdout.txt", folder / "stderr.txt"
        with open(self.out, "w") as out, open(self.err, "w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "neuropoyo", *map(str, argv)], stdout=out, stderr=err, start_new_session=True,
                preexec_fn=_default_sigint,
            )

    def wait_until(self, ready) -> None:
        deadline = time.monotonic() + WAIT_S
        while not ready() and self.process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert self.process.poll() is None, f"the command ended before the signal:\n{self.err.read_text()[-3000:]}"
        assert ready(), f"not ready after {WAIT_S} s"

    def stop(self, signal_number) -> tuple[int, str]:
        """Send the signal to the process group (the command and its DataLoader workers), as Ctrl-C
        in a terminal or a scheduler's SIGTERM (Slurm's scancel) does; (return code, the one
        `interrupted` line) once it ended."""
        os.killpg(self.process.pid, signal_number)
        code = self.process.wait(timeout=WAIT_S)
        stderr = self.err.read_text()
        assert "Traceback" not in stderr, stderr[-3000:]
        (line,) = [line for line in stderr.splitlines() if "interrupted" in line]
        return code, line


def _logged_steps(run) -> list[int]:
    """The steps metrics.csv holds whole lines of."""
    path = run / "metrics.csv"
    if not path.is_file():
        return []
    text = path.read_text()
    rows = csv.DictReader(text[: text.rfind("\n") + 1].splitlines())
    return [int(row["step"]) for row in rows]


@pytest.mark.slow
def test_ctrl_c_during_train_saves_the_current_step_and_resume_finishes_the_run(data, tmp_path):
    run = tmp_path / "run"
    argv = ["train", "--config", _run_file(tmp_path, max_steps=20, num_workers=1), "--data", data, "--out", run]
    command = _Command(tmp_path, *argv)
    command.wait_until(lambda: len(_logged_steps(run)) >= 3)
    code, line = command.stop(signal.SIGINT)
    state = load_trainer_state(run / "checkpoint")
    step = state["step"]
    assert code == 130
    assert line == (
        f"neuropoyo train: interrupted; step {step} of 20 saved in {run / 'checkpoint'}; "
        "to resume, rerun the same command with --resume"
    )
    assert 3 <= step < 20
    assert state["scheduler"]["last_epoch"] == step  # the schedule is where the optimizer is
    assert _logged_steps(run) == list(range(step))  # every step taken logged once, none beyond
    assert not (run / "model").exists()  # the sign of a finished run

    resumed = subprocess.run(
        [sys.executable, "-m", "neuropoyo", *map(str, argv), "--resume"], capture_output=True, text=True,
        timeout=WAIT_S,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"trained {20 - step} steps (the run has 20)" in resumed.stdout
    assert _logged_steps(run) == list(range(20))
    assert load_trainer_state(run / "checkpoint")["step"] == 20


def test_sigterm_during_train_with_a_loader_worker_saves_the_current_step(data, tmp_path):
    run = tmp_path / "run"
    config = _run_file(tmp_path, max_steps=100000, num_workers=1)
    command = _Command(tmp_path, "train", "--config", config, "--data", data, "--out", run)
    command.wait_until(lambda: len(_logged_steps(run)) >= 2)
    code, line = command.stop(signal.SIGTERM)
    step = load_trainer_state(run / "checkpoint")["step"]
    assert code == 143
    assert line.startswith(f"neuropoyo train: interrupted; step {step} of 100000 saved in ")
    assert step >= 2 and _logged_steps(run) == list(range(step))


def test_ctrl_c_during_baselines_says_nothing_was_written(data, tmp_path):
    out = tmp_path / "baselines"
    command = _Command(tmp_path, "baselines", "--data", data, "--out", out, "--methods", "gru")
    command.wait_until(lambda: "fitting gru on tiny_0000" in command.err.read_text())
    code, line = command.stop(signal.SIGINT)
    assert code == 130
    assert line == (
        "neuropoyo baselines: interrupted; during gru on tiny_0000, 0 of 2 fits done; nothing was written "
        "(the reports come at the end); rerun the same command to start over"
    )
    assert not (out / "gru").exists()


@pytest.mark.slow
def test_ctrl_c_during_an_experiment_keeps_its_finished_fits_for_the_rerun(data, tmp_path):
    out = tmp_path / "scaling"
    argv = [
        "experiment", "scaling", "--data", data, "--config", _run_file(tmp_path), "--depths", "1",
        "--recordings", "1", "2", "--max-steps", "4", "--seeds", "1", "--out", out,
    ]
    first = out / "runs" / "seed0" / "single" / "tiny_0000.json"
    command = _Command(tmp_path, *argv)
    command.wait_until(first.is_file)
    code, line = command.stop(signal.SIGINT)
    kept = finished_fits(out)
    assert code == 130 and first in kept and len(kept) < 3
    fits = "1 finished fit is" if len(kept) == 1 else f"{len(kept)} finished fits are"
    assert line == f"neuropoyo experiment: interrupted; rerun the same command: {fits} kept in {out}"

    rerun = subprocess.run(
        [sys.executable, "-m", "neuropoyo", *map(str, argv)], capture_output=True, text=True, timeout=WAIT_S
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"seed 0 single-session tiny_0000: done before ({first})" in rerun.stdout
    assert len(finished_fits(out)) == 3


def test_a_signal_in_a_held_block_arrives_when_the_block_ends():
    events = []
    with pytest.raises(Interrupted) as caught:
        with sigterm_interrupts():
            with held_signals():
                os.kill(os.getpid(), signal.SIGTERM)
                events.append("the block ran to its end")
    assert events == ["the block ran to its end"]
    assert caught.value.signal_number == signal.SIGTERM and exit_status(caught.value) == 143
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    assert exit_status(KeyboardInterrupt()) == 130


def test_an_interrupt_that_lands_in_a_finalizer_is_raised_at_the_next_safe_point(capsys):
    """Python can only print an exception raised in a finalizer ("Exception ignored ... Traceback")
    and goes on: the command keeps it, unprinted, and raises it where the loop checks."""

    class Dying:
        def __del__(self):
            raise Interrupted(signal.SIGTERM)

    with sigterm_interrupts():
        Dying()  # collected at once: its finalizer raises
        with pytest.raises(Interrupted) as stop:
            raise_lost()
        raise_lost()  # raised once only
    assert signal_of(stop.value) == signal.SIGTERM
    assert "Traceback" not in capsys.readouterr().err


def test_a_second_signal_in_a_held_block_stops_it_at_once():
    events = []
    with pytest.raises(Interrupted):
        with sigterm_interrupts(), held_signals():
            os.kill(os.getpid(), signal.SIGTERM)
            events.append("the first signal is held")
            os.kill(os.getpid(), signal.SIGTERM)
            events.append("the second is not")
    assert events == ["the first signal is held"]


def test_an_interrupted_finetune_keeps_the_model_so_far_and_says_it_starts_over(data, tmp_path):
    config = RunConfig.from_yaml(_run_file(tmp_path, max_steps=2))
    train(config, [data / "tiny_0000.h5"], tmp_path / "pretrained", progress=False)

    def stop_at_step_2(step, trained):
        if step == 2:
            raise KeyboardInterrupt

    run = tmp_path / "adapted"
    with pytest.raises(Interrupted) as caught:
        finetune(tmp_path / "pretrained", [data / "tiny_0001.h5"], run, FinetuneConfig(max_steps=50, batch_size=2),
                 progress=False, after_step=stop_at_step_2)
    assert caught.value.resume == (
        f"step 2 of 50 saved in {run / 'checkpoint'}; this run cannot resume: rerun the same command to start over"
    )
    assert exit_status(caught.value) == 130 and not (run / "model").exists()
    assert load_trainer_state(run / "checkpoint")["step"] == 2
    assert len(load_model(run / "checkpoint").session_vocab) == 2  # the adapted model, grown by the new session
