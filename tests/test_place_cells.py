"""Position from place cells: epochs imported as named intervals, splits drawn where the position
exists, the Bayesian place-field decoder (known answers on simulated place cells), the median
position error next to R2, and clear errors where a split holds no position."""

from __future__ import annotations

import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from neuropoyo import api
from neuropoyo.baselines import BayesDecoder, design
from neuropoyo.cli import main
from neuropoyo.data import Intervals, Recording, RecordingInfo, Spikes, TimeSeries, Units
from neuropoyo.data.splits import BEHAVIOR_REACH_S, assign_splits, behavior_coverage
from neuropoyo.evaluation.compare import error_table, format_errors_markdown
from neuropoyo.evaluation.metrics import median_error
from neuropoyo.evaluation.report import RecordingResult, format_table, summarize

REAL = Path(__file__).parents[2] / "shared" / "data" / "real"
TRACK_CM = 100.0
RUN = Intervals([0.0, 200.0], [120.0, 300.0])  # on the track; [120, 200) rest, where nothing tracks the animal
REST = Intervals.single(120.0, 200.0)
RATE_HZ = 30.0  # position samples per second, while running


def laps(times: np.ndarray) -> np.ndarray:
    """Position (cm) running 0 -> 100 -> 0 cm every 20 s."""
    return TRACK_CM * (1.0 - np.abs((times % 20.0) / 10.0 - 1.0))


