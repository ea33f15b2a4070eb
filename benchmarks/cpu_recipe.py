"""CPU recipe for `neuropoyo demo`: train variants of the old demo run, compare test R2 with the baselines.

    python benchmarks/cpu_recipe.py [--variants baseline,s900,...] [--out /tmp/neuropoyo-recipe]

Simulates the demo's dataset (2 animals x 1 session x {center_out, random_target}, 120 trials,
300 s, seed 0) once, fits the demo's Wiener and MLP baselines once, then for each named variant of
the old demo run (OLD_DEMO, the retired demo_run.yaml; overrides per section) trains one POYO over
the 4 recordings, evaluates its best-on-validation model on the test splits and prints one row: variant, overrides, steps, training
seconds, test R2 per task and whether POYO beats the best baseline on both tasks. An --out folder
that already holds `data/` and the baseline reports reuses them. The recommended demo recipe is
`s900_init10_udrop_lat16x2_e25` (benchmarks/RESULTS.md, "CPU recipe for the demo"), shipped since as
runs/cpu-small.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

from neuropoyo.baselines.run import run_baselines
from neuropoyo.data.directory import write_dataset
from neuropoyo.data.simulate import simulate_dataset
from neuropoyo.evaluation.evaluate import evaluate
from neuropoyo.machine import machine_line
from neuropoyo.training.config import RunConfig
from neuropoyo.training.loop import train

TASKS = ("center_out", "random_target")
BASELINES = ("wiener", "mlp")


def merged(*parts: dict[str, dict]) -> dict[str, dict]:
    """Override dicts combined section by section (later parts win)."""
    out: dict[str, dict] = {}
    for part in parts:
        for section, fields in part.items():
            out[section] = {**out.get(section, {}), **fields}
    return out


def steps(n: int, **training) -> dict[str, dict]:
    return {"training": {"max_steps": n, **training}}


# The retired demo_run.yaml, the start of the search: runs/cpu-small with what it changed undone.
OLD_DEMO = {
    "model": {"init_std": 0.02, "num_latent_timestamps": 4, "latents_per_timestamp": 8},
    "augment": {"unit_dropout": True},
    "evaluation": {"step_s": 0.5},
    "training": {"max_steps": 1500},
}
INIT = {"model": {"init_std": 0.1}}  # the old demo model: 0.02
ALL_UNITS = {"augment": {"unit_dropout": False}}
EVAL_025 = {"evaluation": {"step_s": 0.25}}  # default 0.5

# variant -> {section: {field: value}} on top of OLD_DEMO
VARIANTS: dict[str, dict[str, dict]] = {
    "baseline": {},
    "s900": steps(900),
    "s900_nodrop": merged(steps(900), {"model": {"ffn_dropout": 0.0, "linear_dropout": 0.0}}),
    "s900_decay50": steps(900, decay_fraction=0.5),
    "s900_lr4e-3": steps(900, lr=4e-3),
    "s900_lr2e-2": steps(900, lr=2e-2),
    "s900_w128d1": merged(steps(900), {"model": {"dim": 128, "depth": 1}}),
    "s900_init05": merged(steps(900), {"model": {"init_std": 0.05}}),
    "s900_init10": merged(steps(900), INIT),
    "s900_init05_udrop": merged(steps(900), {"model": {"init_std": 0.05}}, ALL_UNITS),
    "s900_init10_udrop": merged(steps(900), INIT, ALL_UNITS),
    "s900_init10_udrop_w1": merged(steps(900), INIT, ALL_UNITS, {"loss": {"interval_weights": {}}}),
    "s900_init10_udrop_decay50_e25": merged(steps(900, decay_fraction=0.5), INIT, ALL_UNITS, EVAL_025),
    "s1800_b16_init10_udrop_e25": merged(steps(1800, batch_size=16), INIT, ALL_UNITS, EVAL_025),
    "s1200_init10_udrop_e25": merged(steps(1200), INIT, ALL_UNITS, EVAL_025),
    "s900_init20_udrop_e25": merged(steps(900), {"model": {"init_std": 0.2}}, ALL_UNITS, EVAL_025),
    "s900_init10_udrop_lat8x4_e25": merged(
        steps(900), INIT, ALL_UNITS, EVAL_025, {"model": {"num_latent_timestamps": 8, "latents_per_timestamp": 4}}
    ),
    "s900_init10_udrop_lat16x2_e25": merged(
        steps(900), INIT, ALL_UNITS, EVAL_025, {"model": {"num_latent_timestamps": 16, "latents_per_timestamp": 2}}
    ),
    "s900_init10_udrop_lat8x4": merged(
        steps(900), INIT, ALL_UNITS, {"model": {"num_latent_timestamps": 8, "latents_per_timestamp": 4}}
    ),
}


def apply(config: RunConfig, overrides: dict[str, dict]) -> RunConfig:
    """``config`` with each section's fields replaced by ``overrides`` (validated as usual)."""
    sections = {name: dataclasses.replace(getattr(config, name), **fields) for name, fields in overrides.items()}
    return dataclasses.replace(config, **sections)


