"""Vocabulary: append-only growth, lookups, key helpers and atomic JSON files."""

import json
import os

import numpy as np
import pytest
from conftest import build_recording
from hypothesis import given
from hypothesis import strategies as st

import neuropoyo.io
from neuropoyo.tokens import vocab as vocab_module
from neuropoyo.tokens.vocab import (
    Vocabulary,
    session_key,
    session_key_of,
    unit_key,
    unit_keys,
)

ids_lists = st.lists(st.sampled_from([f"id{k}" for k in range(12)]), max_size=15)


@given(ids_lists, ids_lists)
def test_growth_keeps_existing_indices_and_appends_new_ids_in_order(first, second):
    vocab = Vocabulary(first)
    before = {i: int(vocab.index([i])[0]) for i in first}
    expected_new = list(dict.fromkeys(i for i in second if i not in before))
    assert vocab.new_ids(second) == expected_new
    assert vocab.extend(second) == expected_new
    assert {i: int(vocab.index([i])[0]) for i in first} == before
    assert vocab.to_list() == list(dict.fromkeys(first + second))
    assert len(vocab) == len(set(first) | set(second))
    assert vocab.index(expected_new).tolist() == list(range(len(before), len(vocab)))
    assert all(i in vocab for i in first + second)


def test_index_returns_int64_rows_in_query_order():
    vocab = Vocabulary(["a", "b", "c"])
    rows = vocab.index(["c", "a", "c"])
    assert rows.dtype == np.int64
    assert rows.tolist() == [2, 0, 2]
    assert vocab.index([]).shape == (0,)


def test_index_error_names_unknown_ids_truncated_with_hint():
    vocab = Vocabulary(["a"])
    with pytest.raises(KeyError) as error:
        vocab.index(["a", "x", "y"])
    assert "'x'" in str(error.value) and "'y'" in str(error.value) and "extend" in str(error.value)
    many = [f"new{k}" for k in range(20)]
    with pytest.raises(KeyError) as error:
        vocab.index(many)
    message = str(error.value)
    assert "20 unknown" in message and "'new0'" in message and "'new19'" not in message
    assert "and 15 more" in message


def test_a_bare_string_is_refused_not_split_into_characters():
    with pytest.raises(TypeError):
        Vocabulary("abc")
    with pytest.raises(TypeError):
        Vocabulary(["a"]).index("a")


def test_key_helpers():
    assert session_key("lab", "rec1") == "lab/rec1"
    assert session_key("", "rec1") == "rec1"
    assert unit_key("lab", "rec1", "u3") == "lab/rec1/u3"
    assert unit_key("", "rec1", "u3") == "rec1/u3"
    recording = build_recording()
    assert session_key_of(recording) == "test_lab/test_rec_0"
    assert unit_keys(recording) == [f"test_lab/test_rec_0/u{k}" for k in range(5)]


def test_save_load_round_trip(tmp_path):
    vocab = Vocabulary(["lab/r/u1", "lab/r/u0", "ünïcode/x"])
    path = vocab.save(tmp_path / "units.json")
    loaded = Vocabulary.load(path)
    assert loaded.to_list() == vocab.to_list()
    assert Vocabulary.from_list(vocab.to_list()).to_list() == vocab.to_list()
    assert Vocabulary.load(Vocabulary().save(tmp_path / "empty.json")).to_list() == []


def test_failed_save_leaves_the_old_file_untouched(tmp_path, monkeypatch):
    path = Vocabulary(["a", "b"]).save(tmp_path / "units.json")
    old = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(neuropoyo.io.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        Vocabulary(["a", "b", "c"]).save(path)
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["units.json"]  # no temp file left behind


@pytest.mark.parametrize(
    "text",
    [
        "not json {",
        "[1, 2]",
        json.dumps({"ids": ["a"]}),
        json.dumps({"format": vocab_module.FORMAT, "ids": "a"}),
        json.dumps({"format": vocab_module.FORMAT, "ids": ["a", 3]}),
        json.dumps({"format": vocab_module.FORMAT, "ids": ["a", "a"]}),
    ],
)
def test_malformed_file_gives_a_clear_error(tmp_path, text):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError, match="bad.json"):
        Vocabulary.load(path)
