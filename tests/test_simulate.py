"""The simulator: determinism, data-model conventions, spike statistics, recoverable tuning."""

import re

import numpy as np
import pytest

from neuropoyo.data.simulate import (
    LABS,
    REFRACTORY_S,
    make_animal,
    simulate_dataset,
    simulate_session,
)
from neuropoyo.data.validate import recording_problems

SMALL = dict(n_animals=2, sessions_per_animal=2, n_trials=30, duration_s=60.0)


@pytest.fixture(scope="module")
def dataset():
    return simulate_dataset(**SMALL, seed=3)


@pytest.fixture(scope="module")
def animal():
    return make_animal("sim_monkey9", n_neurons=120, seed=11)


@pytest.fixture(scope="module")
def center_out(animal):
    return simulate_session(
        animal=animal, day=0, task="center_out", lab=LABS[0], n_trials=120, seed=6
    )


@pytest.fixture(scope="module")
def random_target(animal):
    return simulate_session(
        animal=animal, day=0, task="random_target", lab=LABS[1], duration_s=300.0, seed=5
    )


@pytest.fixture(scope="module")
def recordings(dataset, center_out, random_target):
    return [*dataset, center_out, random_target]


def binned(recording, width: float):
    """Spike counts (U, B) in bins of ``width`` s and hand velocity (B, 2) at bin centers, bins of
    all recorded spans concatenated; span (B,) tells which span each bin belongs to."""
    counts, velocity, span = [], [], []
    vel = recording.behavior["hand_vel"]
    for k, (start, end) in enumerate(zip(recording.domain.start, recording.domain.end)):
        n = int((end - start) // width)
        spikes = recording.spikes.slice(start, start + n * width)
        flat = spikes.unit_index.astype(np.int64) * n + (spikes.times // width).astype(np.int64)
        counts.append(np.bincount(flat, minlength=len(recording.units) * n).reshape(-1, n))
        centers = start + width * (np.arange(n) + 0.5)
        velocity.append(np.stack([np.interp(centers, vel.timestamps, v) for v in vel.values.T], 1))
        span.append(np.full(n, k))
    return np.concatenate(counts, 1), np.concatenate(velocity), np.concatenate(span)


def circular_distance(a, b):
    return np.abs(np.angle(np.exp(1j * (a - b))))


# --- determinism -------------------------------------------------------------------------------


def test_same_seed_gives_identical_recordings(dataset):
    again = simulate_dataset(**SMALL, seed=3)
    assert len(again) == len(dataset) == 8
    assert all(a == b for a, b in zip(again, dataset))


def test_different_seed_gives_different_spikes(dataset):
    other = simulate_dataset(**SMALL, seed=4)
    assert all(a.spikes != b.spikes for a, b in zip(other, dataset))


def test_each_session_is_independent_of_the_others(dataset):
    """Day 0 of a one-day dataset equals day 0 of the two-day one: sessions use their own seeds."""
    one_day = simulate_dataset(**{**SMALL, "sessions_per_animal": 1}, seed=3)
    day0 = [r for r in dataset if "_day0_" in r.recording_id]
    assert [r.recording_id for r in one_day] == [r.recording_id for r in day0]
    assert all(a == b for a, b in zip(one_day, day0))


def test_session_depends_on_its_seed_only(animal):
    kwargs = dict(animal=animal, day=1, task="random_target", lab=LABS[0], duration_s=20.0)
    a = simulate_session(**kwargs, seed=1)
    assert a == simulate_session(**kwargs, seed=1)
    assert a.spikes != simulate_session(**kwargs, seed=2).spikes


# --- data-model conventions ----------------------------------------------------------------------


def test_recordings_pass_validation(recordings):
    for recording in recordings:
        assert recording_problems(recording) == [], recording.recording_id


def test_dataset_layout_labs_and_info(dataset):
    ids = [r.recording_id for r in dataset]
    assert ids == [
        f"sim_monkey{a}_day{d}_{t}" for a in range(2) for d in range(2) for t in ("co", "rt")
    ]
    for recording in dataset:
        info = recording.info
        animal_index = int(info.subject.removeprefix("sim_monkey"))
        assert info.brainset == ("sim_lab_a", "sim_lab_b")[animal_index % 2]
        assert info.task == {"co": "center_out", "rt": "random_target"}[info.recording_id[-2:]]
        assert info.species == "macaca_mulatta (simulated)"
        assert info.brain_areas == ("M1", "PMd")
        assert info.extra["simulator"] == "neuropoyo" and int(info.extra["seed"]) >= 0
        assert recording.splits == {}


def test_units_follow_the_id_convention(recordings):
    for recording in recordings:
        units = recording.units
        assert all(re.fullmatch(r"sim_monkey\d+/n\d{3}", i) for i in units.ids)
        assert all(i.split("/")[0] == recording.info.subject for i in units.ids)
        assert list(units.ids) == sorted(units.ids)
        assert set(units.columns["area"]) == {"M1", "PMd"}
        assert units.columns["electrode"].dtype.kind == "i"
        assert units.columns["preferred_direction"].dtype == np.float64


def test_spikes_sorted_and_continuous(recordings):
    for recording in recordings:
        spikes = recording.spikes
        assert spikes.unit_index.dtype == np.int32
        assert np.all(np.diff(spikes.times) >= 0)
        assert spikes.unit_index.min() >= 0 and spikes.unit_index.max() < len(recording.units)
    # Continuous times: the phase within a 1 ms grid is uniform, not stuck on grid points.
    phase = (recordings[-1].spikes.times * 1000) % 1
    assert abs(phase.mean() - 0.5) < 0.01 and abs(phase.std() - 12**-0.5) < 0.01


def test_everything_lies_inside_the_domain(recordings):
    for recording in recordings:
        domain = recording.domain
        assert len(domain) >= 2 and domain.is_disjoint()  # at least one bad-segment gap
        assert domain.contains(recording.spikes.times).all()
        for stream in recording.behavior.values():
            assert domain.contains(stream.timestamps).all()
        for spans in [recording.trials, *recording.intervals.values()]:
            assert spans.is_disjoint() and np.all(spans.end > spans.start)
            # Each span lies inside one recorded span: no trial straddles a gap.
            assert spans.intersect(domain) == spans
        gaps = domain.complement(domain.start[0], domain.end[-1])
        assert np.all((gaps.durations() >= 2.0) & (gaps.durations() <= 6.0))


def test_behavior_sampled_at_the_lab_rate(recordings):
    rates = {lab.name: lab.behavior_rate_hz for lab in LABS}
    assert rates == {"sim_lab_a": 100.0, "sim_lab_b": 500.0}
    for recording in recordings:
        pos, vel = recording.behavior["hand_pos"], recording.behavior["hand_vel"]
        assert (pos.unit, vel.unit) == ("m", "m/s")
        assert pos.values.dtype == vel.values.dtype == np.float32
        assert pos.values.shape == vel.values.shape == (len(pos), 2)
        np.testing.assert_array_equal(pos.timestamps, vel.timestamps)
        step = np.diff(pos.timestamps)
        within = step < 1.0  # steps inside a recorded span, not across a gap
        np.testing.assert_allclose(step[within], 1 / rates[recording.info.brainset], rtol=1e-6)
        # Samples cover the recorded time: one per period, up to the spans' edges.
        expected = recording.domain.total_duration() * rates[recording.info.brainset]
        assert abs(len(pos) - expected) <= 2 * len(recording.domain)


def test_hand_velocity_is_the_derivative_of_position(center_out, random_target):
    for recording in (center_out, random_target):
        t = recording.behavior["hand_pos"].timestamps
        pos = recording.behavior["hand_pos"].values.astype(np.float64)
        vel = recording.behavior["hand_vel"].values
        dt = t[2:] - t[:-2]
        central = (pos[2:] - pos[:-2]) / dt[:, None]
        ok = dt < 2.5 * np.median(np.diff(t))  # both neighbours in the same recorded span
        error = np.abs(central[ok] - vel[1:-1][ok])
        assert error.max() < 0.005  # m/s; peak speeds are ~0.3 m/s
        assert np.corrcoef(central[ok].ravel(), vel[1:-1][ok].ravel())[0, 1] > 0.999


# --- spike statistics ----------------------------------------------------------------------------


def test_firing_rates_heterogeneous_and_in_range(recordings):
    for recording in recordings:
        counts = np.bincount(recording.spikes.unit_index, minlength=len(recording.units))
        rates = counts / recording.domain.total_duration()
        assert 3.0 < np.median(rates) < 20.0, recording.recording_id
        assert rates.max() < 100.0
        assert np.percentile(rates, 90) > 3 * np.percentile(rates, 10)


def test_no_isi_below_the_refractory_period(recordings):
    for recording in recordings:
        spikes = recording.spikes
        order = np.lexsort((spikes.times, spikes.unit_index))
        times, units = spikes.times[order], spikes.unit_index[order]
        same_unit = units[1:] == units[:-1]
        isi = np.diff(times)[same_unit]
        assert isi.min() >= REFRACTORY_S
        # A Poisson process would put ~1-2% of ISIs below 2 ms at these rates; none survive.
        assert np.mean(isi < 2 * REFRACTORY_S) > 0.001


def test_untuned_and_silent_units_present(dataset, random_target):
    pd = np.concatenate([r.units.columns["preferred_direction"] for r in dataset])
    assert 0.04 < np.isnan(pd).mean() < 0.3
    # Silent stretches: units firing >= 3 Hz overall that are silent for >= 15 s inside one
    # recorded span (a Poisson neuron at even 1 Hz does that with probability ~e^-15).
    spikes, domain = random_target.spikes, random_target.domain
    longest = []
    for unit in range(len(random_target.units)):
        times = spikes.times[spikes.unit_index == unit]
        if times.size < 3 * domain.total_duration():
            continue
        marks = np.sort(np.concatenate([times, domain.start, domain.end]))
        silences = np.diff(marks)
        inside = domain.contains(marks[:-1] + silences / 2)
        longest.append(silences[inside].max())
    n_silent = np.sum(np.array(longest) >= 15.0)
    assert 1 <= n_silent <= 0.3 * len(longest)


def test_preferred_directions_recoverable_by_regression(center_out, random_target):
    """Regress 50 ms counts on velocity 100 ms ahead: rate ~ b0 + b1 vx + b2 vy + b3 speed."""
    for recording in (center_out, random_target):
        counts, vel, span = binned(recording, 0.05)
        ahead = 2  # bins: 100 ms
        keep = np.flatnonzero(np.r_[span[ahead:] == span[:-ahead], np.zeros(ahead, bool)])
        x, y = vel[keep + ahead], counts[:, keep].T.astype(float)
        design = np.column_stack([np.ones(len(x)), x, np.linalg.norm(x, axis=1)])
        beta = np.linalg.lstsq(design, y, rcond=None)[0]
        fitted = np.arctan2(beta[2], beta[1])
        depth = np.hypot(beta[1], beta[2]) * 0.3 / np.maximum(beta[0], 1e-3)  # relative, at 0.3 m/s
        truth = recording.units.columns["preferred_direction"]
        tuned = ~np.isnan(truth)
        strong = tuned & (depth > np.median(depth[tuned]))
        error = circular_distance(fitted[strong], truth[strong])
        assert strong.sum() >= 20
        assert np.median(error) < 0.25 and np.mean(error < 0.5) > 0.8, recording.recording_id
        # Untuned units show much weaker direction modulation than tuned ones.
        assert np.median(depth[~tuned]) < 0.25 * np.median(depth[tuned])


def test_neural_activity_leads_movement_by_about_100_ms(random_target):
    counts, vel, span = binned(random_target, 0.01)
    tuned = ~np.isnan(random_target.units.columns["preferred_direction"])
    population = counts[tuned].sum(0).astype(float)
    speed = np.linalg.norm(vel, axis=1)

    def correlation(lag: int) -> float:
        """corr(population(t), speed(t + lag bins)) over bin pairs inside one span."""
        a, b = (population, speed) if lag >= 0 else (speed, population)
        lag = abs(lag)
        same = span[lag:] == span[: span.size - lag]
        return np.corrcoef(a[: span.size - lag][same], b[lag:][same])[0, 1]

    lags = np.arange(-30, 31)  # +-300 ms; positive: neural activity leads
    curve = np.array([correlation(int(lag)) for lag in lags])
    assert 50 <= 10 * lags[curve.argmax()] <= 150
    assert curve.max() > 0.3


# --- sessions across days -----------------------------------------------------------------------


def test_units_overlap_partially_between_days(dataset):
    for subject in ("sim_monkey0", "sim_monkey1"):
        day0, day1 = (
            next(r for r in dataset if r.recording_id == f"{subject}_day{d}_co") for d in (0, 1)
        )
        same_day = next(r for r in dataset if r.recording_id == f"{subject}_day0_rt")
        assert same_day.units == day0.units  # both tasks of a day record the same units
        shared, i0, i1 = np.intersect1d(day0.units.ids, day1.units.ids, return_indices=True)
        assert 0.6 < len(shared) / len(day0.units) < 0.95
        assert len(shared) < len(day1.units)  # new units appear too
        # Shared neurons keep their id; their tuning drifts a little.
        pd0 = day0.units.columns["preferred_direction"][i0]
        pd1 = day1.units.columns["preferred_direction"][i1]
        drift = circular_distance(pd0, pd1)[~np.isnan(pd0)]
        assert 0.0 < np.median(drift) < 0.4
        np.testing.assert_array_equal(
            day0.units.columns["area"][i0], day1.units.columns["area"][i1]
        )


def test_population_sizes_vary_between_animals(dataset):
    sizes = {r.info.subject: len(r.units) for r in dataset}
    assert all(30 <= n <= 160 for n in sizes.values())
    assert sizes["sim_monkey0"] != sizes["sim_monkey1"]


# --- task structure ------------------------------------------------------------------------------


def test_center_out_trial_structure(center_out):
    trials = center_out.trials
    cols = trials.columns
    assert len(trials) == 120
    assert cols["target_id"].dtype == np.int64 and cols["success"].dtype == bool
    assert set(cols["target_id"]) == set(range(8))
    np.testing.assert_allclose(cols["target_angle"], cols["target_id"] * np.pi / 4)
    assert 0.82 < cols["success"].mean() < 0.97
    go, onset = cols["go_cue_time"], cols["move_onset_time"]
    assert np.all((trials.start + 0.5 <= go) & (go <= trials.start + 1.0))  # 0.5-1.0 s hold
    assert np.all((onset - go >= 0.25) & (onset - go <= 0.35))  # reaction time
    hold, reach, back = (center_out.intervals[k] for k in ("hold", "reach", "return"))
    assert len(hold) == len(reach) == len(back) == len(trials)
    np.testing.assert_array_equal(hold.start, trials.start)
    np.testing.assert_array_equal(hold.end, go)
    np.testing.assert_array_equal(reach.start, onset)
    assert np.all((reach.durations() >= 0.4) & (reach.durations() <= 0.7))
    assert np.all((reach.end <= back.start) & (back.end <= trials.end))


def test_center_out_reaches_are_bell_shaped_and_reach_the_target(center_out):
    pos, vel = center_out.behavior["hand_pos"], center_out.behavior["hand_vel"]
    reach, cols = center_out.intervals["reach"], center_out.trials.columns
    for k in range(len(reach)):
        window = vel.slice(reach.start[k], reach.end[k])
        speed = np.linalg.norm(window.values, axis=1)
        peak = window.timestamps[speed.argmax()] / reach.durations()[k]
        assert 0.35 < peak < 0.65  # minimum jerk peaks mid-reach (slightly shifted by curvature)
        end = pos.values[np.searchsorted(pos.timestamps, reach.end[k]) - 1]
        if cols["success"][k]:
            assert 0.07 < np.linalg.norm(end) < 0.09
            assert circular_distance(np.arctan2(end[1], end[0]), cols["target_angle"][k]) < 0.2
        else:
            assert np.linalg.norm(end) < 0.065  # failed reaches stop short
    # The hand rests at the center during the hold.
    hold = center_out.intervals["hold"]
    resting = np.concatenate([pos.slice(s, e).values for s, e in zip(hold.start, hold.end)])
    assert np.abs(resting).max() < 0.01


def test_random_target_reaches(random_target):
    assert len(random_target.trials) == 0
    assert set(random_target.intervals) == {"reach"}
    reach = random_target.intervals["reach"]
    assert 150 < len(reach) < 400  # ~1 reach per second
    assert np.percentile(reach.durations(), 90) < 1.0
    pos = random_target.behavior["hand_pos"].values
    assert np.abs(pos).max() < 0.11 and np.abs(pos).max() > 0.09  # the +-10 cm workspace
    # Self-paced: pauses between reaches are short, sometimes long.
    pauses = reach.start[1:] - reach.end[:-1]
    assert np.median(pauses) < 0.6 and pauses.max() > 1.0


def test_invalid_arguments_are_rejected(animal):
    with pytest.raises(ValueError, match="unknown task"):
        simulate_session(animal=animal, day=0, task="reach", lab=LABS[0])
    with pytest.raises(ValueError, match="unknown tasks"):
        simulate_dataset(tasks=("center_out", "typing"))
    with pytest.raises(ValueError, match="no '/'"):
        make_animal("a/b", n_neurons=10, seed=0)
