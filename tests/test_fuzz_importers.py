"""Fuzzing the importers and the tokenizer (issue 16, item 2).

Importers: a valid NWB or brainsets file cut short and/or with random bytes changed either reads as
a valid recording or raises DataError naming the file, and preparing it leaves no file (nor a
temporary one) behind. Each damaged file is read in a forked process: libhdf5 (2.0, under h5py
3.16) itself loops forever or segfaults reading some damaged metadata (seen: a variable-length
string attribute whose global heap is damaged), which no Python code can catch; such a case is
counted as a hypothesis event and passes, while a Python escape, a failed assertion, or a hang or
crash anywhere but inside h5py fails.

Tokenizer: any window of any valid recording (random spike counts, silent units, gaps, touching
spans, windows over the edges, empty windows) tokenizes without error into finite times inside
the context, one SPIKE token per spike inside the observed spans, a START and an END per unit and
observed span, and queries only at samples inside the observed spans; the training and evaluation
pipelines keep those properties."""

from __future__ import annotations

import faulthandler
import functools
import multiprocessing
import tempfile
import traceback
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from conftest import build_recording
from neuropoyo.data import Intervals, Recording, RecordingInfo, Spikes, TimeSeries, Units
from neuropoyo.data.importers.brainsets import prepare_brainsets, read_brainsets
from neuropoyo.data.importers.common import DroppedDataWarning, RepairedDataWarning
from neuropoyo.data.normalize import Normalizer, Scale
from neuropoyo.data.store import write_recording
from neuropoyo.data.validate import validate_recording
from neuropoyo.errors import DataError
from neuropoyo.pipeline.samplers import Window
from neuropoyo.pipeline.transforms import (
    ABSOLUTE_TIME,
    EXCLUDED,
    AbsoluteQueryTimes,
    Compose,
    LossWeights,
    MarkExcluded,
    RestrictToSplit,
    Sample,
    SampleOutputs,
    Tokenize,
    UnitDropout,
    ZScore,
)
from neuropoyo.schema import END, INPUT_KEYS, QUERY_KEYS, SPIKE, START
from neuropoyo.tokens.tokenizer import Tokenizer
from test_brainsets import _write_by_hand

CUT = st.one_of(st.none(), st.floats(0.0, 1.0))
FLIPS = st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(1, 255)), max_size=8)
CHILD_TIMEOUT_S = 5.0  # a damaged file read longer than this is a hang (a read takes ~0.1 s)


def _damaged(data: bytes, cut: float | None, flips: list[tuple[float, int]]) -> bytes:
    """``data`` with the byte at each flip position (a fraction of its length) xor-ed, then cut to
    the fraction ``cut`` of its length."""
    data = bytearray(data)
    for where, xor in flips:
        data[int(where * (len(data) - 1))] ^= xor
    return bytes(data if cut is None else data[: int(cut * len(data))])


def _read_or_our_error(read, path: Path) -> None:
    """``read(path)`` returns a valid recording or raises DataError naming ``path``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DroppedDataWarning)
            warnings.simplefilter("ignore", RepairedDataWarning)
            recording = read(path)
    except DataError as error:
        assert str(path) in str(error)
        return
    validate_recording(recording, str(path))


def _prepare_leaves_nothing_partial(prepare, path: Path, out: Path) -> None:
    """``prepare([path], out)`` writes one file and nothing else, or raises DataError naming
    ``path`` and leaves ``out`` empty."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DroppedDataWarning)
            warnings.simplefilter("ignore", RepairedDataWarning)
            written = prepare([path], out)
    except DataError as error:
        assert str(path) in str(error)
        assert not out.exists() or list(out.iterdir()) == []
        return
    assert sorted(out.iterdir()) == written and len(written) == 1


def _check_damaged(read, prepare, name: str, data: bytes, folder: Path) -> None:
    path = folder / name
    path.write_bytes(data)
    _read_or_our_error(read, path)
    _prepare_leaves_nothing_partial(prepare, path, folder / "out")


def _child(check, folder: Path, send) -> None:
    """Run ``check(folder)``, send None or the traceback of its failure; a stack goes to
    ``folder/stack.txt`` if the process crashes or is still running after CHILD_TIMEOUT_S."""
    with open(folder / "stack.txt", "w") as stack:
        faulthandler.enable(stack)
        faulthandler.dump_traceback_later(CHILD_TIMEOUT_S, exit=True, file=stack)
        try:
            check(folder)
            send.send(None)
        except BaseException:
            send.send(traceback.format_exc())


