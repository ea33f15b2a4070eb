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
model) is their own, per step; both on the raw rows and on the rows as the encoder sees them, after
its first cross-attention's LayerNorm (the paper's normalised embeddings, C.2).

Every fit is repeated for each seed: seed s pretrains its own model (``OUT/seed<s>/pretrained``,
unless a model is given) and seeds every fit from it, so the methods of one seed share their
pretrained model, their splits and their training subsets: comparisons between methods are paired
per (seed, recording). Tables give the mean and sd over seeds of each group's mean, and the paired
differences that Table 2's ordering rests on.

Every finished fit is written to ``OUT/seed<s>/runs/<recording>/<size>/<method>.json``; a rerun
into the same folder skips them, so an interrupted experiment continues where it stopped.
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
from neuropoyo.experiments.cache import Log, cached_fit, keeps_fits_on_interrupt, same_settings
from neuropoyo.experiments.spread import mean_and_spread, paired_cell, sample_sd
from neuropoyo.io import write_text_atomic
from neuropoyo.model import POYO
from neuropoyo.schema import SPIKE
from neuropoyo.tokens.vocab import unit_keys
from neuropoyo.trained import TrainedModel, load_model
from neuropoyo.training.config import RunConfig
from neuropoyo.training.finetune import MODES as FINETUNE_MODES
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
# Paired comparisons reported (Table 2's ordering): (method, against)
COMPARISONS = (("unit-id", "mlp"), ("unit-id", "gru"), ("unit-id", "scratch"), ("full", "scratch"))


@dataclass(frozen=True)
class TransferPlan:
    """What the experiment fits.

    config: the run file of pretraining and of the from-scratch POYO models (None: the default CPU
    recipe for the number of pretraining recordings, chosen by :func:`run_transfer`). pretrain_steps:
    optimisation steps of pretraining (None: the run file's). sizes: training-set sizes in trials
    (None: the whole training split). finetune_steps: of unit identification and full finetuning
    (None: :class:`FinetuneConfig`'s per mode, 600 and 900).
    unfreeze_at, finetune_lr: full finetuning's step that unfreezes the network and the rate of the
    pretrained weights (None: :class:`FinetuneConfig`'s, 0 and 4e-3).
    reid_steps: of re-identification (0: skip; on the first seed's model). seeds: one pretraining
    and one of every fit per seed.
    """

    config: RunConfig | None = None
    pretrain_steps: int | None = None
    sizes: tuple[int | None, ...] = (14, 35, None)
    methods: tuple[str, ...] = METHODS
    finetune_steps: int | None = None
    unfreeze_at: int | None = None
    finetune_lr: float | None = None
    reid_steps: int = 1000
    curve_steps: tuple[int, ...] = CURVE_STEPS
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "cpu"

    def __post_init__(self):
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown:
            raise ConfigError(f"experiment transfer: unknown methods {unknown}; choose from {', '.join(METHODS)}")
        if not self.sizes or any(n is not None and n < 1 for n in self.sizes):
            raise ConfigError("experiment transfer: sizes must be trial counts >= 1 (or all)")
        if (self.finetune_steps is not None and self.finetune_steps < 1) or self.reid_steps < 0:
            raise ConfigError("experiment transfer: need finetune steps >= 1 and re-identification steps >= 0")
        if self.unfreeze_at is not None and not 0 <= self.unfreeze_at < self.steps("full"):
            raise ConfigError(
                f"experiment transfer: unfreeze at must be in [0, finetune steps = {self.steps('full')}), got {self.unfreeze_at}"
            )
        if self.finetune_lr is not None and not self.finetune_lr > 0:
            raise ConfigError(f"experiment transfer: the finetuning lr must be > 0, got {self.finetune_lr}")
        if self.pretrain_steps is not None and self.pretrain_steps < 1:
            raise ConfigError(f"experiment transfer: pretrain steps must be >= 1, got {self.pretrain_steps}")
        if not self.seeds or min(self.seeds) < 0 or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"experiment transfer: seeds must be distinct integers >= 0, got {list(self.seeds)}")

    def fit_settings(self, model: Path | None) -> dict:
        """What every fit of an experiment folder shares (sizes, methods and seeds may grow); model:
        the given pretrained model, if any. Full finetuning's settings are stored as they apply
        (defaults filled in), so a folder made under other defaults is not resumed."""
        full = FinetuneConfig(mode="full", max_steps=self.finetune_steps, **self.full_finetuning())
        return {
            "config": self.config.to_dict(), "model": model and str(Path(model).resolve()),
            "pretrain_steps": self.pretrain_steps,
            "finetune_steps": {mode: self.steps(mode) for mode in FINETUNE_MODES},
            "unfreeze_at": full.unfreeze_at, "finetune_lr": full.lr,
        }

    def steps(self, mode: str) -> int:
        """Optimisation steps of unit identification (``unit-id``) or full finetuning (``full``)."""
        return FinetuneConfig(mode=mode, max_steps=self.finetune_steps).max_steps

    def full_finetuning(self) -> dict:
        """The :class:`FinetuneConfig` fields full finetuning is given (those set here)."""
        given = {"unfreeze_at": self.unfreeze_at, "lr": self.finetune_lr}
        return {name: value for name, value in given.items() if value is not None}

    def pretraining_config(self, seed: int) -> RunConfig:
        """The run file of pretraining with ``seed``: ``config`` with ``pretrain_steps`` steps where given."""
        config = self.config.with_training(seed=seed)
        return config if self.pretrain_steps is None else config.with_training(max_steps=self.pretrain_steps)


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


