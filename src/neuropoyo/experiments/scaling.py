"""Scaling with model size and data (paper Figure 3), and multi-session against single-session POYO.

``neuropoyo experiment scaling`` trains one POYO per (width, depth, N) on the first N recordings
(same run file and number of steps for every fit; only the self-attention depth and, optionally, the
width change) and one single-session POYO per recording of the largest set with the run file's own
model: the single-session average is the reference every multi-session model is measured against,
on the same recordings. Each model is scored as ``neuropoyo evaluate`` scores it (its best model on
validation, the test split of every recording it trained on), and during training at a few steps
(its current weights) for the curve of test R2 against training tokens. That scoring draws its
DataLoader seed from torch's random stream, so a fit's dropout masks differ from those of a plain
``neuropoyo train`` of the same run file: the same recipe, another draw of its noise.

Training tokens are counted from the training batches themselves: the batches of a run are a pure
function of its run file and recordings (windows and augmentation are seeded), so they are drawn
again through the training pipeline and the real (unpadded) input tokens summed: spikes plus the
START and END delimiters of every unit.

Every fit is repeated for each seed (the run file's ``training.seed``: weights, windows,
augmentation); a multi-session model is compared with the single-session models of the same seed,
so the differences are paired per seed. Tables give the mean ± sd over seeds.

Every finished fit is written to ``OUT/runs/seed<s>/<model>/<N>_recordings.json`` (single-session:
``OUT/runs/seed<s>/single/<recording>.json``); a rerun into the same folder skips them. Results go
to ``scaling.csv``, ``scaling.json``, ``table.md`` and ``scaling.png``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from neuropoyo.data.directory import find_recordings, write_dataset
from neuropoyo.data.simulate import simulate_dataset
from neuropoyo.data.store import open_recording
from neuropoyo.errors import ConfigError
from neuropoyo.evaluation.evaluate import evaluation_config, predict, recordings_for
from neuropoyo.evaluation.report import new_figure, save_png, summarize
from neuropoyo.experiments.cache import Log, cached_fit, keeps_fits_on_interrupt
from neuropoyo.experiments.spread import mean_and_spread, paired_cell, sample_sd
from neuropoyo.io import write_text_atomic
from neuropoyo.pipeline import (
    RecordingSet,
    WindowDataset,
    training_pipeline,
    window_loader,
)
from neuropoyo.trained import TrainedModel, load_model
from neuropoyo.training.config import RunConfig, read_run_info
from neuropoyo.training.loop import RUN_INFO, epoch_batches, train
from neuropoyo.training.recipe import default_config, resolve_config

SIMULATED_STEPS = 400  # per fit on the default simulated data: the grid took 23 min on 2 shared cores
# The grid and simulated data of `neuropoyo experiment scaling` without options, and with --quick
# (a smoke test: 2 tiny recordings, 20 steps).
DEFAULTS = {"depths": (1, 2, 4), "recordings": (3, 6), "seeds": 3, "animals": 3, "days": 2, "trials": 100}
QUICK = {"depths": (1, 2), "recordings": (1, 2), "seeds": 1, "max_steps": 20, "animals": 2, "days": 1, "trials": 24}
CURVE_FRACTIONS = (0.1, 0.25, 0.5, 1.0)  # of the steps, where the curve scores the model
EMBEDDINGS = ("unit_embedding", "session_embedding", "other_embeddings")
CSV_FIELDS = ("kind", "seed", "model", "depth", "dim", "params", "non_embedding_params", "recordings", "steps",
              "tokens", "mean_r2", "single_session_mean_r2")


@dataclass(frozen=True)
class ScalingPlan:
    """What the experiment fits.

    config: the run file of every fit (None: the default CPU recipe for the largest number of
    recordings, applied to every fit so that the fits compare). depths: self-attention depths. widths: model dims (None: the
    run file's). recordings: the numbers N of recordings (the first N) each model trains on.
    steps: optimisation steps of every fit (None: the run file's). seeds: every fit once per seed.
    """

    config: RunConfig | None = None
    depths: tuple[int, ...] = (1, 2, 4)
    widths: tuple[int, ...] | None = None
    recordings: tuple[int, ...] = (1, 2, 4, 8)
    steps: int | None = None
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "cpu"

    def __post_init__(self):
        if not self.depths or any(d < 0 for d in self.depths):
            raise ConfigError(f"experiment scaling: need one or more depths >= 0, got {list(self.depths)}")
        if self.widths is not None and (not self.widths or any(w < 1 for w in self.widths)):
            raise ConfigError(f"experiment scaling: need one or more widths >= 1, got {list(self.widths)}")
        if not self.recordings or any(n < 1 for n in self.recordings):
            raise ConfigError(f"experiment scaling: need one or more recording counts >= 1, got {list(self.recordings)}")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"experiment scaling: steps must be >= 1, got {self.steps}")
        if not self.seeds or min(self.seeds) < 0 or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"experiment scaling: seeds must be distinct integers >= 0, got {list(self.seeds)}")
        if self.config is None:
            object.__setattr__(self, "config", default_config(max(self.recordings))[0])

    @property
    def base(self) -> RunConfig:
        """The run file with this plan's steps: the single-session recipe."""
        return self.config if self.steps is None else self.config.with_training(max_steps=self.steps)

    def models(self) -> list[RunConfig]:
        """One run file per (width, depth), widths outer."""
        widths = self.widths or (self.config.model.dim,)
        return [
            dataclasses.replace(self.base, model=dataclasses.replace(self.base.model, dim=w, depth=d))
            for w, d in itertools.product(widths, self.depths)
        ]

    def check_recordings(self, available: int) -> None:
        if max(self.recordings) > available:
            raise ConfigError(
                f"experiment scaling: asked for up to {max(self.recordings)} recordings but the data hold "
                f"{available}; lower --recordings or give more recordings"
            )


def model_name(config: RunConfig) -> str:
    return f"depth{config.model.depth}_dim{config.model.dim}"


def batch_tokens(batch: dict) -> int:
    """Real input tokens of a collated batch: its unpadded (B, M) ``input_mask`` entries."""
    return int(batch["input_mask"].sum())


def tokens_seen(config: RunConfig, paths: Sequence[Path], steps: Sequence[int]) -> dict[int, int]:
    """{step: input tokens of the training batches up to and including that step} of a run of
    ``config`` on ``paths``, drawn again exactly as :func:`~neuropoyo.training.loop.train` draws them."""
    recordings = RecordingSet(list(paths), readouts=config.model.readouts, normalize=config.loss.normalize)
    pipeline = training_pipeline(
        recordings, context_length_s=config.model.context_length_s, loss=config.loss, augment=config.augment
    )
    loader = window_loader(
        WindowDataset(recordings, pipeline, seed=config.training.seed), epoch_batches(recordings, config),
        num_workers=config.training.num_workers, pin_memory=False,
    )
    wanted, total, counts = set(steps), 0, {}
    for step, (_, batch) in enumerate(itertools.islice(loader, max(steps)), start=1):
        total += batch_tokens(batch)
        if step in wanted:
            counts[step] = total
    return counts


def parameter_counts(trained: TrainedModel) -> tuple[int, int]:
    """(all parameters, parameters outside the unit, session and other embedding tables)."""
    groups = trained.model.parameter_groups()
    return sum(groups.values()), sum(n for g, n in groups.items() if g not in EMBEDDINGS)


def test_r2(trained: TrainedModel, paths: Sequence[Path]) -> dict[str, float]:
    """{recording id: test R2} of ``trained`` on each recording, scored as ``neuropoyo evaluate`` does."""
    results = predict(trained, recordings_for(trained, paths), split="test", evaluation=evaluation_config(trained),
                      progress=False)
    return {rid: record["r2"] for rid, record in summarize(results, split="test")["recordings"].items()}


def curve_steps(total: int) -> list[int]:
    return sorted({max(1, round(f * total)) for f in CURVE_FRACTIONS})


def fit(config: RunConfig, paths: Sequence[Path], run_dir: Path, device: str) -> dict:
    """Train ``config`` on ``paths`` into ``run_dir`` and score it: the fit's JSON record."""
    total = config.training.max_steps
    points = curve_steps(total)
    curve: dict[int, float] = {}

    def score(step: int, trained: TrainedModel) -> None:
        if step in points:
            curve[step] = float(np.mean(list(test_r2(trained, paths).values())))

    train(config, list(paths), run_dir, device=device, progress=False, after_step=score)
    trained = load_model(run_dir)  # the best model on validation, as `neuropoyo evaluate` takes it
    per_recording = test_r2(trained, paths)
    tokens = tokens_seen(config, paths, points)
    params, non_embedding = parameter_counts(trained)
    return {
        "model": model_name(config), "depth": config.model.depth, "dim": config.model.dim,
        "params": params, "non_embedding_params": non_embedding, "recordings": len(paths), "steps": total,
        "tokens": tokens[total], "r2": float(np.mean(list(per_recording.values()))),
        "r2_per_recording": per_recording,
        "curve": [[step, tokens[step], curve[step]] for step in points],  # [step, tokens, test R2]
    }


def _fit_once(config: RunConfig, paths: Sequence[Path], folder: Path, device: str, log: Log, what: str) -> dict:
    """The fit's record, stored as ``<folder>.json``: made by :func:`fit`, or read back when its
    run (``<folder>/run.json``) trained the same run file on the same recordings."""
    stored = folder.with_suffix(".json")
    if stored.is_file():
        started = read_run_info(folder / RUN_INFO)
        same = json.loads(json.dumps(config.to_dict())) == started["config"]
        if not same or started["data"] != [str(p.resolve()) for p in paths]:
            raise ConfigError(
                f"experiment scaling: {stored} was fitted with another run file, number of steps or set of "
                f"recordings ({folder / RUN_INFO}); rerun with the options of that experiment or choose a new --out"
            )
    return cached_fit(stored, lambda: fit(config, paths, folder, device), log, what)


def simulated_recordings(folder: Path, *, animals: int = 3, days: int = 2, trials: int = 100) -> list[Path]:
    """``animals`` x ``days`` of simulated center-out reaching in ``folder``, ordered day by day
    (animal 0 day 0, animal 1 day 0, ...), so the first N recordings span min(N, animals) animals."""
    if not folder.is_dir():
        recordings = simulate_dataset(n_animals=animals, sessions_per_animal=days, tasks=("center_out",),
                                      n_trials=trials)
        write_dataset(recordings, folder)
    by_id = {open_recording(p).recording_id: p for p in find_recordings([folder])}
    return [by_id[rid] for rid in sorted(by_id, key=lambda rid: (_day(rid), rid))]


def _day(recording_id: str) -> str:
    return next((part for part in recording_id.split("_") if part.startswith("day")), "")


def _fit_seed(folder: Path, plan: ScalingPlan, paths: list[Path], ids: list[str], seed: int, log: Log) -> list[dict]:
    """The grid's fits with ``seed`` in ``folder``: single-session rows, then multi-session rows
    against the single-session average of the same seed on the same recordings."""
    base = plan.base.with_training(seed=seed)
    singles = {}
    for rid, path in zip(ids[: max(plan.recordings)], paths):
        singles[rid] = _fit_once(base, [path], folder / "single" / rid, plan.device, log, f"seed {seed} single-session {rid}")
    rows = [{"kind": "single", "seed": seed, **record} for record in singles.values()]
    for model in plan.models():
        config = model.with_training(seed=seed)
        for n in sorted(plan.recordings):
            name = f"seed {seed} {model_name(config)} on {n} recordings"
            if n == 1 and config == base:  # the single-session fit of the first recording
                record = singles[ids[0]]
            else:
                record = _fit_once(config, paths[:n], folder / model_name(config) / f"{n}_recordings", plan.device, log, name)
            reference = float(np.mean([singles[rid]["r2"] for rid in ids[:n]]))
            rows.append({"kind": "multi", "seed": seed, **record, "single_session_r2": reference})
    return rows


@keeps_fits_on_interrupt
def run_scaling(out: str | Path, plan: ScalingPlan, paths: Sequence[Path], *, log: Log = print) -> dict:
    """Run the experiment on ``paths`` (in this order) into ``out``; returns (and writes to
    ``out/scaling.json``) every fit."""
    out, paths = Path(out), [Path(p) for p in paths]
    plan.check_recordings(len(paths))
    ids = [open_recording(p).recording_id for p in paths]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"experiment scaling: recording ids repeat in {ids}; give each recording once")
    rows = []
    for seed in plan.seeds:
        rows += _fit_seed(out / "runs" / f"seed{seed}", plan, paths, ids, seed, log)
    results = {"recordings": ids[: max(plan.recordings)], "rows": rows}
    write_text_atomic(out / "scaling.json", json.dumps(results, indent=2))
    write_text_atomic(out / "scaling.csv", format_csv(rows, results["recordings"]))
    write_text_atomic(out / "table.md", format_table(rows, results["recordings"]))
    figure = save_png(plot_scaling(rows), out / "scaling.png")
    log("\n" + format_table(rows, results["recordings"]))
    log(f"figure: {figure}")
    return results


def run_experiment(
    out: str | Path, *, data: Sequence[str | Path] | None = None, config: str | Path | RunConfig | None = None,
    depths: Sequence[int] | None = None, widths: Sequence[int] | None = None, recordings: Sequence[int] | None = None,
    max_steps: int | None = None, seeds: int | None = None, animals: int | None = None, days: int | None = None,
    trials: int | None = None, quick: bool = False, device: str = "cpu", log: Log = print,
) -> dict:
    """The whole experiment, as ``neuropoyo experiment scaling`` runs it: returns :func:`run_scaling`'s results.

    data: recording files, folders or globs, used in this order; None simulates ``animals`` x
    ``days`` recordings of ``trials`` trials into ``out/data``. None elsewhere takes :data:`DEFAULTS`
    (:data:`QUICK` with ``quick``); max_steps: of every fit (default: :data:`SIMULATED_STEPS` on
    simulated data, else the run file's). seeds: how many seeds (0, 1, ...) every fit runs with.
    config: run file, preset name or RunConfig (None: the default CPU recipe for the largest
    number of recordings).
    """
    sizing = {"animals": animals, "days": days, "trials": trials}
    given = [f"--{name}" for name, value in sizing.items() if value is not None]
    if data is not None and given:
        raise ConfigError(f"experiment scaling: {', '.join(given)} size the simulated data; drop them with --data")
    chosen = {**DEFAULTS, **(QUICK if quick else {})}
    grid = {name: value if value is not None else chosen[name]
            for name, value in {"depths": depths, "recordings": recordings, "seeds": seeds, **sizing}.items()}
    if max_steps is None:
        max_steps = chosen.get("max_steps", SIMULATED_STEPS if data is None else None)
    plan = ScalingPlan(  # checked before any recording is simulated
        depths=tuple(grid["depths"]), widths=tuple(widths) if widths is not None else None,
        recordings=tuple(grid["recordings"]), steps=max_steps, seeds=tuple(range(grid["seeds"])), device=device,
    )
    resolved, note = resolve_config(config, max(plan.recordings))
    if note:
        log(note)
    out = Path(out)
    if data is None:
        paths = simulated_recordings(out / "data", animals=grid["animals"], days=grid["days"], trials=grid["trials"])
        log(f"simulated recordings in {out / 'data'}")
    else:
        paths = find_recordings(data)
    return run_scaling(out, dataclasses.replace(plan, config=resolved), paths, log=log)


def format_csv(rows: list[dict], recordings: Sequence[str]) -> str:
    """One line per fit: the CSV_FIELDS, then test R2 per recording (blank where not trained on)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*CSV_FIELDS, *(f"r2_{rid}" for rid in recordings)])
    for row in rows:
        values = {**row, "mean_r2": row["r2"], "single_session_mean_r2": row.get("single_session_r2", "")}
        writer.writerow([*(values[f] for f in CSV_FIELDS),
                         *(row["r2_per_recording"].get(rid, "") for rid in recordings)])
    return buffer.getvalue()


def format_table(rows: list[dict], recordings: Sequence[str]) -> str:
    """Markdown: every multi-session model against the single-session average on its recordings,
    then the largest models per recording against the single-session model of that recording.
    Cells are mean ± sd over seeds; a difference is paired per seed (mean ± sd, how many above 0)."""
    seeds = sorted({r["seed"] for r in rows})
    multi = [r for r in rows if r["kind"] == "multi"]
    grid = list(dict.fromkeys((r["model"], r["recordings"]) for r in multi))
    fits = {key: [r for r in multi if (r["model"], r["recordings"]) == key] for key in grid}
    lines = [f"Test R2, {'mean ± sd over ' + str(len(seeds)) + ' seeds' if len(seeds) > 1 else 'seed ' + str(seeds[0])}.", "",
             "| model | params (non-embedding) | recordings | steps | tokens | test R2 | single-session avg | difference |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for (model, n), mine in fits.items():
        first, gain = mine[0], np.array([r["r2"] - r["single_session_r2"] for r in mine])
        lines.append(f"| {model} | {first['params']:,} ({first['non_embedding_params']:,}) | {n} | {first['steps']} | "
                     f"{first['tokens']:,} | {mean_and_spread([r['r2'] for r in mine])} | "
                     f"{mean_and_spread([r['single_session_r2'] for r in mine])} | "
                     f"{'+' if gain.mean() >= 0 else ''}{paired_cell(gain) if gain.size > 1 else mean_and_spread(gain)} |")
    largest = [key for key in grid if key[1] == max(n for _, n in grid)]
    header = " | ".join(f"{model} on {n}" for model, n in largest)
    lines += ["", f"| recording | single-session | {header} |", "|---|---:|" + "---:|" * len(largest)]
    for rid in recordings:
        single = [r["r2"] for r in rows if r["kind"] == "single" and rid in r["r2_per_recording"]]
        cells = [mean_and_spread([r["r2_per_recording"][rid] for r in fits[key]]) if rid in fits[key][0]["r2_per_recording"]
                 else "" for key in largest]
        lines.append(f"| {rid} | {mean_and_spread(single)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_scaling(rows: list[dict]):
    """Figure 3: mean test R2 against non-embedding parameters (left; one line per number of
    recordings, ± 1 sd over seeds) and against training tokens seen (right; each fit's curve),
    each number of recordings with its single-session average (dashed, same colour; mean over
    seeds) on the same recordings."""
    multi = [r for r in rows if r["kind"] == "multi"]
    counts = sorted({r["recordings"] for r in multi})
    depths = sorted({r["depth"] for r in multi})
    figure = new_figure(11.0, 4.2)
    by_params, by_tokens = figure.subplots(1, 2)
    for i, n in enumerate(counts):
        colour, mine = f"C{i}", [r for r in multi if r["recordings"] == n]
        label = f"{n} recording{'s' if n > 1 else ''}"
        by_size: dict[int, list[float]] = {}
        for r in mine:
            by_size.setdefault(r["non_embedding_params"], []).append(r["r2"])
        sizes = sorted(by_size)
        by_params.errorbar(sizes, [np.mean(by_size[p]) for p in sizes], yerr=[sample_sd(by_size[p]) for p in sizes],
                           fmt="o-", color=colour, capsize=3, label=label)
        for r in mine:
            curve = np.asarray(r["curve"], dtype=float)
            style = ["-", "--", ":", "-."][depths.index(r["depth"]) % 4]
            by_tokens.plot(curve[:, 1], curve[:, 2], marker=".", ls=style, color=colour, alpha=0.8)
        reference = float(np.mean([r["single_session_r2"] for r in mine]))
        for axis in (by_params, by_tokens):
            axis.axhline(reference, color=colour, ls=(0, (2, 2)), lw=1)
    for depth in depths:
        by_tokens.plot([], [], color="grey", ls=["-", "--", ":", "-."][depths.index(depth) % 4], label=f"depth {depth}")
    by_params.plot([], [], color="grey", ls=(0, (2, 2)), lw=1, label="single-session average")
    by_params.set(xscale="log", xlabel="parameters (non-embedding)", ylabel="test R2 (best on validation)")
    by_tokens.set(xscale="log", xlabel="training tokens seen (spikes + delimiters)", ylabel="test R2 (during training)")
    for axis in (by_params, by_tokens):
        axis.set_ylim(bottom=max(-0.1, axis.get_ylim()[0]))
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8, loc="lower right")
    return figure