def place_cell_session(seed: int = 0, n_units: int = 20, *, velocity: bool = False) -> Recording:
    """300 s: Gaussian place fields (8 cm wide, 15 Hz peak, centres evenly along the track) while
    running, 0.5 Hz everywhere in rest; Poisson spikes; position (cm, 30 Hz) only while running."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, 300.0, 1.0 / RATE_HZ)
    t = t[RUN.contains(t)]
    fine = np.arange(0.0, 300.0, 0.002)
    centres = np.linspace(0.0, TRACK_CM, n_units)
    fields = 15.0 * np.exp(-0.5 * ((laps(fine)[:, None] - centres) / 8.0) ** 2)
    rate = np.where(RUN.contains(fine)[:, None], fields, 0.5)
    step, unit = np.nonzero(rng.random(rate.shape) < rate * 0.002)
    times = fine[step] + rng.uniform(0.0, 0.002, step.size)
    order = np.argsort(times, kind="stable")
    behavior = {"position": TimeSeries(t, laps(t)[:, None], "cm")}
    if velocity:
        behavior["velocity"] = TimeSeries(t, np.gradient(laps(t), t)[:, None], "cm/s")
    return Recording(
        info=RecordingInfo("place_cells", brainset="sim", task="linear_track"),
        spikes=Spikes(times[order], unit[order].astype(np.int32)),
        units=Units([f"cell{k}" for k in range(n_units)]),
        behavior=behavior,
        domain=Intervals.single(0.0, 300.0),
        intervals={"run": RUN, "rest": REST},
    )


@pytest.fixture(scope="module")
def session() -> Recording:
    return assign_splits(place_cell_session())


# ------------------------------------------------------------------------------------- splits


def test_coverage_is_the_time_within_half_a_second_of_a_sample():
    t = np.concatenate([np.arange(10.0, 20.01, 0.1), [20.9], np.arange(30.0, 40.01, 0.1)])
    recording = Recording(
        RecordingInfo("r"), Spikes.empty(), Units(["u"]), {"x": TimeSeries(t, t[:, None], "cm")},
        Intervals([0.0, 35.0], [32.0, 50.0]),
    )
    covered = behavior_coverage(recording)  # 20.0 -> 20.9 bridged (under 1 s), 20.9 -> 30.0 not
    assert BEHAVIOR_REACH_S == 0.5
    np.testing.assert_allclose(covered.start, [9.5, 29.5, 35.0])
    np.testing.assert_allclose(covered.end, [21.4, 32.0, 40.5])  # cut to the domain
    no_behavior = Recording(RecordingInfo("r"), Spikes.empty(), Units(["u"]), {}, recording.domain)
    assert behavior_coverage(no_behavior) == recording.domain


def test_continuous_splits_are_drawn_where_the_position_exists(session):
    covered = behavior_coverage(session)
    np.testing.assert_allclose(covered.start, [0.0, 199.5])
    np.testing.assert_allclose(covered.end, [120.0 - 1 / RATE_HZ + 0.5, 300.0])
    total = covered.total_duration()
    for name, fraction in (("train", 0.7), ("valid", 0.1), ("test", 0.2)):
        split = session.splits[name]
        assert split.total_duration() == pytest.approx(fraction * total)
        assert split.intersect(covered).total_duration() == pytest.approx(split.total_duration())
        assert split.intersect(Intervals.single(120.5, 199.5)).total_duration() == 0.0  # never in rest
        assert split.contains(session.behavior["position"].timestamps).sum() > 100


# -------------------------------------------------------------------------------- the decoder


def test_bayes_posterior_is_the_poisson_formula_on_a_tiny_example():
    """Two cells (0.25, 0.75), unit A fires 2 per window in the first, B 1 in the second; no
    smoothing. Rates: A (2, floor 1 % of its mean 1), B (floor 1 % of 0.5, 1)."""
    counts = np.array([[2, 0], [2, 0], [0, 1], [0, 1]], dtype=float)
    X = np.concatenate([counts[:, None, :], np.ones((4, 1, 1))], axis=2)
    y = np.array([[0.0], [0.0], [1.0], [1.0]])
    decoder = BayesDecoder(n_bins=2, sigma_bins=0.0, estimate="mean").fit(X, y, X, y)
    np.testing.assert_allclose(decoder.centres_, [[0.25], [0.75]])
    np.testing.assert_allclose(np.exp(decoder.log_rates_), [[2.0, 0.005], [0.01, 1.0]])
    sample = np.array([[[1.0, 0.0, 0.5]]])  # one spike of A, half the window observed
    log_post = np.array([np.log(2.0) - 0.5 * 2.005, np.log(0.01) - 0.5 * 1.01])
    expected = np.exp(log_post) / np.exp(log_post).sum()
    np.testing.assert_allclose(decoder.posterior(sample)[0], expected)
    np.testing.assert_allclose(decoder.predict(sample), [[expected @ [0.25, 0.75]]])
    assert BayesDecoder(n_bins=2, sigma_bins=0.0, estimate="map").fit(X, y, X, y).predict(sample)[0, 0] == 0.25


def _designs(session: Recording):
    return [
        design(session, "position", session.splits[name], bin_s=0.5, n_lags=1, one_per_bin=name != "test")
        for name in ("train", "valid", "test")
    ]


def test_bayes_decodes_simulated_place_cells_and_a_shuffled_map_does_not(session):
    (X, y, _), (X_valid, y_valid, _), (X_test, y_test, _) = _designs(session)
    chance = median_error(y_test, np.full_like(y_test, np.median(y)))
    decoded = BayesDecoder().fit(X, y, X_valid, y_valid)
    assert decoded.estimate_ in ("map", "mean")
    assert median_error(y_test, decoded.predict(X_test)) < 0.2 * chance
    shuffled = np.random.default_rng(1).permutation(y)
    control = BayesDecoder().fit(X, shuffled, X_valid, y_valid)
    assert median_error(y_test, control.predict(X_test)) > 0.6 * chance


def test_bayes_decodes_2d_and_refuses_3d(session):
    (X, y, _), (X_valid, y_valid, _), (X_test, y_test, _) = _designs(session)
    rng = np.random.default_rng(0)
    lift = lambda v: np.column_stack([v, 5.0 + rng.normal(0.0, 0.5, len(v))])  # noqa: E731  (a narrow track in 2-D)
    decoder = BayesDecoder().fit(X, lift(y), X_valid, lift(y_valid))
    assert decoder.shape_[0] == 50 and decoder.shape_[1] < 10  # square cells: few across the track
    chance = median_error(y_test, np.full_like(y_test, np.median(y)))
    assert median_error(lift(y_test), decoder.predict(X_test)) < 0.3 * chance
    with pytest.raises(ValueError, match="1-D or 2-D position, but y has 3 dimensions"):
        BayesDecoder().fit(X, np.repeat(y, 3, axis=1), X_valid, np.repeat(y_valid, 3, axis=1))


def test_baselines_run_bayes_on_its_own_window_and_report_the_median_error(session, tmp_path):
    summaries = api.baselines(
        session, tmp_path, methods=["wiener", "bayes"], readout="position", eval_intervals=["run"]
    )
    bayes = summaries["bayes"]["recordings"]["place_cells"]["streams"]["position"]
    wiener = summaries["wiener"]["recordings"]["place_cells"]["streams"]["position"]
    assert bayes["units"] == "cm" and bayes["median_error"] < wiener["median_error"]
    assert bayes["samples"] == wiener["samples"]  # the same test samples for every method
    text = api.compare([tmp_path])
    assert "| median error | place_cells/position (cm) |" in text
    assert f"**{bayes['median_error']:.4g}**" in text


# ------------------------------------------------------------------------------------ metrics


def test_median_error_is_the_median_euclidean_distance_in_the_stream_unit():
    true = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
    predicted = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 2.0]])
    assert median_error(true, predicted) == 1.0  # distances 0, 5, 1
    result = RecordingResult("r", "linear_track", "sim", "position", np.arange(3.0), true, predicted,
                             np.zeros(3, dtype=int), "px")
    summary = summarize([result], split="test")
    assert summary["recordings"]["r"]["streams"]["position"]["median_error"] == 1.0
    header, _, row = format_table(summary).splitlines()[:3]
    assert "median error" in header and "1 px" in row
    assert error_table({"bayes": summary}) == {"bayes": {"r/position (px)": 1.0}}
    assert format_errors_markdown({"m": {}}) == ""


# ------------------------------------------------------------------------------------- errors


def test_baselines_with_a_valid_split_without_position_say_so_without_a_traceback(tmp_path, capsys):
    recording = place_cell_session().with_splits(
        {"train": Intervals.single(0.0, 100.0), "valid": Intervals.single(130.0, 190.0),
         "test": Intervals.single(200.0, 300.0)}
    )
    api.write_recordings([recording], tmp_path / "data")
    argv = ["baselines", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "b"), "--readout", "position"]
    assert main([*argv, "--methods", "bayes"]) == 2
    err = capsys.readouterr().err
    assert "the valid split of place_cells holds 0 sample(s) of position" in err
    assert "neuropoyo prepare" in err and "Traceback" not in err


def test_training_without_position_in_its_valid_split_warns_and_keeps_no_best_model(tmp_path):
    from neuropoyo.distributed import SINGLE
    from neuropoyo.pipeline import RecordingSet
    from neuropoyo.training.config import TrainConfig
    from neuropoyo.training.loop import _validation_period
    from neuropoyo.training.watch import NoValidationWarning

    in_rest = place_cell_session().with_splits(
        {"train": Intervals.single(0.0, 100.0), "valid": Intervals.single(130.0, 190.0),
         "test": Intervals.single(200.0, 300.0)}
    )
    (path,) = api.write_recordings([in_rest], tmp_path / "rest")
    with pytest.warns(NoValidationWarning, match="no valid split holds a sample of the decoded streams"):
        assert _validation_period(TrainConfig(), RecordingSet([path], readouts={"position": 1}), SINGLE) == 0
    (path,) = api.write_recordings([assign_splits(place_cell_session())], tmp_path / "run")
    assert _validation_period(TrainConfig(), RecordingSet([path], readouts={"position": 1}), SINGLE) == 500
    # the best model chosen on a stream no valid split holds: said, not silently no best model
    both = RecordingSet([path], readouts={"position": 1, "velocity": 1})
    assert _validation_period(TrainConfig(), both, SINGLE) == 500
    with pytest.warns(NoValidationWarning, match=r"of the streams of training.select_on \['velocity'\].*name other readouts"):
        assert _validation_period(TrainConfig(select_on=["velocity"]), both, SINGLE) == 0


def test_train_without_the_default_readout_names_the_flag_and_the_config_key(tmp_path, capsys):
    api.write_recordings([assign_splits(place_cell_session(velocity=True))], tmp_path / "data")
    assert main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "they hold position, velocity" in err
    assert "--readout position" in err and "model.readouts: {position: 1}" in err


# ---------------------------------------------------------------------------------------- NWB


def _place_cell_nwb(path: Path, *, epoch_type: bool) -> Path:
    """The simulated session as an NWB file: units with obs_intervals, position and velocity in
    processing/behavior (run only), and an epochs table (run, rest, run)."""
    pynwb = pytest.importorskip("pynwb")
    session = place_cell_session(velocity=True)
    nwb = pynwb.NWBFile(
        session_description="linear_track", identifier="place", session_start_time=datetime(2020, 1, 1, tzinfo=timezone.utc)
    )
    for k, unit_id in enumerate(session.units.ids):
        nwb.add_unit(spike_times=session.spikes.times[session.spikes.unit_index == k], obs_intervals=[[0.0, 300.0]])
    module = nwb.create_processing_module("behavior", "behavior")
    for name, stream in session.behavior.items():
        module.add(pynwb.TimeSeries(name=name, data=stream.values, unit=stream.unit, timestamps=stream.timestamps))
    if epoch_type:
        nwb.add_epoch_column("epoch_type", "run or rest")
    rows = [(0.0, 120.0, ["run"]), (120.0, 200.0, ["rest"]), (200.0, 300.0, ["run", "novel"])]
    for start, stop, tags in rows:
        nwb.add_epoch(start_time=start, stop_time=stop, tags=tags, **({"epoch_type": tags[0]} if epoch_type else {}))
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


@pytest.mark.parametrize("epoch_type", [True, False], ids=["epoch_type and tags", "tags only"])
def test_nwb_epochs_become_named_intervals_and_defaults_load_the_position(tmp_path, epoch_type):
    from neuropoyo.data.importers.nwb import read_nwb

    path = _place_cell_nwb(tmp_path / "sim_place.nwb", epoch_type=epoch_type)
    recording = read_nwb(path)  # no flags
    assert sorted(recording.behavior) == ["position", "velocity"]  # no hand_vel: every series
    assert recording.domain == Intervals.single(0.0, 300.0)  # obs_intervals, rest included
    assert recording.intervals["run"] == RUN
    assert recording.intervals["rest"] == REST
    assert recording.intervals["novel"] == Intervals.single(200.0, 300.0)
    for split in recording.splits.values():
        assert split.intersect(Intervals.single(120.5, 199.5)).total_duration() == 0.0
    out = tmp_path / "prepared"
    assert main(["prepare", "nwb", str(path), "--out", str(out), "--behavior", "position"]) == 0
    assert api.read_recordings(out)[0].intervals["run"] == RUN


# ----------------------------------------------------------------------------------- real data


def test_real_linear_track_imports_with_defaults_and_bayes_beats_chance_on_the_run(tmp_path):
    if not REAL.is_dir():
        pytest.skip("../shared/data/real not found: real-data tests need the project's shared data")
    pytest.importorskip("pynwb")
    from neuropoyo.data.importers.nwb import read_nwb

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # task 'unknown'; one repeated position timestamp repaired
        recording = read_nwb(REAL / "nelpy_linear_track.nwb")
    assert sorted(recording.behavior) == ["position", "velocity"]
    assert sorted(recording.intervals) == ["rest", "run", "untracked"]
    run = recording.intervals["run"]
    for split in recording.splits.values():  # inside the run epoch, up to the half-second reach
        assert split.total_duration() > 60.0
        assert split.total_duration() - split.intersect(run).total_duration() < 2 * BEHAVIOR_REACH_S
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summary = api.baselines(recording, tmp_path, methods=["bayes"], readout="position", eval_intervals=["run"])
    scored = summary["bayes"]["recordings"]["nelpy_linear_track"]["streams"]["position"]
    position = recording.behavior["position"]
    train = position.values[recording.splits["train"].contains(position.timestamps)]
    test = position.values[recording.splits["test"].contains(position.timestamps)]
    chance = median_error(test, np.broadcast_to(np.median(train, axis=0), test.shape))
    assert scored["units"] == "pixels" and scored["median_error"] < 0.6 * chance