def _fit_poyo(
    method: str, path: Path, size: int | None, pretrained: Path, run_dir: Path, plan: TransferPlan, seed: int
) -> dict:
    curve = _Curve(path, plan.curve_steps)
    if method == "scratch":
        spans = few_shot_spans([path], trials=size)
        config = plan.config.with_training(seed=seed)
        train(config, [path], run_dir, train_spans=spans, device=plan.device, progress=False, after_step=curve)
    else:
        given = plan.full_finetuning() if method == "full" else {}
        config = FinetuneConfig(mode=method, max_steps=plan.finetune_steps, trials=size, seed=seed, **given)
        finetune(pretrained, [path], run_dir, config, device=plan.device, progress=False, after_step=curve)
    return {"r2": r2_on_test_split(load_model(run_dir / MODEL_DIR), path), "curve": curve.points}


def _fit_baseline(
    method: str, path: Path, size: int | None, pretrained: TrainedModel, run_dir: Path, seed: int
) -> dict:
    summaries = run_baselines(
        [path], run_dir, methods=[method], stream=pretrained.model.readout_names[0],
        evaluation=evaluation_config(pretrained), train_spans=few_shot_spans([path], trials=size), seed=seed,
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
    same_settings(out, plan.fit_settings(model), "experiment transfer")
    rows, models = [], {}
    for seed in plan.seeds:
        folder = out / f"seed{seed}"
        models[seed] = Path(model) if model is not None else _pretrain(folder / "pretrained", pretrain, plan, seed, log)
        rows += _fit_held_out(folder / "runs", models[seed], held_out, plan, seed, log)
    results = {"rows": rows, "seeds": list(plan.seeds), "models": {str(s): str(m.resolve()) for s, m in models.items()}}
    if reidentify is not None and plan.reid_steps:
        results["reidentification"] = reidentification(out / "reid", models[plan.seeds[0]], reidentify, plan, log)
    write_text_atomic(out / "results.json", json.dumps(results, indent=2))
    write_text_atomic(out / "table.md", format_tables(rows))
    figures = [save_png(plot_transfer(rows), out / "transfer.png")]
    if "reidentification" in results:
        figures.append(save_png(plot_reidentification(results["reidentification"]), out / "reidentification.png"))
    log("\n" + format_tables(rows))
    log("figures: " + ", ".join(map(str, figures)))
    return results


def _pretrain(folder: Path, pretrain: Sequence[Path], plan: TransferPlan, seed: int, log: Log) -> Path:
    """The model pretrained with ``seed`` in ``folder`` (trained now unless done before)."""
    if not (folder / MODEL_DIR).is_dir():
        resume = (folder / CHECKPOINT_DIR).exists()  # an interrupted pretraining goes on where it stopped
        log(f"{'resuming' if resume else 'pretraining'} on {len(pretrain)} recordings into {folder} (seed {seed})")
        config = plan.pretraining_config(seed)
        result = train(config, list(pretrain), folder, resume=resume, device=plan.device, progress=False)
        log(f"pretraining: {result.steps} steps in {result.seconds:.0f} s")
    return folder


def _fit_held_out(
    folder: Path, model: Path, held_out: dict[str, Sequence[Path]], plan: TransferPlan, seed: int, log: Log
) -> list[dict]:
    """Every (held-out recording, size, method) fit of one seed from ``model``: one row each."""
    pretrained = load_model(model)
    rows = []
    for group, paths in held_out.items():
        for path in paths:
            rid = open_recording(path).recording_id
            for size in plan.sizes:
                cell = folder / rid / size_label(size)
                trials = training_trials(path) if size is None else size
                for method in plan.methods:
                    def compute(method=method, size=size, path=path, cell=cell):
                        if method in ("mlp", "gru"):
                            return _fit_baseline(method, path, size, pretrained, cell / method, seed)
                        return _fit_poyo(method, path, size, model, cell / method, plan, seed)

                    what = f"seed {seed} {rid} {size_label(size)} {method}"
                    result = cached_fit(cell / f"{method}.json", compute, log, what)
                    rows.append({"group": group, "recording": rid, "trials": trials, "size": size_label(size),
                                 "method": method, "seed": seed, **result})
    return rows


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


def encoder_view(model: POYO, rows: torch.Tensor) -> torch.Tensor:
    """(U,) unit indices -> (U, D): each unit as the encoder's first cross-attention sees one of its
    spikes, the spike token's input embedding after the attention's LayerNorm (so invariant to a
    row's offset and scale: the normalised embeddings of the paper's C.2)."""
    with torch.no_grad():
        return model.encoder.attention.norm_context(model.embed_inputs(rows, torch.full_like(rows, SPIKE)))


def reidentification(folder: Path, model: Path, path: Path, plan: TransferPlan, log: Log) -> dict:
    """Unit identification of a renamed copy of pretraining recording ``path``, followed per step."""
    stored = folder / "result.json"
    if stored.is_file():
        log(f"re-identification: done before ({stored})")
        return json.loads(stored.read_text())
    pretrained = load_model(model)
    original = open_recording(path)
    table = pretrained.model.unit_emb.weight.detach().clone()
    seen_table = encoder_view(pretrained.model, torch.arange(len(table)))
    true_rows = torch.from_numpy(pretrained.unit_vocab.index(unit_keys(original)))
    copy = renamed_copy(path, folder / "data")
    new_keys = unit_keys(open_recording(copy))
    points = []

    def follow(step: int, trained: TrainedModel) -> None:
        if step == 1 or step % 10 == 0:
            rows = torch.from_numpy(trained.unit_vocab.index(new_keys)).to(table.device)
            learned = trained.model.unit_emb.weight.detach()[rows]
            seen = encoder_view(trained.model, rows)
            points.append([step, *identification_scores(learned.cpu(), true_rows, table),
                           *identification_scores(seen.cpu(), true_rows, seen_table)])

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
        "curve": points,  # [step, mean cosine, 1-NN accuracy, both after the encoder's LayerNorm]
    }
    write_text_atomic(stored, json.dumps(result, indent=2))
    log(f"re-identification: cosine {points[-1][1]:.3f}, 1-NN accuracy {points[-1][2]:.3f} (after the "
        f"encoder's LayerNorm: {points[-1][3]:.3f}, {points[-1][4]:.3f}), test R2 {r2:.4f} "
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
    sizes: Sequence[int | None] = (14, 35, None), methods: Sequence[str] = METHODS, max_steps: int | None = None,
    unfreeze_at: int | None = None, finetune_lr: float | None = None, reid_steps: int = 1000, seeds: int = 3,
    device: str = "cpu", log: Log = print,
) -> dict:
    """The whole experiment, as ``neuropoyo experiment transfer`` runs it: returns :func:`run_transfer`'s results.

    data: recording files, folders or globs; None simulates 3 animals x 2 days into ``out/data``
    (:func:`simulated_recordings`) and pretrains :data:`SIMULATED_PRETRAIN_STEPS` steps unless
    ``pretrain_steps`` says otherwise. seen / unseen / pretrain / reidentify: recording ids among
    ``data``. config: run file, preset name or RunConfig (None: the default CPU recipe for the
    number of pretraining recordings). max_steps: of unit identification and full finetuning
    (None: 600 and 900);
    unfreeze_at, finetune_lr: of full finetuning (:class:`TransferPlan`).
    seeds: how many seeds (0, 1, ...): each pretrains a model (unless ``model`` is given) and
    repeats every fit.
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
        unfreeze_at=unfreeze_at, finetune_lr=finetune_lr, reid_steps=reid_steps, seeds=tuple(range(seeds)),
        device=device,
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


def _seed_means(rows: list[dict], size: str) -> dict[tuple[str, str], dict[int, float]]:
    """{(method, group): {seed: mean test R2 over the group's recordings}} at one size."""
    cells: dict[tuple[str, str], dict[int, list[float]]] = {}
    for row in rows:
        if row["size"] == size:
            cells.setdefault((row["method"], row["group"]), {}).setdefault(row["seed"], []).append(row["r2"])
    return {key: {seed: float(np.mean(v)) for seed, v in by_seed.items()} for key, by_seed in cells.items()}


def paired_differences(rows: list[dict], size: str, group: str, method: str, against: str) -> np.ndarray:
    """R2 of ``method`` minus ``against``'s on the same (seed, recording), at one size and group."""
    r2 = {(r["method"], r["seed"], r["recording"]): r["r2"] for r in rows if r["size"] == size and r["group"] == group}
    pairs = sorted({(seed, rid) for m, seed, rid in r2 if m == method and (against, seed, rid) in r2})
    return np.array([r2[method, seed, rid] - r2[against, seed, rid] for seed, rid in pairs])


def format_tables(rows: list[dict]) -> str:
    """Per training-set size, two markdown tables in Table 2's shape: each method's test R2 by
    held-out group (mean over the group's recordings; mean ± sd of that over seeds), and the
    paired differences of :data:`COMPARISONS` (mean ± sd over (seed, recording) pairs, and how
    many are above 0)."""
    groups = [g for g in GROUPS if any(r["group"] == g for r in rows)]
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    seeds = sorted({r["seed"] for r in rows})
    header = ["|---|" + "---:|" * len(groups)]
    blocks = []
    for size in dict.fromkeys(r["size"] for r in rows):
        means = _seed_means(rows, size)
        trials = sorted({r["trials"] for r in rows if r["size"] == size})
        title = "all training trials" if size == "all" else f"first {size.removesuffix('trials')} training trials"
        spread = f"; mean ± sd over {len(seeds)} seeds" if len(seeds) > 1 else f"; seed {seeds[0]}"
        lines = [f"### {title} ({', '.join(map(str, trials))} trials per recording{spread})", "",
                 "| method | " + " | ".join(GROUPS[g] for g in groups) + " |", *header]
        fitted = [m for m in methods if any(r["method"] == m and r["size"] == size for r in rows)]
        for method in fitted:
            cells = [mean_and_spread(list(means[method, g].values())) if (method, g) in means else "" for g in groups]
            lines.append(f"| {LABELS[method]} | " + " | ".join(cells) + " |")
        compared = [(a, b) for a, b in COMPARISONS if a in fitted and b in fitted]
        if compared:
            lines += ["", "| paired difference in test R2 (per seed and recording) | "
                      + " | ".join(GROUPS[g] for g in groups) + " |", *header]
            for method, against in compared:
                cells = []
                for group in groups:
                    d = paired_differences(rows, size, group, method, against)
                    cells.append(paired_cell(d) if d.size else "")
                lines.append(f"| {LABELS[method]} - {LABELS[against]} | " + " | ".join(cells) + " |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def plot_transfer(rows: list[dict]):
    """Figure 4: test R2 against training trials (top) and against optimisation steps on all
    trials (bottom), one column per held-out group: the mean over seeds of each seed's mean over
    the group's recordings, with ± 1 sd over seeds (bars, bands)."""
    groups = [g for g in GROUPS if any(r["group"] == g for r in rows)]
    figure = new_figure(5.0 * len(groups), 7.0)
    axes = figure.subplots(2, len(groups), squeeze=False)
    for column, group in enumerate(groups):
        mine = [r for r in rows if r["group"] == group]
        top, bottom = axes[0][column], axes[1][column]
        for method in (m for m in METHODS if any(r["method"] == m for r in mine)):
            colour = f"C{METHODS.index(method)}"  # the same in every panel
            ours = [r for r in mine if r["method"] == method]
            by_trials: dict[int, dict[int, list[float]]] = {}
            for r in ours:
                by_trials.setdefault(r["trials"], {}).setdefault(r["seed"], []).append(r["r2"])
            sizes = sorted(by_trials)
            per_seed = [[np.mean(v) for v in by_trials[n].values()] for n in sizes]
            top.errorbar(sizes, [np.mean(v) for v in per_seed], yerr=[sample_sd(v) for v in per_seed], fmt="o-",
                         color=colour, capsize=3, label=LABELS[method])
            curves: dict[int, list[dict]] = {}
            for r in ours:
                if r["size"] == "all" and r["curve"]:
                    curves.setdefault(r["seed"], []).append(dict(map(tuple, r["curve"])))
            everything = [c for seed_curves in curves.values() for c in seed_curves]
            steps = sorted(set.intersection(*(set(c) for c in everything))) if everything else []
            if steps:
                seed_means = np.array([[np.mean([c[s] for c in cs]) for s in steps] for cs in curves.values()])
                mean = seed_means.mean(axis=0)
                sd = np.array([sample_sd(column) for column in seed_means.T])
                bottom.plot(steps, mean, "o-", color=colour)
                bottom.fill_between(steps, mean - sd, mean + sd, color=colour, alpha=0.2)
        top.set(title=GROUPS[group], xlabel="training trials", ylabel="test R2")
        bottom.set(xlabel="optimisation steps (all trials)", ylabel="test R2", xscale="log")
        for axis in (top, bottom):
            axis.set_ylim(bottom=max(-0.1, axis.get_ylim()[0]))
            axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, loc="lower right")
    return figure


def plot_reidentification(result: dict):
    """Table 5 / Figure 7: mean cosine similarity and 1-NN accuracy of re-identified units per step,
    on the raw rows (dashed) and after the encoder's LayerNorm (solid; absent from results of
    releases before it was measured)."""
    curve = np.asarray(result["curve"])
    figure = new_figure(6.0, 3.5)
    axis = figure.subplots()
    for offset, style, what in ((3, "-", "after LayerNorm"), (1, "--", "raw rows")):
        if offset < curve.shape[1]:
            axis.plot(curve[:, 0], curve[:, offset], style, color="C0", label=f"mean cosine to the pretrained row, {what}")
            axis.plot(curve[:, 0], curve[:, offset + 1], style, color="C1", label=f"1-NN accuracy, {what}")
    axis.axhline(result["chance_accuracy"], color="grey", ls=":", label="chance accuracy")
    axis.set(xlabel="unit-identification step", ylim=(-0.2, 1.0),
             title=f"re-identifying {result['recording']} ({result['units']} units)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return figure
