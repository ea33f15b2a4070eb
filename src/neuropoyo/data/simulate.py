"""Synthetic motor-cortex recordings, so demos and tests need no download.

Each :class:`Animal` owns a pool of neurons (M1- and PMd-like) with heterogeneous baseline rates
and ground-truth tuning. Every recording day samples a drifting subset of that pool: preferred
directions and gains take a small random walk from day to day, and neurons drop out or appear
(about 85% of one day's units are recorded again the next day). Two tasks are simulated:

* ``center_out``: center hold (target shown during its second part) -> go cue -> reaction time ->
  minimum-jerk reach to one of 8 targets at 8 cm -> hold at target -> return to center.
  About 10% of trials fail: the reach stops short and the hand comes back early.
* ``random_target``: continuous self-paced minimum-jerk reaches between random targets in a
  +-10 cm workspace, separated by short (sometimes long) pauses.

Each neuron's log firing rate depends on the hand kinematics 50-150 ms (100 ms on average) in the
future: speed times the cosine of the angle between movement and preferred direction, where the
preferred direction turns with the arm's posture; speed alone; hand position. Before movements a
subset of units (mostly PMd) carries target-dependent preparatory activity. Movement-unrelated
signals ride on top: a slow gain shared by all neurons, four latent factors read through per-neuron
loadings, and long on/off states in ~10% of units. Rates saturate softly at each neuron's maximum.
Spikes are drawn from the resulting inhomogeneous Poisson process with a 2 ms absolute refractory
period. The spikes -> velocity map is therefore nonlinear (exponential tuning, multiplicative gain,
posture-dependent tuning, preparatory activity without movement): on the default settings a small
MLP clearly beats ridge regression (see ``benchmarks/simulator_decoders.py``).

Unit ids are ``{animal}/n{k:03d}`` with k the neuron's index in the pool, so a neuron keeps its id
across days; the ``preferred_direction`` unit column is the day's ground truth at the workspace
center (NaN for untuned units). Every session (except random-target sessions shorter than 30 s and
single-trial ones) has one or two "bad segment" gaps without spikes or behavior. Everything is
deterministic given the seed; each session draws from its own ``SeedSequence`` child, so any one
session can be regenerated on its own.

:func:`simulate_calcium` turns a session into what two-photon imaging of its neurons would record:
each neuron's spikes through a calcium indicator (rise 50 ms, decay 0.7 s, a per-neuron dF/F
amplitude per spike), plus Gaussian noise, sampled at a frame rate: traces of ROIs, no spikes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from neuropoyo.data.intervals import Intervals
from neuropoyo.data.recording import Recording, RecordingInfo, Spikes, TimeSeries, Traces, Units

TASKS = ("center_out", "random_target")
TASK_CODES = {"center_out": "co", "random_target": "rt"}
SPECIES = "macaca_mulatta (simulated)"
BRAIN_AREAS = ("M1", "PMd")

REFRACTORY_S = 0.002  # absolute refractory period: no ISI below 2 ms
RATE_DT_S = 0.005  # firing rates are piecewise constant on a 5 ms grid
CHUNK_S = 30.0  # spikes are made 30 s at a time: ~5 MB per float32 (units x bins) array, 200 units
N_TARGETS = 8
REACH_RADIUS_M = 0.08
WORKSPACE_M = 0.10  # random-target workspace is +-10 cm in x and y
SHOULDER_DISTANCE_M = 0.25  # the shoulder sits 25 cm behind the workspace center
SPEED_REF_MPS = 0.3  # peak speed of a typical center-out reach; tuning reaches nominal depth there

# Day-to-day drift of the recorded population.
PRESENT_FRACTION = 0.75  # share of the pool recorded on a given day
KEEP_PROB = 0.85  # a recorded neuron is recorded again the next day with this probability
# An absent neuron appears the next day with the probability that keeps the share stationary (0.45).
JOIN_PROB = PRESENT_FRACTION * (1 - KEEP_PROB) / (1 - PRESENT_FRACTION)
DIRECTION_DRIFT_RAD = 0.12  # per-day random walk of preferred directions (~7 degrees)
GAIN_DRIFT_LOG = 0.1  # per-day random walk of log gains
LATENT_DIMS = 4  # movement-unrelated shared latent factors

# Calcium imaging (simulate_calcium).
MODALITIES = ("spikes", "calcium")  # what a simulated recording holds: spike times, or dF/F traces
FRAME_RATE_HZ = 15.0
INDICATOR_RISE_S = 0.05  # time constant of the rise of the fluorescence after a spike
INDICATOR_DECAY_S = 0.7  # time constant of its decay (GCaMP6s-like)
DFF_PER_SPIKE = (0.2, 1.0)  # range of the per-neuron peak dF/F of one spike
DFF_NOISE_SD = (0.05, 0.15)  # range of the per-neuron standard deviation of the frame noise
SATURATION_SPIKES = 5.0  # the indicator saturates: x spikes' worth of signal reads x / (1 + x / 5)


@dataclass(frozen=True)
class Lab:
    """Where recordings come from; each lab samples behavior at its own rate."""

    name: str
    behavior_rate_hz: float


LABS = (Lab("sim_lab_a", 100.0), Lab("sim_lab_b", 500.0))


@dataclass(frozen=True, eq=False)
class NeuronPool:
    """Ground truth of an animal's N neurons on day 0; fields are (N,) arrays unless noted.

    direction, position_direction and prep_direction are radians (0 = +x, counter-clockwise).
    The log rate holds velocity_gain * speed/0.3 m/s * cos(movement angle - direction -
    posture_rotation * shoulder angle) (preferred directions turn with the arm, as in Caminiti et
    al. 1991; the shoulder angle is 0 at the workspace center), speed_gain * speed/0.3 m/s,
    position_gain * hand position along position_direction / 10 cm and, before movements,
    prep_gain * cos(planned angle - prep_direction). Untuned neurons have all gains 0.
    """

    area: np.ndarray
    electrode: np.ndarray
    baseline_hz: np.ndarray
    max_rate_hz: np.ndarray
    lag_s: np.ndarray
    direction: np.ndarray
    velocity_gain: np.ndarray
    speed_gain: np.ndarray
    position_gain: np.ndarray
    position_direction: np.ndarray
    posture_rotation: np.ndarray
    prep_gain: np.ndarray
    prep_direction: np.ndarray
    latent_loading: np.ndarray  # (N, LATENT_DIMS) weights of movement-unrelated latent factors
    has_silent_states: np.ndarray

    def __len__(self) -> int:
        return int(self.area.size)

    @property
    def tuned(self) -> np.ndarray:
        return self.velocity_gain > 0


@dataclass(frozen=True, eq=False)
class Animal:
    """A simulated animal: its name, the seed of its neurons and their daily drift, its pool."""

    name: str
    seed: int
    neurons: NeuronPool

    @property
    def n_neurons(self) -> int:
        return len(self.neurons)


def _seed(root: int, *key: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(root, spawn_key=key)


def _int_seed(root: int, *key: int) -> int:
    """A 64-bit integer seed for the child ``key`` of ``root``."""
    return int(_seed(root, *key).generate_state(1, np.uint64)[0])


def _make_pool(rng: np.random.Generator, n: int) -> NeuronPool:
    """Draw N neurons: ~40% PMd, ~15% untuned, ~10% with long silent states."""
    pmd = rng.random(n) < 0.4
    tuned = rng.random(n) >= 0.15
    prep = tuned & (rng.random(n) < np.where(pmd, 0.7, 0.15))
    has_position = tuned & (rng.random(n) < 0.7)
    # Log-normal baselines: median 6 Hz, mean ~8 Hz, clipped to 1-40 Hz.
    baseline = np.clip(rng.lognormal(np.log(6.0), 0.7, n), 1.0, 40.0)
    direction = rng.uniform(0, 2 * np.pi, n)
    return NeuronPool(
        area=np.where(pmd, "PMd", "M1"),
        # Two 96-channel arrays: M1 on electrodes 0-95, PMd on 96-191.
        electrode=rng.integers(0, 96, n) + np.where(pmd, 96, 0),
        baseline_hz=baseline,
        max_rate_hz=rng.uniform(80.0, 200.0, n),
        lag_s=np.clip(rng.normal(0.1, 0.02, n), 0.05, 0.15),
        direction=direction,
        velocity_gain=np.where(tuned, rng.uniform(0.5, 1.5, n), 0.0),
        speed_gain=np.where(tuned, rng.normal(0.4, 0.5, n), 0.0),
        position_gain=np.where(has_position, rng.uniform(0.5, 1.5, n), 0.0),
        position_direction=rng.uniform(0, 2 * np.pi, n),
        posture_rotation=np.where(tuned, rng.normal(1.0, 0.4, n), 0.0),
        prep_gain=np.where(prep, rng.uniform(1.0, 2.0, n), 0.0),
        prep_direction=direction + rng.normal(0, 0.4, n),
        latent_loading=rng.normal(0, 0.2, (n, LATENT_DIMS)),
        has_silent_states=rng.random(n) < 0.1,
    )


def make_animal(name: str, *, n_neurons: int = 100, seed: int = 0) -> Animal:
    """An animal with a pool of ``n_neurons`` neurons, about 75% of which are recorded each day."""
    if n_neurons < 1:
        raise ValueError(f"make_animal: n_neurons must be >= 1, got {n_neurons}")
    if "/" in name or not name:
        raise ValueError(f"make_animal: name {name!r} must be non-empty and contain no '/'")
    return Animal(name, seed, _make_pool(np.random.default_rng(_seed(seed, 0)), n_neurons))


@dataclass(frozen=True, eq=False)
class _Day:
    """Neurons recorded on one day: pool index (U,), drifted direction (U,) and log gain (U,)."""

    index: np.ndarray
    direction: np.ndarray
    log_gain: np.ndarray


def _day_state(animal: Animal, day: int) -> _Day:
    """Walk the presence Markov chain and the tuning drift from day 0 to ``day``."""
    n = animal.n_neurons
    rng = np.random.default_rng(_seed(animal.seed, 1, 0))
    present = rng.random(n) < PRESENT_FRACTION
    direction = animal.neurons.direction.copy()
    log_gain = np.zeros(n)
    for d in range(1, day + 1):
        rng = np.random.default_rng(_seed(animal.seed, 1, d))
        stay, join = rng.random(n) < KEEP_PROB, rng.random(n) < JOIN_PROB
        present = np.where(present, stay, join)
        direction += rng.normal(0, DIRECTION_DRIFT_RAD, n)
        log_gain += rng.normal(0, GAIN_DRIFT_LOG, n)
    index = np.flatnonzero(present)
    return _Day(index, np.mod(direction[index], 2 * np.pi), log_gain[index])


# ---------------------------------------------------------------------------------------------
# Behavior: minimum-jerk movements, preparatory plans, tasks.


@dataclass(frozen=True, eq=False)
class _Moves:
    """M sorted, non-overlapping point-to-point movements plus a small postural sway.

    start, end: (M,) s. origin, target: (M, 2) m. bend: (M,) lateral deviation at mid-reach as a
    fraction of the distance. home: (2,) position before the first movement.
    sway_freq: (K,) Hz, sway_amp / sway_phase: (K, 2) m / rad.
    """

    start: np.ndarray
    end: np.ndarray
    origin: np.ndarray
    target: np.ndarray
    bend: np.ndarray
    home: np.ndarray
    sway_freq: np.ndarray
    sway_amp: np.ndarray
    sway_phase: np.ndarray

    def at(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Hand position (T, 2) m and velocity (T, 2) m/s at times t (T,)."""
        k = np.searchsorted(self.start, t, side="right") - 1
        moving = k >= 0
        k = np.maximum(k, 0)
        duration = self.end[k] - self.start[k]
        s = np.clip((t - self.start[k]) / duration, 0.0, 1.0)[:, None]
        delta = self.target[k] - self.origin[k]
        normal = np.stack([-delta[:, 1], delta[:, 0]], axis=1) * self.bend[k, None]
        # Minimum-jerk profile 10s^3 - 15s^4 + 6s^5 plus a lateral bump 16 s^2 (1-s)^2, zero at
        # both ends; velocities are their exact derivatives.
        bump = 16 * (s * (1 - s)) ** 2
        pos = self.origin[k] + delta * (s**3 * (10 - 15 * s + 6 * s**2)) + normal * bump
        vel = delta * 30 * (s * (1 - s)) ** 2 + normal * 32 * s * (1 - s) * (1 - 2 * s)
        vel = vel / duration[:, None]
        pos = np.where(moving[:, None], pos, self.home)
        vel = np.where(moving[:, None], vel, 0.0)
        for freq, amp, phase in zip(self.sway_freq, self.sway_amp, self.sway_phase):
            angle = 2 * np.pi * freq * t[:, None] + phase
            pos = pos + amp * np.sin(angle)
            vel = vel + amp * 2 * np.pi * freq * np.cos(angle)
        return pos, vel


