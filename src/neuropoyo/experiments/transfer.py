"""Transfer to held-out recordings (paper Table 2, Figure 4) and unit re-identification (C.2).

``neuropoyo experiment transfer`` pretrains POYO on every recording but the held-out ones (or takes
a trained model). Held out are recordings of animals it was trained on (``seen``: same animal,
other day) and recordings of an animal it never saw (``unseen``). For each held-out recording and
each training-set size (its first N training trials; ``None``: the whole training split) it fits
POYO from scratch, the MLP and GRU baselines from scratch, unit identification and full finetuning,
and scores each on the recording's whole test split, so every size is scored on the same samples.
The POYO runs are also scored at ``curve_steps`` during training (R2 against optimisation steps).

Re-identification re-runs unit identification on a copy of a pretraining recording under a new
id, from random unit rows, and follows the learned rows against the pretrained ones: mean cosine
similarity and the share of units whose nearest pretrained row (cosine, over every unit of the
model) is their own, per step.

Every finished fit is written to ``OUT/runs/<recording>/<size>/<method>.json``; a rerun into the
same folder skips them, so an interrupted experiment continues where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from neuropoyo.baselines.run import run_baselines
from neuropoyo.data.dataset import recording_paths
from neuropoyo.data.directory import (
    few_shot_spans,
    find_recordings,
    recording_path,
    write_dataset,
)
from neuropoyo.data.simulate import simulate_dataset
from neuropoyo.data.splits import whole_trials
from neuropoyo.data.store import open_recording, read_recording, write_recording
from neuropoyo.errors import ConfigError
from neuropoyo.evaluation.evaluate import evaluation_config, predict, recordings_for
from neuropoyo.evaluation.report import new_figure, save_png, summarize
from neuropoyo.experiments.cache import Log, cached_fit, keeps_fits_on_interrupt
from neuropoyo.io import write_text_atomic
from neuropoyo.tokens.vocab import unit_keys
from neuropoyo.trained import TrainedModel, load_model
from neuropoyo.training.config import RunConfig
from neuropoyo.training.finetune import FinetuneConfig, finetune
from neuropoyo.training.loop import CHECKPOINT_DIR, MODEL_DIR, train
from neuropoyo.training.recipe import default_config, resolve_config

METHODS = ("mlp", "gru", "scratch", "unit-id", "full")
LABELS = {
    "mlp": "MLP (from scratch)",
    "gru": "GRU (from scratch)",
    "scratch": "POYO single-session (from scratch)",
    "unit-id": "POYO pretrained + unit identification",
    "full": "POYO pretrained + full finetuning",
}
GROUPS = {"seen": "same animal, other day", "unseen": "new animal"}
UNNAMED_SUBJECTS = ("", "unknown")
CURVE_STEPS = (10, 25, 50, 100, 200, 400, 600, 1000, 1500, 2000, 3000)


@dataclass(frozen=True)
class TransferPlan:
    """What the experiment fits.

    config: the run file of pretraining and of the from-scratch POYO models (None: the default CPU
    recipe for the number of pretraining recordings, chosen by :func:`run_transfer`). pretrain_steps:
    optimisation steps of pretraining (None: the run file's). sizes: training-set sizes in trials
    (None: the whole training split). finetune_steps: of unit identification and full finetuning
    (full unfreezes at a third). reid_steps: of re-identification (0: skip).
    """

    config: RunConfig | None = None
    pretrain_steps: int | None = None
    sizes: tuple[int | None, ...] = (14, 35, None)
    methods: tuple[str, ...] = METHODS
    finetune_steps: int = 600
    reid_steps: int = 1000
    curve_steps: tuple[int, ...] = CURVE_STEPS
    device: str = "cpu"

    def __post_init__(self):
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise ConfigError(f"experiment transfer: unknown methods {unknown}; choose from {', '.join(METHODS)}")
        if not self.sizes or any(n is not None and n < 1 for n in self.sizes):
            raise ConfigError("experiment transfer: sizes must be trial counts >= 1 (or all)")
        if self.finetune_steps < 1 or self.reid_steps < 0:
            raise ConfigError("experiment transfer: need finetune steps >= 1 and re-identification steps >= 0")
        if self.pretrain_steps is not None and self.pretrain_steps < 1:
            raise ConfigError(f"experiment transfer: pretrain steps must be >= 1, got {self.pretrain_steps}")

    def pretraining_config(self) -> RunConfig:
        """The run file of pretraining: ``config`` with ``pretrain_steps`` steps where given."""
        if self.pretrain_steps is None:
            return self.config
        return self.config.with_training(max_steps=self.pretrain_steps)


def size_label(size: int | None) -> str:
    return "all" if size is None else f"{size}trials"


def r2_on_test_split(trained: TrainedModel, path: Path) -> float:
    """Mean test R2 of ``trained`` on one recording, scored as ``neuropoyo evaluate`` scores it."""
    results = predict(trained, recordings_for(trained, [path]), split="test", evaluation=evaluation_config(trained))
    return summarize(results, split="test")["mean_r2"]


class _Curve:
    """after_step hook: test R2 of the model at the chosen steps."""

    def __init__(self, path: Path, steps: Sequence[int]):
        self.path, self.steps, self.points = path, set(steps), []

    def __call__(self, step: int, trained: TrainedModel) -> None:
        if step in self.steps:
            self.points.append([step, r2_on_test_split(trained, self.path)])


def _fit_poyo(method: str, path: Path, size: int | None, pretrained: Path, run_dir: Path, plan: TransferPlan) -> dict:
    curve = _Curve(path, plan.curve_steps)
    if method == "scratch":
        spans = few_shot_spans([path], trials=size)
        train(plan.config, [path], run_dir, train_spans=spans, device=plan.device, progress=False, after_step=curve)
    else:
        config = FinetuneConfig(mode=method, max_steps=plan.finetune_steps, trials=size)
        finetune(pretrained, [path], run_dir, config, device=plan.device, progress=False, after_step=curve)
    return {"r2": r2_on_test_split(load_model(run_dir / MODEL_DIR), path), "curve": curve.points}


def _fit_baseline(method: str, path: Path, size: int | None, pretrained: TrainedModel, run_dir: Path) -> dict:
    summaries = run_baselines(
        [path], run_dir, methods=[method], stream=pretrained.model.readout_names[0],
        evaluation=evaluation_config(pretrained), train_spans=few_shot_spans([path], trials=size),
    )
    return {"r2": summaries[method]["mean_r2"], "curve": []}


def training_trials(path: Path) -> int:
    """Number of trials wholly inside the recording's training split."""
    with open_recording(path) as f:
        return int(len(whole_trials(f.splits["train"], f.trials)))


@keeps_fits_on_interrupt
def run_transfer(
    out: str | Path,
    plan: TransferPlan,
    *,
    held_out: dict[str, Sequence[Path]],
    pretrain: Sequence[Path] = (),
    model: str | Path | None = None,
    reidentify: Path | None = None,
    log: Log = print,
) -> dict:
    """Run the experiment into ``out``; returns (and writes to ``out/results.json``) every score.

    held_out: {"seen": paths, "unseen": paths}. pretrain: the recordings to pretrain on unless
    ``model`` (a run or model directory) is given. reidentify: a pretraining recording to
    re-identify (None: skip).
    """
    out = Path(out)
    if plan.config is None:
        config, note = default_config(len(pretrain))
        log(note)
        plan = dataclasses.replace(plan, config=config)
    if model is None:
        model = out / "pretrained"
        if not (model / MODEL_DIR).is_dir():
            resume = (model / CHECKPOINT_DIR).exists()  # an interrupted pretraining goes on where it stopped
            log(f"{'resuming' if resume else 'pretraining'} on {len(pretrain)} recordings into {model}")
            result = train(
                plan.pretraining_config(), list(pretrain), model, resume=resume, device=plan.device, progress=False
            )
            log(f"pretraining: {result.steps} steps in {result.seconds:.0f} s")
    pretrained = load_model(model)
    rows = []
    for group, paths in held_out.items():
        for path in paths:
            rid = open_recording(path).recording_id
            for size in plan.sizes:
                folder = out / "runs" / rid / size_label(size)
                trials = training_trials(path) if size is None else size
                for method in plan.methods:
                    def compute(method=method, size=size, path=path, folder=folder):
                        if method in ("mlp", "gru"):
                            return _fit_baseline(method, path, size, pretrained, folder / method)
                        return _fit_poyo(method, path, size, Path(model), folder / method, plan)

                    result = cached_fit(folder / f"{method}.json", compute, log, f"{rid} {size_label(size)} {method}")
                    rows.append({"group": group, "recording": rid, "trials": trials, "size": size_label(size),
                                 "method": method, **result})
    results = {"rows": rows, "model": str(Path(model).resolve())}
    if reidentify is not None and plan.reid_steps:
        results["reidentification"] = reidentification(out / "reid", model, reidentify, plan, log)
    write_text_atomic(out / "results.json", json.dumps(results, indent=2))
    write_text_atomic(out / "table.md", format_tables(rows))
    figures = [save_png(plot_transfer(rows), out / "transfer.png")]
    if "reidentification" in results:
        figures.append(save_png(plot_reidentification(results["reidentification"]), out / "reidentification.png"))
    log("\n" + format_tables(rows))
    log("figures: " + ", ".join(map(str, figures)))
    return results


def renamed_copy(path: Path, folder: Path, suffix: str = "_reid") -> Path:
    """A copy of the recording under the id ``<id><suffix>``: same spikes, units and behavior, new
    unit and session keys (re-identification starts it from random unit rows)."""
    recording = read_recording(path)
    folder.mkdir(parents=True, exist_ok=True)
    info = dataclasses.replace(recording.info, recording_id=recording.recording_id + suffix)
    return write_recording(dataclasses.replace(recording, info=info), recording_path(folder, info.recording_id))


def identification_scores(learned: torch.Tensor, true_rows: torch.Tensor, table: torch.Tensor) -> tuple[float, float]:
    """(mean cosine similarity of learned (U, D) to true (U,) rows of ``table`` (N, D), share of
    learned rows whose nearest row of ``table`` by cosine is their true one)."""
    learned = torch.nn.functional.normalize(learned, dim=1)
    table = torch.nn.functional.normalize(table, dim=1)
    cosine = (learned * table[true_rows]).sum(dim=1).mean()
    nearest = (learned @ table.T).argmax(dim=1)
    return float(cosine), float((nearest == true_rows).float().mean())


def reidentification(folder: Path, model: Path, path: Path, plan: TransferPlan, log: Log) -> dict:
    """Unit identification of a renamed copy of pretraining recording ``path``, followed per step."""
    stored = folder / "result.json"
    if stored.is_file():
        log(f"re-identification: done before ({stored})")
        return json.loads(stored.read_text())
    pretrained = load_model(model)
    original = open_recording(path)
    table = pretrained.model.unit_emb.weight.detach().clone()
    true_rows = torch.from_numpy(pretrained.unit_vocab.index(unit_keys(original)))
    copy = renamed_copy(path, folder / "data")
    new_keys = unit_keys(open_recording(copy))
    points = []

    def follow(step: int, trained: TrainedModel) -> None:
        if step == 1 or step % 10 == 0:
            learned = trained.model.unit_emb.weight.detach()[trained.unit_vocab.index(new_keys)]
            points.append([step, *identification_scores(learned.cpu(), true_rows, table)])

    log(f"re-identification of {original.recording_id} ({len(new_keys)} units): {plan.reid_steps} steps")
    started = time.perf_counter()
    config = FinetuneConfig(max_steps=plan.reid_steps)
    finetune(pretrained, [copy], folder / "run", config, device=plan.device, progress=False, after_step=follow)
    r2 = r2_on_test_split(load_model(folder / "run" / MODEL_DIR), copy)
    original_r2 = r2_on_test_split(load_model(model), path)  # `pretrained` was grown in place
    result = {
        "recording": original.recording_id, "units": len(new_keys), "steps": plan.reid_steps,
        "seconds": round(time.perf_counter() - started, 1), "r2": r2, "original_r2": original_r2,
        "chance_accuracy": 1.0 / len(table),
        "curve": points,  # [step, mean cosine similarity, 1-NN accuracy]
    }
    write_text_atomic(stored, json.dumps(result, indent=2))
    log(f"re-identification: cosine {points[-1][1]:.3f}, 1-NN accuracy {points[-1][2]:.3f}, test R2 {r2:.4f} "
        f"(pretrained {original_r2:.4f}) in {result['seconds']:.0f} s")
    return result


# After the retired demo_run's 1,500 steps, unit identification on 14 trials of the new animal reached 89 % of
# POYO from scratch on all its trials; after 3,000, 94 % (benchmarks/RESULTS.md).
SIMULATED_PRETRAIN_STEPS = 3000


def simulated_recordings(folder: Path) -> tuple[list[Path], dict[str, list[Path]], Path]:
    """The default experiment on simulated data: 3 animals x 2 days of center-out reaching (100
    trials each) in ``folder``. Returns (pretraining recordings: animal 0 day 0 and animal 1,
    held out {"seen": animal 0 day 1, "unseen": both days of animal 2}, the recording to
    re-identify: animal 0 day 0)."""
    if not folder.is_dir():
        recordings = simulate_dataset(n_animals=3, sessions_per_animal=2, tasks=("center_out",), n_trials=100)
        write_dataset(recordings, folder)
    paths = {p.stem: p for p in find_recordings([folder])}
    seen, unseen = ["sim_monkey0_day1_co"], ["sim_monkey2_day0_co", "sim_monkey2_day1_co"]
    pretrain = [p for rid, p in paths.items() if rid not in seen + unseen]
    return pretrain, {"seen": [paths[r] for r in seen], "unseen": [paths[r] for r in unseen]}, paths["sim_monkey0_day0_co"]


def choose_recordings(
    paths: Sequence[Path], *, seen: Sequence[str], unseen: Sequence[str], pretrain: Sequence[str] = ()
) -> tuple[list[Path], dict[str, list[Path]]]:
    """(pretraining recordings, held out {"seen", "unseen"}) chosen by recording id among ``paths``.

    pretrain: ids to pretrain on (default: every recording not held out). A seen recording's
    subject must be among the pretraining subjects and an unseen one's must not (not checked for
    recordings whose subject is blank or "unknown").
    """
    by_id = {open_recording(p).recording_id: p for p in paths}
    asked = [*seen, *unseen, *pretrain]
    missing = [rid for rid in asked if rid not in by_id]
    if missing:
        raise ConfigError(f"experiment transfer: no recording with id {missing}; the data hold {sorted(by_id)}")
    held = set(seen) | set(unseen)
    if held & set(pretrain):
        raise ConfigError(f"experiment transfer: {sorted(held & set(pretrain))} both held out and pretrained on")
    chosen = list(pretrain) or [rid for rid in by_id if rid not in held]
    if not chosen:
        raise ConfigError("experiment transfer: nothing is left to pretrain on; hold out fewer recordings")
    subject = {rid: open_recording(p).info.subject for rid, p in by_id.items()}
    known = {subject[rid] for rid in chosen}
    named = {rid for rid in by_id if subject[rid].strip().lower() not in UNNAMED_SUBJECTS}
    wrong = [f"{rid} (subject {subject[rid]!r} is not pretrained on; list it under --unseen)"
             for rid in seen if rid in named and subject[rid] not in known]
    wrong += [f"{rid} (subject {subject[rid]!r} is pretrained on; list it under --seen)"
              for rid in unseen if rid in named and subject[rid] in known]
    if wrong:
        raise ConfigError("experiment transfer: " + "; ".join(wrong))
    return [by_id[r] for r in chosen], {"seen": [by_id[r] for r in seen], "unseen": [by_id[r] for r in unseen]}


def run_experiment(
    out: str | Path, *, data: Sequence[str | Path] | None = None, seen: Sequence[str] = (), unseen: Sequence[str] = (),
    pretrain: Sequence[str] = (), model: str | Path | None = None, reidentify: str | None = None,
    config: str | Path | RunConfig | None = None, pretrain_steps: int | None = None,
    sizes: Sequence[int | None] = (14, 35, None), methods: Sequence[str] = METHODS, max_steps: int = 600,
    reid_steps: int = 1000, device: str = "cpu", log: Log = print,
) -> dict:
    """The whole experiment, as ``neuropoyo experiment transfer`` runs it: returns :func:`run_transfer`'s results.

    data: recording files, folders or globs; None simulates 3 animals x 2 days into ``out/data``
    (:func:`simulated_recordings`) and pretrains :data:`SIMULATED_PRETRAIN_STEPS` steps unless
    ``pretrain_steps`` says otherwise. seen / unseen / pretrain / reidentify: recording ids among
    ``data``. config: run file, preset name or RunConfig (None: the default CPU recipe for the
    number of pretraining recordings). max_steps: of unit identification and full finetuning.
    """
    out = Path(out)
    if data is None and (seen or unseen or pretrain or reidentify):
        raise ConfigError(
            "experiment transfer: seen, unseen, pretrain and reidentify (--seen, --unseen, --pretrain, "
            "--reidentify) choose among given recordings; give them with --data or drop them"
        )
    if data is not None and not seen and not unseen:
        raise ConfigError("experiment transfer: name the held-out recordings with --seen and/or --unseen")
    if data is None and pretrain_steps is None:
        pretrain_steps = SIMULATED_PRETRAIN_STEPS
    plan = TransferPlan(  # checked before any recording is simulated or read
        pretrain_steps=pretrain_steps, sizes=tuple(sizes), methods=tuple(methods), finetune_steps=max_steps,
        reid_steps=reid_steps, device=device,
    )
    if data is None:
        pretrained_on, held_out, again = simulated_recordings(out / "data")
        log(f"simulated recordings in {out / 'data'}")
    else:
        pretrained_on, held_out = choose_recordings(recording_paths(data), seen=seen, unseen=unseen, pretrain=pretrain)
        by_id = {p.stem: p for p in pretrained_on}
        if reidentify is not None and reidentify not in by_id:
            raise ConfigError(
                f"experiment transfer: --reidentify {reidentify}: not a pretraining recording; choose from {sorted(by_id)}"
            )
        again = by_id.get(reidentify)
    resolved, note = resolve_config(config, len(pretrained_on))
    if note:
        log(note)
    plan = dataclasses.replace(plan, config=resolved)
    return run_transfer(out, plan, held_out=held_out, pretrain=pretrained_on, model=model, reidentify=again, log=log)


def _group_means(rows: list[dict], size: str) -> dict[tuple[str, str], float]:
    cells: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        if row["size"] == size:
            cells.setdefault((row["method"], row["group"]), []).append(row["r2"])
    return {key: float(np.mean(values)) for key, values in cells.items()}


def format_tables(rows: list[dict]) -> str:
    """One Table 2-shaped markdown table per training-set size: methods by held-out group, mean
    test R2 over the group's recordings."""
    groups = [g for g in GROUPS if any(r["group"] == g for r in rows)]
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    blocks = []
    for size in dict.fromkeys(r["size"] for r in rows):
        means = _group_means(rows, size)
        trials = sorted({r["trials"] for r in rows if r["size"] == size})
        title = "all training trials" if size == "all" else f"first {size.removesuffix('trials')} training trials"
        lines = [f"### {title} ({', '.join(map(str, trials))} trials per recording)", "",
                 "| method | " + " | ".join(GROUPS[g] for g in groups) + " |",
                 "|---|" + "---:|" * len(groups)]
        for method in methods:
            cells = [f"{means[(method, g)]:.4f}" if (method, g) in means else "" for g in groups]
            lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def plot_transfer(rows: list[dict]):
    """Figure 4: mean test R2 against training trials (top) and against optimisation steps on all
    trials (bottom), one column per held-out group."""
    groups = [g for g in GROUPS if any(r["group"] == g for r in rows)]
    figure = new_figure(5.0 * len(groups), 7.0)
    axes = figure.subplots(2, len(groups), squeeze=False)
    for column, group in enumerate(groups):
        mine = [r for r in rows if r["group"] == group]
        top, bottom = axes[0][column], axes[1][column]
        for method in (m for m in METHODS if any(r["method"] == m for r in mine)):
            colour = f"C{METHODS.index(method)}"  # the same in every panel
            points = sorted((r["trials"], r["r2"]) for r in mine if r["method"] == method)
            by_size: dict[int, list[float]] = {}
            for trials, r2 in points:
                by_size.setdefault(trials, []).append(r2)
            sizes = sorted(by_size)
            top.plot(sizes, [np.mean(by_size[n]) for n in sizes], "o-", color=colour, label=LABELS[method])
            curves = [dict(map(tuple, r["curve"])) for r in mine if r["method"] == method and r["size"] == "all"]
            steps = sorted(set.intersection(*(set(c) for c in curves))) if curves and curves[0] else []
            if steps:
                bottom.plot(steps, [np.mean([c[s] for c in curves]) for s in steps], "o-", color=colour)
        top.set(title=GROUPS[group], xlabel="training trials", ylabel="test R2")
        bottom.set(xlabel="optimisation steps (all trials)", ylabel="test R2", xscale="log")
        for axis in (top, bottom):
            axis.set_ylim(bottom=max(-0.1, axis.get_ylim()[0]))
            axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="lower right")
    return figure


def plot_reidentification(result: dict):
    """Table 5 / Figure 7: mean cosine similarity and 1-NN accuracy of re-identified units per step."""
    curve = np.asarray(result["curve"])
    figure = new_figure(6.0, 3.5)
    axis = figure.subplots()
    axis.plot(curve[:, 0], curve[:, 1], label="mean cosine similarity to the pretrained row")
    axis.plot(curve[:, 0], curve[:, 2], label="1-NN identification accuracy")
    axis.axhline(result["chance_accuracy"], color="grey", ls=":", label="chance accuracy")
    axis.set(xlabel="unit-identification step", ylim=(-0.2, 1.0),
             title=f"re-identifying {result['recording']} ({result['units']} units)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return figure
