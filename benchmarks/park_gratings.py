"""Grating direction from mouse V1 calcium imaging (Park et al. 2025): POYO against the classifiers (issue 35).

    python benchmarks/park_gratings.py [--real ../shared/data/real] [--out DIR] [--seeds 0 1 2]
                                       [--split-seeds 0] [--recipe NAME] [--files mrcuts25 ...]
                                       [--no-multi] [--no-behavior] [--threads 1]
    python benchmarks/park_gratings.py --search NAME,NAME,... [--files ...] [--seeds 0]

Imports the five Park files of ``--real`` unchanged with ``neuropoyo prepare nwb`` (direction as a
label over the stimulus, 8 classes; splits stratified by direction: 26 test and 13 valid trials of
128), once per split seed (``--split-seeds``). Per split seed and training seed (``--seeds``):

- one POYO per file (single-session) trained with the run file of ``--recipe`` (written to
  OUT/configs/NAME.yaml, ``extends: runs/cpu-small``), decoding direction and, unless
  ``--no-behavior``, running_speed and pupil with the same model;
- one POYO on all five files (multi-session, ``--no-multi`` skips it), the recipe's multi-session
  run file, same seed;
- the classifiers of ``neuropoyo baselines --readout direction`` (logistic regression, MLP; the MLP
  seeded with the training seed) on the same splits; the continuous baselines (Wiener, MLP, GRU) of
  running_speed and pupil once per split seed (seed 0).

Every model is scored on the test trials (``neuropoyo evaluate``: one decision per trial, the mean
log-probability over its label samples). The tables give per file and averaged test accuracy,
mean +- sd over the (split seed, training seed) runs, the paired differences POYO - baseline, the
multi-session model against the average of the single-session models (paired by run), and the
running-speed and pupil R2 next to the baselines'.

``--search`` chooses a recipe on the VALIDATION split only: each named variant (VARIANTS) is
trained per file and seed and scored on the valid trials; the test split is not read.

Training runs at ``--threads`` intra-op threads (default 1): the trainer takes one thread per core,
and on this shared 2-core machine a 2-thread training ran 5x slower per step than a 1-thread one
(1.51 s against 0.27-0.28 s) while other jobs ran. Skips, with a message, when the data folder is
absent. Results: benchmarks/RESULTS.md, "Calcium imaging: grating direction from mouse V1".
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
FILES = (
    "park2024_230803_mrcuts24_fov1_grat_v1_2p.nwb",
    "park2024_230803_mrcuts25_fov6_grat_v1_2p.nwb",
    "park2024_230804_mrcuts26_fov5_grat_v1_2p.nwb",
    "park2024_230804_mrcuts27_fov3_grat_v1_2p.nwb",
    "park2024_230810_mrcuts29_fov2_grat_v1_2p.nwb",
)
LABEL = "direction=direction:stimulus_onset_time:stimulus_offset_time"
LABEL_STREAM = "direction"
BEHAVIOR = ("running_speed", "pupil")
CLASSIFIERS = ("logistic", "mlp")
REGRESSORS = ("wiener", "mlp", "gru")


def merged(*parts: dict[str, dict]) -> dict[str, dict]:
    """Override dicts combined section by section (later parts win)."""
    out: dict[str, dict] = {}
    for part in parts:
        for section, fields in part.items():
            out[section] = {**out.get(section, {}), **fields}
    return out


# Run files, as overrides of runs/cpu-small (section -> fields). The default, "recipe", is the shipped
# CPU recipe; the searches run so far (benchmarks/RESULTS.md, "Calcium imaging: grating direction
# from mouse V1") scored every variant near chance on 13 validation trials per file, too few to
# choose another.
def variant(context_s: float | None = None, *, steps: int = 300, batch: int = 16, **sections) -> dict[str, dict]:
    """Overrides of runs/cpu-small: validation every 50 steps, ``steps`` of ``batch`` windows,
    a model context of ``context_s`` (None: the preset's 1 s), then ``sections``."""
    parts = [{"training": {"validate_every": 50, "max_steps": steps, "batch_size": batch}}]
    if context_s is not None:
        parts.append({"model": {"context_length_s": context_s}})
    return merged(*parts, sections)


TRIAL_S = 3.0625  # a Park trial window: 49 frames of 1/16 s (1 s before onset, 2 s grating, after)
VARIANTS: dict[str, dict[str, dict]] = {
    "recipe": {"training": {"validate_every": 100}},  # runs/cpu-small as shipped: 900 steps of 32 windows
    # the shipped recipe, its best model chosen on direction alone (training.select_on)
    "select": {"training": {"validate_every": 100, "select_on": [LABEL_STREAM]}},
    "c1": variant(batch=32),  # runs/cpu-small at 300 steps (its 900 steps of 32 windows: 100 epochs)
    "c3": variant(TRIAL_S),  # every window is one whole trial
    "c3_lr3e-3": variant(TRIAL_S, training={"lr": 3e-3}),
}
RECIPE = "recipe"  # what a user gets without --config; the others are for --search
# recipe -> overrides of its single-session run file for the five files together: the shipped
# recipe lowers lr to 4e-3 from 2 recordings on (neuropoyo.training.recipe)
MULTI: dict[str, dict[str, dict]] = {name: {"training": {"lr": 4e-3}} for name in ("recipe", "select", "c1", "c3")}


def run_file(folder: Path, name: str, overrides: dict[str, dict]) -> Path:
    """OUT/configs/NAME.yaml: runs/cpu-small with ``overrides``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"extends": "runs/cpu-small", **overrides}, sort_keys=False))
    return path


def limit_threads(threads: int) -> None:
    """Train at ``threads`` intra-op threads: the trainer sets its share of the cores it sees."""
    from neuropoyo import distributed

    distributed.cores = lambda: threads


def prepare(real: Path, folder: Path, split_seed: int, commands: list[str]) -> list[Path]:
    """The five files imported into ``folder`` (kept when already there)."""
    stems = [Path(name).stem for name in FILES]
    if not all((folder / f"{stem}.h5").is_file() for stem in stems):
        exe = shutil.which("neuropoyo") or str(Path(sys.executable).with_name("neuropoyo"))
        args = ["prepare", "nwb", *(str(real / f) for f in FILES), "--out", str(folder), "--label", LABEL,
                "--task", "gratings", "--split-seed", str(split_seed)]
        commands.append("neuropoyo " + " ".join(args))
        subprocess.run([exe, *args], check=True, stdout=subprocess.DEVNULL)
    return [folder / f"{stem}.h5" for stem in stems]


def short(path: Path | str) -> str:
    """mrcuts25 for park2024_230803_mrcuts25_fov6_grat_v1_2p."""
    return next(part for part in Path(path).stem.split("_") if part.startswith("mrcuts"))


def best_step(run: Path) -> str:
    rows = [r for r in csv.DictReader((run / "metrics.csv").open()) if r.get("valid_r2")]
    if not rows:
        return "-"
    best = max(rows, key=lambda r: float(r["valid_r2"]))
    return best["step"]


def stream_scores(summary: dict, stream: str, key: str) -> dict[str, float]:
    """recording short name -> metric ``key`` of ``stream``."""
    return {
        short(rid): rec["streams"][stream][key]
        for rid, rec in summary["recordings"].items()
        if stream in rec.get("streams", {})
    }


def train_and_score(files, run: Path, config: Path, readouts, seed: int, split: str, commands: list[str]):
    """(summary on ``split``, seconds, best step on validation); an existing evaluation is reused."""
    from neuropoyo import api

    names = " ".join(map(str, files))
    reads = " ".join(f"--readout {r}" for r in readouts)
    commands.append(f"neuropoyo train --data {names} --out {run} --config {config} {reads} --seed {seed}")
    commands.append(f"neuropoyo evaluate --model {run} --data {names} --out {run}/eval_{split} --split {split}")
    done = run / f"eval_{split}" / "metrics.json"
    if done.is_file():
        info = json.loads((run / "timing.json").read_text())
        return json.loads(done.read_text()), info["seconds"], best_step(run)
    started = time.perf_counter()
    api.train(list(files), run, config=config, readouts=list(readouts), seed=seed, progress=False)
    seconds = time.perf_counter() - started
    (run / "timing.json").write_text(json.dumps({"seconds": seconds}))
    summary = api.evaluate(run, list(files), run / f"eval_{split}", split=split, progress=False)
    return summary, seconds, best_step(run)


def mean_sd(values) -> str:
    values = list(values)
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def search(args, out: Path, commands: list[str]) -> None:
    """Each variant per file and seed, scored on the valid trials (split seed 0)."""
    data = prepare(args.real, out / "data" / "split0", 0, commands)
    data = [f for f in data if not args.files or short(f) in args.files]
    extra = [] if args.no_behavior else [f"mean {s} R2" for s in BEHAVIOR]
    print("\n| variant | overrides | seed | " + " | ".join(short(f) for f in data)
          + " | mean acc | mean per-sample acc | " + "".join(f"{e} | " for e in extra) + "train s | best steps |")
    print("|---|---|---:|" + "---:|" * (len(data) + 2 + len(extra)) + "---:|---|")
    for name in args.search.split(","):
        config = run_file(out / "configs", name, VARIANTS[name])
        for seed in args.seeds:
            accs, samples, seconds, steps = [], [], 0.0, []
            behavior: dict[str, list[float]] = {stream: [] for stream in extra and BEHAVIOR}
            for f in data:
                run = out / "search" / name / f"seed{seed}" / short(f)
                summary, sec, step = train_and_score([f], run, config, readouts(args), seed, "valid", commands)
                accs.append(stream_scores(summary, LABEL_STREAM, "accuracy")[short(f)])
                samples.append(stream_scores(summary, LABEL_STREAM, "sample_accuracy")[short(f)])
                for stream in behavior:
                    behavior[stream].append(stream_scores(summary, stream, "r2")[short(f)])
                seconds += sec
                steps.append(step)
            cells = " | ".join(f"{a:.3f}" for a in accs)
            print(f"| {name} | {describe(VARIANTS[name])} | {seed} | {cells} | {statistics.mean(accs):.3f} | "
                  f"{statistics.mean(samples):.3f} | " + "".join(f"{statistics.mean(v):.3f} | " for v in behavior.values())
                  + f"{seconds:.0f} | {','.join(steps)} |", flush=True)


def describe(overrides: dict[str, dict]) -> str:
    return " ".join(f"{s}.{k}={v}" for s, fields in overrides.items() for k, v in fields.items()) or "-"


def readouts(args) -> list[str]:
    return [LABEL_STREAM] + ([] if args.no_behavior else list(BEHAVIOR))


def benchmark(args, out: Path, commands: list[str]) -> None:
    from neuropoyo import api

    single = run_file(out / "configs", args.recipe, VARIANTS[args.recipe])
    multi = run_file(out / "configs", args.recipe + "_multi", merged(VARIANTS[args.recipe], MULTI.get(args.recipe, {})))
    print(f"run files: {single} {VARIANTS[args.recipe]}; {multi} {MULTI.get(args.recipe, {})}")
    # (split seed, seed) -> file -> {method: accuracy}; and behavior R2 per split seed
    acc: dict[tuple[int, int], dict[str, dict[str, float]]] = {}
    r2_file: dict[str, dict[str, dict[str, list[float]]]] = {s: {} for s in BEHAVIOR}
    seconds: dict[str, list[float]] = {"single": [], "multi": []}
    for split_seed in args.split_seeds:
        data = prepare(args.real, out / "data" / f"split{split_seed}", split_seed, commands)
        data = [f for f in data if not args.files or short(f) in args.files]
        folder = out / f"split{split_seed}"
        if not args.no_behavior:
            for stream in BEHAVIOR:
                base = folder / "baselines" / stream
                commands.append(f"neuropoyo baselines --data {' '.join(map(str, data))} --out {base} --readout {stream}")
                reports = {m: base / m / "metrics.json" for m in REGRESSORS}
                found = (
                    {m: json.loads(p.read_text()) for m, p in reports.items()}
                    if all(p.is_file() for p in reports.values())
                    else api.baselines(data, base, methods=REGRESSORS, readout=stream)
                )
                for method, summary in found.items():
                    for name, value in stream_scores(summary, stream, "r2").items():
                        r2_file[stream].setdefault(method, {}).setdefault(name, []).append(value)
        for seed in args.seeds:
            run_acc: dict[str, dict[str, float]] = {}
            base = folder / "baselines" / f"direction_seed{seed}"
            commands.append(
                f"neuropoyo baselines --data {' '.join(map(str, data))} --out {base} --readout direction --seed {seed}"
            )
            reports = {m: base / m / "metrics.json" for m in CLASSIFIERS}
            found = (
                {m: json.loads(p.read_text()) for m, p in reports.items()}
                if all(p.is_file() for p in reports.values())
                else api.baselines(data, base, methods=CLASSIFIERS, readout=LABEL_STREAM, seed=seed)
            )
            for method, summary in found.items():
                for name, value in stream_scores(summary, LABEL_STREAM, "accuracy").items():
                    run_acc.setdefault(name, {})[method] = value
            for f in data:
                run = folder / "single" / f"seed{seed}" / short(f)
                summary, sec, _ = train_and_score([f], run, single, readouts(args), seed, "test", commands)
                seconds["single"].append(sec)
                run_acc[short(f)]["poyo"] = stream_scores(summary, LABEL_STREAM, "accuracy")[short(f)]
                for stream in () if args.no_behavior else BEHAVIOR:
                    value = stream_scores(summary, stream, "r2")[short(f)]
                    r2_file[stream].setdefault("poyo", {}).setdefault(short(f), []).append(value)
            if not args.no_multi and len(data) > 1:
                run = folder / "multi" / f"seed{seed}"
                summary, sec, _ = train_and_score(data, run, multi, readouts(args), seed, "test", commands)
                seconds["multi"].append(sec)
                for name, value in stream_scores(summary, LABEL_STREAM, "accuracy").items():
                    run_acc[name]["poyo_multi"] = value
                for stream in () if args.no_behavior else BEHAVIOR:
                    for name, value in stream_scores(summary, stream, "r2").items():
                        r2_file[stream].setdefault("poyo_multi", {}).setdefault(name, []).append(value)
            acc[(split_seed, seed)] = run_acc
    report(acc, r2_file, seconds, args)


def report(acc, r2_file, seconds, args) -> None:
    runs = sorted(acc)
    names = list(acc[runs[0]])
    methods = [m for m in ("poyo", "poyo_multi", "logistic", "mlp") if m in acc[runs[0]][names[0]]]
    print(f"\nDirection, test accuracy (26 trials per file; chance 0.125); mean ± sd over {len(runs)} runs "
          f"(split seeds {args.split_seeds} x training seeds {args.seeds})")
    print("\n| file | " + " | ".join(methods) + " | POYO − logistic | POYO − MLP | POYO ≥ both (runs) |")
    print("|---|" + "---:|" * len(methods) + "---:|---:|---:|")

    def row(label, value_of):
        cells = [mean_sd(value_of(r, m) for r in runs) for m in methods]
        d_log = [value_of(r, "poyo") - value_of(r, "logistic") for r in runs]
        d_mlp = [value_of(r, "poyo") - value_of(r, "mlp") for r in runs]
        wins = sum(a >= 0 and b >= 0 for a, b in zip(d_log, d_mlp))
        print(f"| {label} | " + " | ".join(cells) + f" | {mean_sd(d_log)} | {mean_sd(d_mlp)} | {wins}/{len(runs)} |")

    for name in names:
        row(name, lambda r, m, name=name: acc[r][name][m])
    row("mean of files", lambda r, m: statistics.mean(acc[r][n][m] for n in names))
    if "poyo_multi" in methods:
        diffs = [statistics.mean(acc[r][n]["poyo_multi"] - acc[r][n]["poyo"] for n in names) for r in runs]
        print(f"\nmulti-session − mean of single-session, per run: {', '.join(f'{d:+.3f}' for d in diffs)}; "
              f"{mean_sd(diffs)}; higher in {sum(d > 0 for d in diffs)}/{len(runs)} runs")
    for stream, by_method in r2_file.items():
        if not by_method:
            continue
        order = [m for m in ("poyo", "poyo_multi", *REGRESSORS) if m in by_method]
        print(f"\n{stream}, test R2 (POYO: mean ± sd over runs; baselines: one fit per split seed)")
        print("\n| file | " + " | ".join(order) + " |")
        print("|---|" + "---:|" * len(order))
        for name in names:
            print(f"| {name} | " + " | ".join(mean_sd(by_method[m][name]) for m in order) + " |")
        means = {m: [statistics.mean(v[k] for v in by_method[m].values()) for k in range(len(by_method[m][names[0]]))]
                 for m in order}
        print("| mean of files | " + " | ".join(mean_sd(means[m]) for m in order) + " |")
    for kind, values in seconds.items():
        if values:
            print(f"\ntraining seconds, {kind}: median {statistics.median(values):.0f} ({len(values)} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=REAL, help="folder of the Park NWB files")
    parser.add_argument("--out", type=Path, default=None, help="working folder (default: a temp one); reused")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    parser.add_argument("--split-seeds", type=int, nargs="+", default=[0], help="split seeds of the import")
    parser.add_argument("--recipe", default=RECIPE, choices=sorted(VARIANTS), help="run file of the benchmark")
    parser.add_argument("--search", default=None, help="comma list of variants to score on the valid split")
    parser.add_argument("--files", nargs="+", default=None, help="animals to keep, e.g. mrcuts25 mrcuts29")
    parser.add_argument("--no-multi", action="store_true", help="skip the model on all five files")
    parser.add_argument("--no-behavior", action="store_true", help="decode direction only")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads of training (default 1)")
    args = parser.parse_args()
    if not all((args.real / name).is_file() for name in FILES):
        print(f"skipped: the Park files are not in {args.real} (pass --real DIR)")
        return
    from neuropoyo.machine import machine_line

    limit_threads(args.threads)
    out = args.out or Path(tempfile.mkdtemp(prefix="neuropoyo-park-"))
    print(machine_line())
    print("command: python " + " ".join(sys.argv))
    print(f"work folder: {out}")
    commands: list[str] = []
    if args.search:
        unknown = [n for n in args.search.split(",") if n not in VARIANTS]
        if unknown:
            parser.error(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")
        search(args, out, commands)
    else:
        benchmark(args, out, commands)
    print("\ncommands (threads limited to --threads in-process):\n  " + "\n  ".join(commands))


if __name__ == "__main__":
    main()