def _sway(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Three slow postural oscillations per axis (0.3-2 Hz, ~0.3 mm, a few mm/s)."""
    return dict(
        sway_freq=rng.uniform(0.3, 2.0, 3),
        sway_amp=rng.uniform(0.1e-3, 0.4e-3, (3, 2)),
        sway_phase=rng.uniform(0, 2 * np.pi, (3, 2)),
    )


@dataclass(frozen=True, eq=False)
class _Plans:
    """P movement plans: target shown at cue (P,), moving from onset (P,) towards direction (P,)."""

    cue: np.ndarray
    onset: np.ndarray
    direction: np.ndarray

    def at(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Preparatory envelope (T,) in [0, 1] and planned direction (T,) of the latest plan.

        The envelope rises after the cue (100 ms time constant) and decays after onset (150 ms).
        """
        k = np.searchsorted(self.cue, t, side="right") - 1
        active = k >= 0
        k = np.maximum(k, 0)
        rise = 1 - np.exp(-(np.minimum(t, self.onset[k]) - self.cue[k]) / 0.1)
        decay = np.exp(-np.maximum(t - self.onset[k], 0.0) / 0.15)
        return np.where(active, rise * decay, 0.0), self.direction[k]


@dataclass(frozen=True, eq=False)
class _Behavior:
    """What the animal did in one session and where data were recorded."""

    moves: _Moves
    plans: _Plans
    domain: Intervals
    trials: Intervals
    intervals: dict


def _center_out(rng: np.random.Generator, n_trials: int) -> _Behavior:
    """Center-out trials in blocks of 8 shuffled targets; 1-2 gaps inside inter-trial intervals."""
    n = n_trials
    target_id = np.concatenate([rng.permutation(N_TARGETS) for _ in range(-(-n // N_TARGETS))])[:n]
    target_angle = target_id * (2 * np.pi / N_TARGETS)
    success = rng.random(n) >= 0.1
    hold = rng.uniform(0.5, 1.0, n)
    cue_lead = hold * rng.uniform(0.4, 0.8, n)  # target visible for the last 40-80% of the hold
    reaction = rng.uniform(0.25, 0.35, n)
    reach = rng.uniform(0.4, 0.7, n)
    target_hold = np.where(success, rng.uniform(0.3, 0.5, n), rng.uniform(0.1, 0.3, n))
    back = rng.uniform(0.5, 0.8, n)
    iti = rng.uniform(0.5, 1.5, n + 1)
    # Reach endpoints scatter by ~3 degrees and ~2.4 mm; failed reaches stop 30-70% of the way.
    reach_angle = target_angle + rng.normal(0, 0.05, n)
    shortfall = np.where(success, 1.0, rng.uniform(0.3, 0.7, n))
    extent = REACH_RADIUS_M * (1 + rng.normal(0, 0.03, n)) * shortfall
    endpoint = extent[:, None] * np.stack([np.cos(reach_angle), np.sin(reach_angle)], axis=1)
    homes = rng.normal(0, 0.002, (n + 1, 2))  # the hand comes back within ~2 mm of the center
    bend = rng.normal(0, 0.08, (n, 2))

    gap = np.zeros(n)
    if n > 1:
        after = rng.choice(n - 1, size=min(int(rng.integers(1, 3)), n - 1), replace=False)
        gap[after] = rng.uniform(2.0, 6.0, after.size)
    duration = hold + reaction + reach + target_hold + back + 0.2
    step = duration + iti[1:] + gap
    start = iti[0] + np.concatenate([[0.0], np.cumsum(step)[:-1]])
    go = start + hold
    onset = go + reaction
    reach_end = onset + reach
    back_start = reach_end + target_hold
    back_end = back_start + back
    end = start + duration
    session_end = end[-1] + iti[-1]
    gap_start = (end + iti[1:] / 2)[gap > 0]
    gaps = Intervals(gap_start, gap_start + gap[gap > 0])

    moves = _Moves(
        start=np.stack([onset, back_start], axis=1).ravel(),
        end=np.stack([reach_end, back_end], axis=1).ravel(),
        origin=np.stack([homes[:-1], endpoint], axis=1).reshape(-1, 2),
        target=np.stack([endpoint, homes[1:]], axis=1).reshape(-1, 2),
        bend=bend.ravel(),
        home=homes[0],
        **_sway(rng),
    )
    trials = Intervals(
        start,
        end,
        {
            "target_id": target_id.astype(np.int64),
            "target_angle": target_angle,
            "target_on_time": go - cue_lead,
            "go_cue_time": go,
            "move_onset_time": onset,
            "success": success,
        },
    )
    return _Behavior(
        moves=moves,
        plans=_Plans(go - cue_lead, onset, reach_angle),
        domain=Intervals.single(0.0, session_end).difference(gaps),
        trials=trials,
        intervals={
            "hold": Intervals(start, go),
            "reach": Intervals(onset, reach_end),
            "return": Intervals(back_start, back_end),
        },
    )


def _random_target(rng: np.random.Generator, duration_s: float) -> _Behavior:
    """Self-paced reaches between uniform random targets; 1-2 gaps in sessions >= 30 s long."""
    n = int(np.ceil(duration_s / 0.5)) + 1  # each cycle lasts >= 0.5 s, so n reaches always suffice
    targets = rng.uniform(-WORKSPACE_M, WORKSPACE_M, (n, 2))
    origins = np.concatenate([np.zeros((1, 2)), targets[:-1]])
    distance = np.linalg.norm(targets - origins, axis=1)
    # Bigger reaches take longer (~0.35 s for 2 cm, ~0.55 s for 10 cm); vigor varies by ~25%.
    move = np.maximum((0.3 + 2.5 * distance) * rng.lognormal(0, 0.25, n), 0.25)
    show = rng.uniform(0.05, 0.15, n)  # the next target appears shortly after the last is reached
    long_pause = rng.random(n) < 0.1
    pause = np.where(long_pause, rng.uniform(1.0, 3.0, n), rng.uniform(0.15, 0.45, n))
    cycle_end = np.cumsum(show + pause + move)
    cue = cycle_end - move - pause
    onset = cycle_end - move
    keep = cycle_end < duration_s
    moves = _Moves(
        start=onset[keep],
        end=cycle_end[keep],
        origin=origins[keep],
        target=targets[keep],
        bend=rng.normal(0, 0.08, n)[keep],
        home=np.zeros(2),
        **_sway(rng),
    )
    delta = targets - origins
    plans = _Plans(cue[keep], onset[keep], np.arctan2(delta[:, 1], delta[:, 0])[keep])
    domain = Intervals.single(0.0, duration_s).difference(_random_gaps(rng, duration_s))
    return _Behavior(
        moves=moves,
        plans=plans,
        domain=domain,
        trials=Intervals.empty(),
        intervals={"reach": Intervals(moves.start, moves.end).intersect(domain)},
    )


def _random_gaps(rng: np.random.Generator, duration_s: float) -> Intervals:
    """1-2 gaps of 2-6 s, each in the middle half of its own equal share of the session."""
    if duration_s < 30.0:
        return Intervals.empty()
    n_gaps = int(rng.integers(1, 3))
    share = duration_s / n_gaps
    length = rng.uniform(2.0, 6.0, n_gaps)
    start = share * np.arange(n_gaps) + share * rng.uniform(0.25, 0.75, n_gaps) - length / 2
    return Intervals(start, start + length)


# ---------------------------------------------------------------------------------------------
# Neurons: firing rates and spikes.


@dataclass(frozen=True, eq=False)
class _Population:
    """The U neurons recorded in one session with that day's tuning; arrays are (U,) unless noted.

    Per-bin work runs in float32 (half the memory traffic of float64, SIMD sin/cos/exp).
    """

    base_hz: np.ndarray
    max_rate_hz: np.ndarray
    lag_bins: np.ndarray  # lead of neural activity over movement, in RATE_DT_S bins
    direction: np.ndarray
    velocity_gain: np.ndarray
    speed_gain: np.ndarray
    position_gain: np.ndarray
    position_axis: np.ndarray  # (U, 2) position-direction unit vector
    posture_rotation: np.ndarray
    prep_axis: np.ndarray  # (U, 2) prep_gain * prep-direction unit vector
    fluctuation_loading: np.ndarray  # (U, 1 + LATENT_DIMS) weights of _shared_fluctuations
    silent_switches: list  # per silent-state unit: (unit, switch times (S,), starts on)


def _unit_vectors(angle: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(angle), np.sin(angle)], axis=1)


def _population(pool: NeuronPool, day: _Day, rng: np.random.Generator, end: float) -> _Population:
    i = day.index
    silent = np.flatnonzero(pool.has_silent_states[i])
    f32 = np.float32
    return _Population(
        base_hz=(pool.baseline_hz[i] * np.exp(day.log_gain)).astype(f32),
        max_rate_hz=pool.max_rate_hz[i].astype(f32),
        lag_bins=np.round(pool.lag_s[i] / RATE_DT_S).astype(np.int64),
        direction=day.direction.astype(f32),
        velocity_gain=pool.velocity_gain[i].astype(f32),
        speed_gain=pool.speed_gain[i].astype(f32),
        position_gain=pool.position_gain[i].astype(f32),
        position_axis=_unit_vectors(pool.position_direction[i]).astype(f32),
        posture_rotation=pool.posture_rotation[i].astype(f32),
        # Preparatory tuning drifts along with the movement tuning.
        prep_axis=(
            pool.prep_gain[i, None]
            * _unit_vectors(pool.prep_direction[i] + (day.direction - pool.direction[i]))
        ).astype(f32),
        fluctuation_loading=np.column_stack([np.ones(i.size), pool.latent_loading[i]]).astype(f32),
        silent_switches=[(u, *_on_off_switches(rng, end)) for u in silent],
    )


def _on_off_switches(rng: np.random.Generator, end: float) -> tuple[np.ndarray, bool]:
    """Switch times of an on/off process: on for 15 s + Exp(45 s), off for 10 s + Exp(20 s)."""
    k = int(end / 10.0) + 2  # each on+off cycle lasts >= 25 s, so k cycles cover the session
    on = 15.0 + rng.exponential(45.0, k)
    off = 10.0 + rng.exponential(20.0, k)
    starts_on = bool(rng.random() < 0.65)
    first, second = (on, off) if starts_on else (off, on)
    durations = np.stack([first, second], axis=1).ravel()
    return np.cumsum(durations) - durations[0] * rng.random(), starts_on


def _shared_fluctuations(rng: np.random.Generator, end: float) -> tuple[np.ndarray, np.ndarray]:
    """Movement-unrelated log-rate signals shared across neurons, on a 50 ms grid up to ``end``.

    Returns times (C,) and values (C, 1 + LATENT_DIMS): column 0 is a slow global gain
    (std 0.6, time constant 10 s: arousal, satiety), the others are faster latent factors
    (std 1, 0.5 s) that each neuron reads through its own loadings.
    """
    step = 0.05
    times = np.arange(0.0, end + 2 * step, step)
    tau = np.array([10.0] + [0.5] * LATENT_DIMS)
    std = np.array([0.6] + [1.0] * LATENT_DIMS)
    a = np.exp(-step / tau)
    values = rng.normal(0, 1, (times.size, tau.size)) * std * np.sqrt(1 - a * a)
    values[0] = rng.normal(0, 1, tau.size) * std  # start in the stationary distribution
    for k in range(1, times.size):
        values[k] += a * values[k - 1]
    return times, values


def _kinematic_drive(pop: _Population, moves: _Moves, t: np.ndarray) -> np.ndarray:
    """Log-rate contribution (U, T) float32 of the hand kinematics at times t (T,)."""
    pos, vel = moves.at(t)
    pos, vel = pos.astype(np.float32), (vel / SPEED_REF_MPS).astype(np.float32)
    # Shoulder angle: direction of the hand seen from the shoulder, 0 at the workspace center.
    shoulder = np.arctan2(pos[:, 1] + SHOULDER_DISTANCE_M, pos[:, 0]) - np.float32(np.pi / 2)
    angle = pop.direction[:, None] + pop.posture_rotation[:, None] * shoulder
    drive = vel[:, 0] * np.cos(angle)
    drive += vel[:, 1] * np.sin(angle)  # speed * cos(movement angle - preferred direction)
    drive *= pop.velocity_gain[:, None]
    drive += pop.speed_gain[:, None] * np.linalg.norm(vel, axis=1)
    drive += (pop.position_gain[:, None] * pop.position_axis / np.float32(WORKSPACE_M)) @ pos.T
    return drive


def _rates(
    pop: _Population, behavior: _Behavior, fluctuations: tuple, edges: np.ndarray
) -> np.ndarray:
    """Firing rates (U, T) float32 in Hz on the bins ``edges`` (T+1,), taken at each bin's start."""
    t = edges[:-1]
    n_bins = t.size
    future = edges[0] + RATE_DT_S * np.arange(n_bins + pop.lag_bins.max() + 1)
    drive_ahead = _kinematic_drive(pop, behavior.moves, future)
    # Each unit sees the kinematics lag_bins ahead of now.
    drive = np.take_along_axis(drive_ahead, np.arange(n_bins) + pop.lag_bins[:, None], axis=1)
    envelope, planned = behavior.plans.at(t)
    drive += pop.prep_axis @ (_unit_vectors(planned) * envelope[:, None]).T.astype(np.float32)
    times, values = fluctuations
    shared = np.stack([np.interp(t, times, v) for v in values.T])  # (1 + LATENT_DIMS, T)
    drive += pop.fluctuation_loading @ shared.astype(np.float32)
    # rate = base * exp(drive), saturating softly: max_rate * (1 - exp(-rate / max_rate)); in place.
    rates = np.exp(drive, out=drive)
    rates *= pop.base_hz[:, None] / -pop.max_rate_hz[:, None]
    np.expm1(rates, out=rates)
    rates *= -pop.max_rate_hz[:, None]
    for unit, switches, starts_on in pop.silent_switches:
        on = (np.searchsorted(switches, t, side="right") % 2 == 0) == starts_on
        rates[unit] *= on
    return rates


def _poisson(
    rng: np.random.Generator, rates: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Spikes of independent Poisson processes with rates (U, T) constant in bins ``edges`` (T+1,).

    All units share one cumulative intensity (unit-major), so one sorted uniform draw and one binary
    search place every spike; inverting the piecewise-linear cumulative gives continuous times.
    Returns times (S,) and units (S,), grouped by unit and sorted by time within each unit.
    """
    widths = np.diff(edges)
    mass = (rates * widths).ravel()
    cumulative = np.cumsum(mass)
    total = cumulative[-1]
    x = np.sort(rng.uniform(0.0, total, rng.poisson(total)))
    j = np.searchsorted(cumulative, x, side="right")  # flat (unit, bin) index of each spike
    unit, b = np.divmod(j, widths.size)
    frac = (x - (cumulative[j] - mass[j])) / mass[j]
    return edges[b] + frac * widths[b], unit.astype(np.int32)


def _refractory(
    times: np.ndarray, units: np.ndarray, last: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Drop spikes closer than REFRACTORY_S to their unit's previous spike; return them time-sorted.

    ``times`` (S,) are grouped by unit and sorted within each unit, as ``_poisson`` returns them.
    ``last`` (U,) holds each unit's latest spike time before these (-inf for none) and is updated in
    place. Measuring from the previous drawn spike, kept or not, is vectorizable and still
    guarantees every kept ISI >= REFRACTORY_S.
    """
    first = np.diff(units, prepend=-1) != 0  # first spike of its unit in this batch
    previous = np.roll(times, 1)
    previous[first] = last[units[first]]
    keep = times - previous >= REFRACTORY_S
    final = np.diff(units, append=-1) != 0  # last spike of its unit in this batch
    last[units[final]] = times[final]
    times, units = times[keep], units[keep]
    order = np.argsort(times, kind="stable")
    return times[order], units[order]


def _spikes(
    rng: np.random.Generator, pop: _Population, behavior: _Behavior, fluctuations: tuple
) -> Spikes:
    """Spikes inside the recorded spans, generated CHUNK_S at a time (so in time order)."""
    times, units = [], []
    last = np.full(pop.base_hz.size, -np.inf)
    for span_start, span_end in zip(behavior.domain.start, behavior.domain.end):
        for chunk_start in np.arange(span_start, span_end, CHUNK_S):
            chunk_end = min(chunk_start + CHUNK_S, span_end)
            n_bins = int(np.ceil((chunk_end - chunk_start) / RATE_DT_S))
            edges = np.minimum(chunk_start + RATE_DT_S * np.arange(n_bins + 1), chunk_end)
            t, u = _poisson(rng, _rates(pop, behavior, fluctuations, edges), edges)
            t, u = _refractory(t, u, last)
            times.append(t)
            units.append(u)
    times, units = np.concatenate(times), np.concatenate(units)
    inside = behavior.domain.contains(times)  # rounding can put a spike exactly on a span's end
    return Spikes(times[inside], units[inside])


def _behavior_streams(behavior: _Behavior, rate_hz: float) -> dict[str, TimeSeries]:
    """hand_pos (N, 2) m and hand_vel (N, 2) m/s, float32, on the lab's clock inside the domain."""
    clock = np.arange(int(np.ceil(behavior.domain.end[-1] * rate_hz))) / rate_hz
    clock = clock[behavior.domain.contains(clock)]
    pos, vel = np.empty((clock.size, 2), np.float32), np.empty((clock.size, 2), np.float32)
    for piece in range(0, clock.size, 2**17):  # pieces bound the float64 temporaries (~2 MB each)
        where = slice(piece, piece + 2**17)
        pos[where], vel[where] = behavior.moves.at(clock[where])
    return {"hand_pos": TimeSeries(clock, pos, "m"), "hand_vel": TimeSeries(clock, vel, "m/s")}


def _units(animal: Animal, day: _Day) -> Units:
    pool = animal.neurons
    return Units(
        np.array([f"{animal.name}/n{k:03d}" for k in day.index]),
        {
            "area": pool.area[day.index],
            "electrode": pool.electrode[day.index],
            "preferred_direction": np.where(pool.tuned[day.index], day.direction, np.nan),
        },
    )


def simulate_session(
    *,
    animal: Animal,
    day: int,
    task: str,
    lab: Lab,
    n_trials: int = 100,
    duration_s: float = 300.0,
    seed: int = 0,
) -> Recording:
    """One recording of ``animal`` on ``day`` (>= 0) doing ``task`` in ``lab``.

    center_out sessions have ``n_trials`` trials (~3.8 s each including the inter-trial interval);
    random_target sessions last ``duration_s`` seconds. The recorded units and their tuning depend
    only on (animal, day); behavior and spikes on ``seed``. Splits are left empty.
    """
    if task not in TASKS:
        raise ValueError(f"simulate_session: unknown task {task!r}; use one of {list(TASKS)}")
    if day < 0:
        raise ValueError(f"simulate_session: day must be >= 0, got {day}")
    if task == "center_out" and n_trials < 1:
        raise ValueError(f"simulate_session: n_trials must be >= 1, got {n_trials}")
    if task == "random_target" and duration_s < 5.0:
        raise ValueError(f"simulate_session: duration_s must be >= 5 s, got {duration_s}")
    behavior_rng, state_rng, spike_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    if task == "center_out":
        behavior = _center_out(behavior_rng, n_trials)
    else:
        behavior = _random_target(behavior_rng, duration_s)
    day_state = _day_state(animal, day)
    end = float(behavior.domain.end[-1])
    pop = _population(animal.neurons, day_state, state_rng, end)
    fluctuations = _shared_fluctuations(state_rng, end)
    info = RecordingInfo(
        recording_id=f"{animal.name}_day{day}_{TASK_CODES[task]}",
        brainset=lab.name,
        subject=animal.name,
        task=task,
        species=SPECIES,
        brain_areas=BRAIN_AREAS,
        extra={"simulator": "neuropoyo", "seed": str(seed), "day": str(day)},
    )
    return Recording(
        info=info,
        spikes=_spikes(spike_rng, pop, behavior, fluctuations),
        units=_units(animal, day_state),
        behavior=_behavior_streams(behavior, lab.behavior_rate_hz),
        domain=behavior.domain,
        trials=behavior.trials,
        intervals=behavior.intervals,
    )


def simulate_dataset(
    *,
    n_animals: int = 2,
    sessions_per_animal: int = 2,
    tasks: tuple[str, ...] = TASKS,
    n_trials: int = 100,
    duration_s: float = 300.0,
    seed: int = 0,
) -> list[Recording]:
    """Recordings of ``n_animals`` animals x ``sessions_per_animal`` days x ``tasks``.

    Animal i (``sim_monkey{i}``, a pool of 60-160 neurons) belongs to lab i % 2: ``sim_lab_a``
    samples behavior at 100 Hz, ``sim_lab_b`` at 500 Hz. Days 0, 1, ... record overlapping,
    drifting subsets of the animal's pool; each task of a day records the same units.
    """
    unknown = set(tasks) - set(TASKS)
    if unknown:
        raise ValueError(f"simulate_dataset: unknown tasks {sorted(unknown)}; use {list(TASKS)}")
    sizes = np.random.default_rng(_seed(seed, 0)).integers(60, 161, n_animals)
    recordings = []
    for a in range(n_animals):
        animal = make_animal(f"sim_monkey{a}", n_neurons=int(sizes[a]), seed=_int_seed(seed, 1, a))
        for day in range(sessions_per_animal):
            for task in tasks:
                session_seed = _int_seed(seed, 2, a, day, TASKS.index(task))
                recordings.append(
                    simulate_session(
                        animal=animal,
                        day=day,
                        task=task,
                        lab=LABS[a % len(LABS)],
                        n_trials=n_trials,
                        duration_s=duration_s,
                        seed=session_seed,
                    )
                )
    return recordings


# ---------------------------------------------------------------------------------------------
# Calcium imaging.


def _indicator(spikes: Spikes, n_units: int, frames: np.ndarray) -> np.ndarray:
    """(F, U) fluorescence at sorted frame times (F,): per unit, the sum over its earlier spikes of
    the kernel (1 - exp(-t / rise)) exp(-t / decay), t the time since the spike, scaled to peak 1.

    The kernel is exp(-t / decay) - exp(-t / fast) with 1/fast = 1/rise + 1/decay; each term is
    carried from frame to frame by its decay over the frame step, so every spike counts exactly.
    """
    fast = 1.0 / (1.0 / INDICATOR_RISE_S + 1.0 / INDICATOR_DECAY_S)
    peak_t = INDICATOR_RISE_S * np.log1p(INDICATOR_DECAY_S / INDICATOR_RISE_S)
    peak = np.exp(-peak_t / INDICATOR_DECAY_S) - np.exp(-peak_t / fast)
    after = np.searchsorted(frames, spikes.times)  # the first frame at or after each spike
    seen = after < frames.size
    after, times, units = after[seen], spikes.times[seen], spikes.unit_index[seen]
    signal = np.zeros((frames.size, n_units))
    for tau, sign in ((INDICATOR_DECAY_S, 1.0), (fast, -1.0)):
        weights = np.exp(-(frames[after] - times) / tau)
        state = np.bincount(after * n_units + units, weights, frames.size * n_units)
        state = state.reshape(frames.size, n_units)
        carry = np.exp(-np.diff(frames) / tau)
        for k in range(1, frames.size):
            state[k] += carry[k - 1] * state[k - 1]
        signal += sign * state
    return signal / peak


def simulate_calcium(
    recording: Recording, *, frame_rate_hz: float = FRAME_RATE_HZ, seed: int = 0
) -> Recording:
    """What two-photon imaging of the neurons of spike ``recording`` would record.

    Each unit becomes ROI ``roi_NNN`` (its row; unit column ``neuron`` keeps the unit id, ``area``
    and ``preferred_direction`` are kept): dF/F = amplitude * the sum over its spikes of
    ``(1 - exp(-t / 50 ms)) exp(-t / 0.7 s)`` scaled to peak 1 (t: time since the spike), passed
    through the indicator's saturation x / (1 + x / SATURATION_SPIKES) (a fast-firing neuron reads
    at most 5 spikes' worth), times an amplitude per neuron uniform in DFF_PER_SPIKE, + Gaussian noise (sd per neuron uniform in DFF_NOISE_SD),
    at frame centres ``(k + 0.5) / frame_rate_hz`` inside the domain. Returns a recording ``<recording_id>_ca`` with these traces (kind "dff") and no
    spikes; behavior, trials, intervals, splits and domain are kept. Same recording and seed, same
    traces.
    """
    if frame_rate_hz <= 0:
        raise ValueError(f"simulate_calcium: frame_rate_hz must be > 0, got {frame_rate_hz}")
    if recording.has_traces:
        raise ValueError(f"simulate_calcium: {recording.recording_id} already holds traces")
    n_units = len(recording.units)
    key = tuple(recording.recording_id.encode())  # one stream of draws per recording
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))
    amplitude = rng.uniform(*DFF_PER_SPIKE, n_units)
    noise_sd = rng.uniform(*DFF_NOISE_SD, n_units)
    frames = (np.arange(int(np.ceil(recording.end * frame_rate_hz))) + 0.5) / frame_rate_hz
    frames = frames[recording.domain.contains(frames)]
    signal = _indicator(recording.spikes, n_units, frames)
    dff = signal / (1.0 + signal / SATURATION_SPIKES) * amplitude
    dff += rng.normal(0.0, 1.0, dff.shape) * noise_sd
    columns = recording.units.columns
    kept = {name: columns[name] for name in ("area", "preferred_direction") if name in columns}
    info = recording.info
    return dataclasses.replace(
        recording,
        info=dataclasses.replace(
            info,
            recording_id=f"{info.recording_id}_ca",
            extra={**info.extra, "modality": "calcium", "frame_rate_hz": f"{frame_rate_hz:g}"},
        ),
        spikes=Spikes.empty(),
        units=Units(
            np.array([f"roi_{k:03d}" for k in range(n_units)]),
            {"neuron": recording.units.ids, **kept},
        ),
        traces=Traces(frames, dff, np.arange(n_units), "dff"),
    )
