"""Directory publishing: a crash at any file-system step leaves a complete old or new directory."""

import contextlib
import os

import pytest
import torch
from conftest import NO_DROPOUT, TINY_MODEL

from neuropoyo.data.normalize import Normalizer, Scale
from neuropoyo.io import publish_dir, published_dir, write_dir_atomic
from neuropoyo.model.config import POYOConfig
from neuropoyo.model.poyo import POYO
from neuropoyo.tokens.vocab import Vocabulary
from neuropoyo.trained import TrainedModel, load_model
from neuropoyo.training.checkpoint import load_trainer_state, save_checkpoint

CHANGES = ("mkdir", "replace", "rename", "symlink", "unlink", "rmdir")  # shutil.rmtree uses the last two


class Crash(BaseException):
    """The process died: this file-system change and every later one never happen."""


@contextlib.contextmanager
def crash_at(k: int):
    """Make the k-th file-system change (os.mkdir, os.replace, ...) raise Crash, and all after it.

    Yields the names of the changes attempted so far (those after the crash included).
    """
    calls = []

    def failing(name, real):
        def change(*args, **kwargs):
            calls.append(name)
            if len(calls) >= k:
                raise Crash(name)
            return real(*args, **kwargs)

        return change

    with pytest.MonkeyPatch.context() as patch:
        for name in CHANGES:
            patch.setattr(os, name, failing(name, getattr(os, name)))
        yield calls


def writer(tag: str):
    def write(folder):
        (folder / "a.txt").write_text(tag)
        (folder / "sub").mkdir()
        (folder / "sub" / "b.txt").write_text(tag * 2)

    return write


def content(folder) -> str | None:
    """``tag`` if ``folder`` is exactly what ``writer(tag)`` writes, else None."""
    try:
        tag, twice = (folder / "a.txt").read_text(), (folder / "sub" / "b.txt").read_text()
    except OSError:
        return None
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))
    return tag if twice == tag * 2 and names == ["a.txt", "sub", "sub/b.txt"] else None


def crashed_publish(final, write, k: int) -> None:
    """Publish with a crash at the k-th change."""
    with crash_at(k), pytest.raises(Crash):
        publish_dir(final, write)


def changes_in_a_publish(tmp_path, prepare) -> list[str]:
    final = tmp_path / "count" / "ckpt"
    prepare(final)
    with crash_at(10**9) as calls:
        publish_dir(final, writer("new"))
    return calls


def assert_clean(final):
    """Nothing beside ``final`` but the version it links to."""
    assert sorted(os.listdir(final.parent)) == sorted([final.name, os.readlink(final)])


def test_a_crash_at_any_step_of_a_republish_leaves_old_or_new_at_the_path(tmp_path):
    steps = changes_in_a_publish(tmp_path, lambda final: publish_dir(final, writer("old")))
    assert {"replace", "symlink", "unlink", "rmdir"} <= set(steps)
    seen = []
    for k in range(1, len(steps) + 1):
        final = tmp_path / f"k{k}" / "ckpt"
        publish_dir(final, writer("old"))
        crashed_publish(final, writer("new"), k)
        seen.append(content(final))
        assert content(published_dir(final)) == seen[-1]
        publish_dir(final, writer("newer"))
        assert content(final) == "newer"
        assert_clean(final)
    switch = seen.index("new")  # the crash points before the symlink swap see old, the rest new
    assert 0 < switch < len(seen) and seen == ["old"] * switch + ["new"] * (len(seen) - switch)


def test_a_plain_directory_from_before_is_replaced_safely(tmp_path):
    def plain(final):
        final.mkdir(parents=True)
        writer("old")(final)

    steps = changes_in_a_publish(tmp_path, plain)
    gaps = []
    for k in range(1, len(steps) + 1):
        final = tmp_path / f"k{k}" / "ckpt"
        plain(final)
        crashed_publish(final, writer("new"), k)
        if os.path.lexists(final):
            assert content(final) in ("old", "new")
        else:  # between moving the plain folder aside and putting the link in its place
            gaps.append(k)
            assert content(published_dir(final)) == "new"  # both versions are complete: the newer
        assert content(published_dir(final)) in ("old", "new")
        publish_dir(final, writer("newer"))
        assert content(final) == "newer"
        assert_clean(final)
    assert len(gaps) == 1