def _in_child(check) -> None:
    """``check(folder)`` in a forked process: its failure fails the test, as does a hang or crash
    anywhere but inside h5py; one inside h5py (libhdf5) is counted as an event."""
    with tempfile.TemporaryDirectory() as folder:
        context = multiprocessing.get_context("fork")
        receive, send = context.Pipe(duplex=False)
        child = context.Process(target=_child, args=(check, Path(folder), send))
        child.start()
        send.close()
        if not receive.poll(CHILD_TIMEOUT_S + 30):
            child.kill()
        try:
            failure = receive.recv()
        except EOFError:  # the child ended without a word
            child.join()
            stack = (Path(folder) / "stack.txt").read_text()
            frames = [
                line.strip() for line in stack.splitlines() if line.strip().startswith("File")
            ]
            assert frames and "/h5py/" in frames[0], (
                f"hang or crash (exit {child.exitcode}):\n{stack}"
            )
            event(f"libhdf5 {'hang' if child.exitcode == 1 else 'crash'}")
            return
        child.join()
        if failure is not None:
            pytest.fail(failure, pytrace=False)


# ------------------------------------------------------------------------------------------ NWB


@functools.cache
def _nwb_bytes() -> bytes:
    """A small valid NWB file: two units with obs_intervals, hand_vel, two trials."""
    pytest.importorskip("pynwb")
    from test_nwb import _add_trials, _behavior_module, _nwbfile, _vel, _write

    nwb = _nwbfile()
    _behavior_module(nwb, _vel())
    _add_trials(nwb)
    with tempfile.TemporaryDirectory() as folder:
        return _write(nwb, Path(folder) / "lab_s.nwb").read_bytes()


def _read_nwb(path: Path) -> Recording:
    from neuropoyo.data.importers.nwb import read_nwb

    return read_nwb(path)


def _prepare_nwb(files, out: Path) -> list[Path]:
    from neuropoyo.data.importers.nwb import prepare_nwb

    return prepare_nwb(files, out)


def _check_damaged_nwb(data: bytes, folder: Path) -> None:
    _check_damaged(_read_nwb, _prepare_nwb, "lab_s.nwb", data, folder)


def test_the_nwb_file_fuzzed_reads(tmp_path):
    _check_damaged_nwb(_nwb_bytes(), tmp_path)
    assert len(_read_nwb(tmp_path / "lab_s.nwb").spikes) == 5


@pytest.mark.slow
@settings(max_examples=80, deadline=None)
@given(cut=CUT, flips=FLIPS)
def test_damaged_nwb_files_raise_only_our_error(cut, flips):
    """Run outside the suite on 6,400 damaged files, this found escaping read_nwb: h5py's OSError,
    RuntimeError, KeyError, TypeError and UnicodeDecodeError; hdmf's ConstructError, ValueError,
    KeyError, TypeError, UnicodeDecodeError and JSONDecodeError (a damaged cached spec); pynwb's
    AttributeError, all now a DataError naming the file; and an IndexError from a series whose
    data hdmf read as empty, now a DataError naming the series. The last 2,500 files: no escape,
    one libhdf5 hang."""
    data = _damaged(_nwb_bytes(), cut, flips)
    _in_child(functools.partial(_check_damaged_nwb, data))