def describe(overrides: dict[str, dict]) -> str:
    return " ".join(f"{s}.{k}={v}" for s, fields in overrides.items() for k, v in fields.items()) or "-"


def task_r2(summary: dict) -> tuple[float, float]:
    return tuple(summary["tasks"][task]["mean_r2"] for task in TASKS)


def simulate(data: Path) -> None:
    """Write the dataset `neuropoyo demo` simulates (cli.simulate_to with the demo's defaults)."""
    recordings = simulate_dataset(
        n_animals=2, sessions_per_animal=1, tasks=TASKS, n_trials=120, duration_s=300.0, seed=0
    )
    write_dataset(recordings, data, split_seed=0)


def fit_baselines(data: Path, folder: Path, config: RunConfig) -> dict[str, dict]:
    """The baselines' test summaries; reports already in ``folder`` (an earlier run) are reused."""
    reports = [folder / method / "metrics.json" for method in BASELINES]
    if all(report.is_file() for report in reports):
        return {method: json.loads(report.read_text()) for method, report in zip(BASELINES, reports)}
    started = time.perf_counter()
    baselines = run_baselines([data], folder, methods=BASELINES, evaluation=config.evaluation)
    print(f"baselines fitted in {time.perf_counter() - started:.0f} s")
    return baselines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="baseline", help=f"comma list of: {', '.join(VARIANTS)}")
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a new temp folder)")
    args = parser.parse_args()
    names = args.variants.split(",")
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
    out = args.out or Path(tempfile.mkdtemp(prefix="neuropoyo-recipe-"))
    print(machine_line())
    print("command: python " + " ".join(sys.argv))
    data = out / "data"
    if not data.is_dir():
        simulate(data)
    config = apply(RunConfig.from_yaml("cpu-small"), OLD_DEMO)
    baselines = fit_baselines(data, out / "baselines", config)
    scores = {method: task_r2(summary) for method, summary in baselines.items()}
    best = [max(r2[k] for r2 in scores.values()) for k in range(len(TASKS))]
    for method, (co, rt) in scores.items():
        print(f"{method}: R2 center_out {co:.4f}, random_target {rt:.4f}")
    print("\n| variant | overrides | steps | train s | R2 CO | R2 RT | beats best baseline on both |")
    print("|---|---|---:|---:|---:|---:|---|")
    for name in names:
        run_config = apply(config, VARIANTS[name])
        result = train(run_config, [data], out / "runs" / name, progress=False)
        co, rt = task_r2(evaluate(result.run_dir, [data], out / "eval" / name))
        wins = "yes" if co > best[0] and rt > best[1] else "no"
        print(
            f"| {name} | {describe(VARIANTS[name])} | {result.steps} | {result.seconds:.0f} | {co:.4f} | "
            f"{rt:.4f} | {wins} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