def test_a_failed_write_leaves_the_old_directory_and_no_temporaries(tmp_path):
    final = tmp_path / "ckpt"
    publish_dir(final, writer("old"))

    def broken(folder):
        writer("new")(folder)
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        publish_dir(final, broken)
    assert content(final) == "old"
    assert_clean(final)


def test_published_paths(tmp_path):
    final = tmp_path / "ckpt"
    assert published_dir(final) == final  # nothing there yet
    final.mkdir()
    assert published_dir(final) == final  # a plain directory
    final.rmdir()
    publish_dir(final, writer("a"))
    publish_dir(final, writer("b"))
    assert os.readlink(final) == ".ckpt.v2" and published_dir(final) == tmp_path / ".ckpt.v2"
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="file: exists and is not a directory"):
        publish_dir(tmp_path / "file", writer("a"))


def test_a_link_to_elsewhere_is_replaced_and_its_target_kept(tmp_path):
    elsewhere = tmp_path / "big_disk" / "ckpt"
    elsewhere.mkdir(parents=True)
    writer("old")(elsewhere)
    final = tmp_path / "run" / "ckpt"
    final.parent.mkdir()
    final.symlink_to(elsewhere)
    publish_dir(final, writer("new"))
    assert content(final) == "new" and content(elsewhere) == "old"


def tiny_trained(seed: int) -> TrainedModel:
    torch.manual_seed(seed)
    # The shared tiny model at width 16, two units, no dropout and 4 cross-attention heads.
    config = POYOConfig(**dict(
        TINY_MODEL, **NO_DROPOUT, num_units=2, dim=16, head_dim=8, cross_heads=4, num_latent_timestamps=2,
    ))
    return TrainedModel(
        model=POYO(config),
        unit_vocab=Vocabulary(["lab/s0/u0", "lab/s0/u1"]),
        session_vocab=Vocabulary(["lab/s0"]),
        normalizer=Normalizer({"lab": {"hand_vel": Scale(mean=(0.0, 0.0), std=(1.0, 1.0))}}),
        settings={"loss": {"output_samples": 100}},
    )


def test_a_crash_while_saving_a_checkpoint_leaves_a_loadable_one(tmp_path):
    models = {1: tiny_trained(1), 2: tiny_trained(2)}
    save_checkpoint(models[1], {"step": 1}, tmp_path / "count")
    with crash_at(10**9) as steps:
        save_checkpoint(models[2], {"step": 2}, tmp_path / "count")
    seen = []
    for k in range(1, len(steps) + 1):
        final = tmp_path / f"k{k}" / "checkpoint"
        save_checkpoint(models[1], {"step": 1}, final)
        with crash_at(k), pytest.raises(Crash):
            save_checkpoint(models[2], {"step": 2}, final)
        step = load_trainer_state(final)["step"]
        loaded = load_model(final).model.state_dict()
        expected = models[step].model.state_dict()
        assert all(torch.equal(loaded[key], expected[key]) for key in expected)
        seen.append(step)
    assert seen == sorted(seen) and seen[0] == 1 and seen[-1] == 2


def test_write_dir_atomic_gives_a_plain_folder_and_keeps_the_old_one_on_failure(tmp_path):
    """A model directory stays a plain folder (copied and shared as it is); a failed write leaves
    the previous one whole and no temporary folder behind."""
    final = tmp_path / "model"
    write_dir_atomic(final, lambda folder: (folder / "a.txt").write_text("one"))
    write_dir_atomic(final, lambda folder: (folder / "a.txt").write_text("two"))
    assert final.is_dir() and not final.is_symlink() and (final / "a.txt").read_text() == "two"

    def broken(folder):
        (folder / "a.txt").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_dir_atomic(final, broken)
    assert (final / "a.txt").read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