@settings(max_examples=20, deadline=None)
@given(data=st.binary(max_size=2048))
def test_random_bytes_are_not_an_nwb_file(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("bytes") / "x.nwb"
    path.write_bytes(data)
    with pytest.raises(DataError, match=r"x\.nwb: not an HDF5 file; NWB 2\.x files are HDF5"):
        _read_nwb(path)


def test_an_hdf5_file_that_is_not_nwb(tmp_path):
    pytest.importorskip("pynwb")
    path = write_recording(build_recording(), tmp_path / "r.h5")
    with pytest.raises(DataError, match=r"r\.h5: an HDF5 file but not NWB 2\.x \(no nwb_version\)"):
        _read_nwb(path)


# ------------------------------------------------------------------------------------ brainsets


@functools.cache
def _brainsets_bytes() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        return _write_by_hand(Path(folder) / "s1.h5").read_bytes()


def _check_damaged_brainsets(data: bytes, folder: Path) -> None:
    _check_damaged(read_brainsets, prepare_brainsets, "s1.h5", data, folder)


def test_the_brainsets_file_fuzzed_reads(tmp_path):
    _check_damaged_brainsets(_brainsets_bytes(), tmp_path)
    assert len(read_brainsets(tmp_path / "s1.h5").spikes) == 5


@pytest.mark.slow
@settings(max_examples=120, deadline=None)
@given(cut=CUT, flips=FLIPS)
def test_damaged_brainsets_files_raise_only_our_error(cut, flips):
    """Run outside the suite on 8,800 damaged files, this found escaping read_brainsets: h5py's
    OSError, RuntimeError, KeyError and ValueError, and a TypeError (an undecodable name in our
    own message), all now a DataError naming the file; and a recording returned with two units
    of one id, now refused by validation. The last 5,000 files: no escape; 5 hung and 3 crashed
    libhdf5 itself (see the module docstring)."""
    data = _damaged(_brainsets_bytes(), cut, flips)
    _in_child(functools.partial(_check_damaged_brainsets, data))


def test_an_imported_recording_is_validated(tmp_path):
    """Found by fuzzing: a changed byte gave two units the same id and read_brainsets returned an
    invalid recording (prepare then failed naming only the output file)."""
    path = _write_by_hand(tmp_path / "s1.h5")
    with h5py.File(path, "r+") as file:
        file["units/id"][1] = b"a"
    with pytest.raises(
        DataError, match=r"(?s)s1\.h5: invalid recording .*units/ids: duplicate unit ids; give"
    ):
        read_brainsets(path)
    with pytest.raises(DataError, match=r"s1\.h5: invalid recording"):
        prepare_brainsets([path], tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.filterwarnings("ignore:TimeSeries 'hand_vel'")
def test_a_series_with_fewer_samples_than_timestamps(tmp_path):
    """Found by fuzzing: hdmf reads an unreadable data dataset as empty, which ended in an
    IndexError."""
    pytest.importorskip("pynwb")
    path = tmp_path / "lab_s.nwb"
    path.write_bytes(_nwb_bytes())
    with h5py.File(path, "r+") as file:
        series = file["processing/behavior/hand_vel"]
        attrs = dict(series["data"].attrs)
        values = series["data"][:3]
        del series["data"]
        series.create_dataset("data", data=values).attrs.update(attrs)
    with pytest.raises(
        DataError,
        match=r"lab_s\.nwb: behavior series hand_vel has 3 samples but 4 timestamps; give",
    ):
        _read_nwb(path)


# ------------------------------------------------------------------------------------ tokenizer

READOUTS = {"s0": 0, "s1": 3, "absent": 1}
GRIDS = st.tuples(st.sampled_from([1 / 256, 1e-3, 0.1, 1 / 3]), st.sampled_from([0.0, -2.0, 1e4]))


@st.composite
def windows(draw) -> tuple[Recording, float, float, float]:
    """(recording, window start, window end, context length), all on a grid of ``tick`` seconds
    from ``offset`` so that spikes, samples, span and window edges meet.

    The recording is valid: 0-4 units (some silent), 0-4 domain spans (touching, with gaps or
    empty), spikes inside them, readout streams sampled anywhere (gaps and outside the domain
    too), three splits cut at random times and random ``reach`` intervals. The window may lie over
    the edges of the data, outside it, or be empty; the context may be shorter or longer than the
    window."""
    tick, offset = draw(GRIDS)
    n_units = draw(st.integers(0, 4))
    spans, at = [], draw(st.integers(-200, 200))
    for gap, length in draw(
        st.lists(st.tuples(st.integers(0, 300), st.integers(0, 300)), max_size=4)
    ):
        spans.append((at + gap, at + gap + length))
        at += gap + length
    low = spans[0][0] - 100 if spans else at - 100
    high = at + 100
    unit = st.integers(0, max(n_units - 1, 0))
    spikes = sorted(
        spike
        for start, end in spans
        if end > start
        for spike in draw(
            st.lists(st.tuples(st.integers(start, end - 1), unit), max_size=30 * (n_units > 0))
        )
    )
    behavior = {}
    for name in draw(st.sampled_from([(), ("s0",), ("s1",), ("s0", "s1"), ("other", "s1")])):
        ticks = np.array(sorted(draw(st.sets(st.integers(low, high), max_size=60))), dtype=float)
        values = ticks[:, None] + np.arange(draw(st.integers(1, 3)))
        behavior[name] = TimeSeries(offset + ticks * tick, values)
    cuts = [
        low - 1,
        *sorted(draw(st.lists(st.integers(low, high), min_size=2, max_size=2))),
        high + 1,
    ]
    reach = draw(st.lists(st.tuples(st.integers(low, high), st.integers(1, 50)), max_size=3))
    reach = np.array(sorted((start, start + n) for start, n in reach), dtype=float).reshape(-1, 2)
    recording = Recording(
        info=RecordingInfo(recording_id="fuzz", brainset="lab"),
        spikes=Spikes([offset + t * tick for t, _ in spikes], [u for _, u in spikes]),
        units=Units([f"u{i}" for i in range(n_units)]),
        behavior=behavior,
        domain=Intervals(*(offset + np.array(spans, dtype=float).reshape(-1, 2).T * tick)),
        splits={
            name: Intervals.single(offset + cuts[i] * tick, offset + cuts[i + 1] * tick)
            for i, name in enumerate(("train", "valid", "test"))
        },
        intervals={"reach": Intervals(*(offset + reach.T * tick))},
    )
    start = draw(st.integers(low - 200, high))
    length, context = draw(st.integers(0, 500)), draw(st.integers(1, 500))
    return recording, offset + start * tick, offset + (start + length) * tick, context * tick


def _observed(
    domain: Intervals, split: Intervals | None, context: float
) -> list[tuple[float, float]]:
    """The spans of ``domain`` (inside ``split``) cut to ``[0, context)``, touching ones fused:
    what the tokens should delimit, in plain Python."""
    within = list(zip(split.start, split.end)) if split is not None else [(-np.inf, np.inf)]
    pieces = []
    for a, b in zip(domain.start, domain.end):
        for c, d in within:
            low, high = max(a, c, 0.0), min(b, d, context)
            if high > low:
                pieces.append((low, high))
    fused: list[tuple[float, float]] = []
    for low, high in sorted(pieces):
        if fused and low <= fused[-1][1]:
            fused[-1] = (fused[-1][0], max(fused[-1][1], high))
        else:
            fused.append((low, high))
    return fused


def _inside(times: np.ndarray, spans: list[tuple[float, float]]) -> np.ndarray:
    return np.array([any(a <= t < b for a, b in spans) for t in times], dtype=bool)


def _pairs(tokens, kind: int) -> list[tuple[int, float]]:
    pick = tokens["input_token_type"] == kind
    return sorted(
        zip(tokens["input_unit_index"][pick].tolist(), tokens["input_timestamps"][pick].tolist())
    )


def _check_tokens(
    tokens, *, spikes: list[tuple[int, float]], rows, observed, context, data, every=True
):
    """The properties every tokenization keeps. spikes: (row, time) of the spikes that should be
    tokens. rows: the window's unit rows. data: the window the tokenizer saw (its streams). every:
    whether every sample inside ``observed`` should be a query (else a subset of weight > 0)."""
    f32 = lambda t: float(np.float32(t))  # noqa: E731
    for key in ("input_timestamps", "output_timestamps"):
        times = tokens[key]
        assert (
            np.isfinite(times).all() and (times >= 0).all() and (times <= np.float32(context)).all()
        )
    assert len({tokens[key].shape[0] for key in INPUT_KEYS}) == 1
    assert len({tokens[key].shape[0] for key in QUERY_KEYS if key in tokens}) == 1
    assert _pairs(tokens, SPIKE) == sorted((row, f32(t)) for row, t in spikes)
    assert _pairs(tokens, START) == sorted((int(r), f32(a)) for r in rows for a, _ in observed)
    assert _pairs(tokens, END) == sorted((int(r), f32(b)) for r in rows for _, b in observed)
    assert set(tokens["input_token_type"].tolist()) <= {SPIKE, START, END}
    decoder, row = tokens["output_decoder_index"], tokens["output_sample_index"]
    assert set(decoder.tolist()) <= {READOUTS[name] for name in READOUTS if name in data.behavior}
    for name, index in READOUTS.items():
        mine = decoder == index
        if not mine.any():
            continue
        stream = data.behavior[name]
        inside = np.flatnonzero(_inside(stream.timestamps, observed))
        assert set(row[mine].tolist()) <= set(inside.tolist())
        if every:
            assert row[mine].tolist() == inside.tolist()
        assert np.array_equal(
            tokens["output_timestamps"][mine], stream.timestamps[row[mine]].astype(np.float32)
        )
        values = tokens["target_values"][mine]
        assert np.array_equal(values[:, : stream.dim], stream.values[row[mine]].astype(np.float32))
        assert not values[:, stream.dim :].any()


def _spikes_inside(window: Recording, observed, rows) -> list[tuple[int, float]]:
    """(row, time) of the window's spikes inside ``observed`` whose unit has a row in ``rows``."""
    keep = _inside(window.spikes.times, observed)
    times, units = window.spikes.times[keep], window.spikes.unit_index[keep]
    return [(int(rows[u]), t) for t, u in zip(times, units) if rows[u] >= 0]


@settings(max_examples=300, deadline=None)
@given(case=windows())
def test_any_window_of_any_recording_tokenizes(case):
    recording, start, end, context = case
    validate_recording(recording)
    window = recording.slice(start, end)
    rows = 100 + np.arange(len(recording.units))
    tokens = Tokenizer(readouts=READOUTS, context_length_s=context).tokenize(
        window, unit_index=rows, session_index=0
    )
    observed = _observed(window.domain, None, context)
    _check_tokens(
        tokens,
        spikes=_spikes_inside(window, observed, rows),
        rows=rows,
        observed=observed,
        context=context,
        data=window,
    )


def test_an_empty_domain_span_gets_no_delimiters():
    """Found by fuzzing: a span with start == end (valid, but it holds no data) got a START and
    an END per unit."""
    recording = Recording(
        info=RecordingInfo(recording_id="empty_span"),
        spikes=Spikes([0.1], [0]),
        units=Units(["a", "b"]),
        behavior={},
        domain=Intervals([0.0, 0.5], [0.2, 0.5]),
    )
    validate_recording(recording)
    tokens = Tokenizer(readouts={}).tokenize(
        recording.slice(0.0, 1.0), unit_index=[4, 5], session_index=0
    )
    assert _pairs(tokens, START) == [(4, 0.0), (5, 0.0)]
    assert _pairs(tokens, END) == [(4, np.float32(0.2)), (5, np.float32(0.2))]


@settings(max_examples=300, deadline=None)
@given(
    case=windows(),
    split=st.sampled_from(["train", "valid", "test"]),
    min_units=st.integers(0, 3),
    n_outputs=st.integers(1, 10),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_pipelines_tokenize_any_window(case, split, min_units, n_outputs, seed):
    """Training (restricted to the train split, excluded spans, z-score, unit dropout, weights,
    output sampling) and evaluation (one split, absolute query times) pipelines."""
    recording, start, end, context = case
    dims = {name: stream.dim for name, stream in recording.behavior.items()}
    scales = {name: Scale((0.0,) * dim, (1.0,) * dim) for name, dim in dims.items()}
    zscore = ZScore(Normalizer({"lab": scales}), READOUTS)
    tokenize = Tokenize(Tokenizer(readouts=READOUTS, context_length_s=context))
    training = Compose(
        [
            RestrictToSplit("train"),
            MarkExcluded([recording.intervals["reach"]]),
            zscore,
            UnitDropout(min_units),
            tokenize,
            LossWeights({"reach": 5.0}, READOUTS),
            SampleOutputs(n_outputs),
        ]
    )
    evaluation = Compose([RestrictToSplit(split), zscore, tokenize, AbsoluteQueryTimes(READOUTS)])
    window = recording.slice(start, end)
    rows = 100 + np.arange(len(recording.units))
    for pipeline, name, rng in (
        (training, "train", np.random.default_rng(seed)),
        (evaluation, split, None),
    ):
        sample = pipeline(Sample(Window(0, start, end), window, rows, 7), rng)
        tokens = sample.tokenized()
        observed = _observed(window.domain, window.splits[name], context)
        kept = np.where(np.isin(rows, sample.unit_rows), rows, -1)
        assert set(sample.unit_rows.tolist()) <= set(rows.tolist())
        assert len(sample.unit_rows) >= min(min_units, len(rows))
        _check_tokens(
            tokens,
            spikes=_spikes_inside(window, observed, kept),
            rows=sample.unit_rows,
            observed=observed,
            context=context,
            data=sample.data,
            every=pipeline is evaluation,
        )
        decoder = tokens["output_decoder_index"]
        for stream_name, index in READOUTS.items():
            stream = sample.data.behavior.get(stream_name)
            if stream is None:
                continue
            if pipeline is training:  # at most n_outputs queries of weight > 0 per stream
                excluded = sample.data.intervals[EXCLUDED]
                wanted = _inside(stream.timestamps, observed) & ~_inside(
                    stream.timestamps, list(zip(excluded.start, excluded.end))
                )
                assert (decoder == index).sum() == min(n_outputs, wanted.sum())
            else:  # every sample, at its absolute time in the recording
                absolute = tokens[ABSOLUTE_TIME][decoder == index]
                recorded = recording.behavior[stream_name].timestamps
                assert np.isclose(absolute[:, None], recorded, rtol=0, atol=1e-9).any(axis=1).all()
                assert ((absolute >= start) & (absolute < end)).all()
        if pipeline is training:
            assert (tokens["target_weights"] > 0).all()
