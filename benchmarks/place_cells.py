"""Place cells: position from rat CA1 on the nelpy linear track, POYO against the classic decoders (issue 35).

    python benchmarks/place_cells.py [--real ../shared/data/real] [--work DIR] [--seeds 0 1 2]
                                     [--context-s 4.0] [--config RUN_FILE] [--no-matched] [--threads 1]

Through the public Python API (``import neuropoyo``), the equivalent of:

    neuropoyo prepare nwb REAL/nelpy_linear_track.nwb --out WORK/data --task linear_track
    neuropoyo train --config WORK/place_cells.yaml --data WORK/data --out WORK/poyo/seedS --readout position --seed S
    neuropoyo evaluate --model WORK/poyo/seedS --out WORK/eval/POYO/seedS --eval-intervals run
    neuropoyo baselines --data WORK/data --out WORK/base/fixed --readout position --methods wiener bayes --eval-intervals run
    neuropoyo baselines --data WORK/data --out WORK/base/seedS --readout position --methods mlp gru --seed S --eval-intervals run
    (window-matched, below: the same two baselines commands with --bin-s C/20 --n-lags 20)

(the exact lines are printed at the end). One split (the importer's, split seed 0), several
training seeds: POYO, the MLP and the GRU are trained once per seed; the Wiener filter (ridge,
penalty chosen on validation) and the Bayesian place-field decoder are deterministic, so they are
fitted once and their single score is paired with every seed. Everything is scored on the test
split's samples inside the ``run`` epochs (``--eval-intervals run``).

The run file ``WORK/place_cells.yaml`` is written by this script: the shipped CPU recipe
(``extends: cpu-small``) with a 4 s context instead of 1 s (``--context-s``; 1.0 gives the recipe
unchanged, ``--config`` any other run file). Why 4 s: benchmarks/RESULTS.md, "Place cells:
position from rat CA1 on the nelpy linear track" (chosen on the validation split).

POYO then reads C seconds of spikes around each decoded sample (its window holds the sample), while
the shipped baselines read a causal history of 0.2 s (Wiener, MLP, GRU: 20 bins of 10 ms) or 0.5 s
(Bayes: one bin). So the script also runs every baseline window-matched (unless ``--no-matched``):
20 bins of C/20 s, C seconds of history, the same span POYO sees (for Bayes, one window of C s).

Prints per method R2 (x, y, mean) and median position error (pixels) as mean +- sd over seeds,
then POYO minus each baseline, paired by seed, with how many seeds favour POYO. Torch runs on
``--threads`` threads (default 1: on a shared 2-core machine two threads stall when another job
runs, and CPU results depend on the thread count). Skips, with a message, when the data are absent.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import tempfile
import time
from pathlib import Path

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
FILE = "nelpy_linear_track.nwb"
STREAM = "position"
INTERVALS = ["run"]
FIXED = ("wiener", "bayes")  # deterministic: fitted once
SEEDED = ("mlp", "gru")  # trained once per seed
BASELINES = ("wiener", "mlp", "gru", "bayes")
NAMES = {"POYO": "POYO", "wiener": "Wiener", "mlp": "MLP", "gru": "GRU", "bayes": "Bayes (place fields)"}
MATCHED_LAGS = 20


def machine() -> str:
    """CPU model, cores, Python and torch versions, threads."""
    import torch

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch thread(s)"
    )


def run_file(work: Path, context_s: float) -> Path:
    """The run file: the CPU recipe with a ``context_s`` context (1.0: the recipe unchanged)."""
    path = work / "place_cells.yaml"
    lines = [
        "# benchmarks/place_cells.py: the CPU recipe (runs/cpu-small), context changed; see benchmarks/RESULTS.md",
        "extends: cpu-small",
    ]
    if context_s != 1.0:
        lines.append(f"model: {{context_length_s: {context_s}}}")
    path.write_text("\n".join(lines) + "\n")
    return path


def scores(summary: dict) -> dict:
    """{r2x, r2y, r2, median} of the one recording's position stream in a metrics summary."""
    (record,) = summary["recordings"].values()
    stream = record["streams"][STREAM]
    x, y = stream["r2_per_dim"]
    return {"r2x": x, "r2y": y, "r2": stream["r2"], "median": stream["median_error"]}


def spread(values: list[float], digits: int) -> str:
    """'mean +- sd' (sd over seeds; a single value alone)."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def tables(results: dict[str, list[dict]], seeds: list[int], matched: float | None) -> str:
    """Markdown: scores per method, then POYO minus each baseline paired by seed. ``results`` keys:
    POYO, each baseline, and each baseline + '@' when window-matched (``matched`` s)."""
    n = len(seeds)
    keys = ["POYO", *BASELINES] + ([f"{m}@" for m in BASELINES] if matched else [])

    def name(key: str) -> str:
        base = key.rstrip("@")
        return NAMES[base] + (f", {matched:g} s history" if key.endswith("@") else "")

    lines = [
        (
            f"Test split, samples inside `run` epochs; mean ± sd over {n} seed(s) (Wiener and Bayes: "
            "deterministic, one fit, paired with every seed)."
        ),
        "",
        "| method | R2 x | R2 y | R2 (mean of x, y) | median error (px) | fits |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key in keys:
        rows = results[key]
        cells = [spread([r[k] for r in rows], 3) for k in ("r2x", "r2y", "r2")] + [spread([r["median"] for r in rows], 1)]
        fits = f"{len(rows)} seeds" if key.rstrip("@") in ("POYO", *SEEDED) else "1 (deterministic)"
        lines.append(f"| {name(key)} | " + " | ".join(cells) + f" | {fits} |")
    lines += [
        "",
        "POYO minus baseline, paired by seed (R2: > 0 favours POYO; median error: < 0 favours POYO).",
        "",
        "| baseline | Δ R2 | seeds POYO higher | Δ median error (px) | seeds POYO lower | per seed (Δ R2 / Δ px) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    poyo = results["POYO"]
    for key in keys[1:]:
        base = results[key] if len(results[key]) == n else results[key] * n
        d_r2 = [p["r2"] - b["r2"] for p, b in zip(poyo, base)]
        d_med = [p["median"] - b["median"] for p, b in zip(poyo, base)]
        per_seed = ", ".join(f"{s}: {a:+.3f} / {b:+.1f}" for s, a, b in zip(seeds, d_r2, d_med))
        lines.append(
            f"| {name(key)} | {spread(d_r2, 3)} | {sum(d > 0 for d in d_r2)}/{n} | {spread(d_med, 1)} | "
            f"{sum(d < 0 for d in d_med)}/{n} | {per_seed} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=REAL, help="folder of the real NWB files")
    parser.add_argument("--work", type=Path, default=None, help="working folder, new or empty (default: a temp one)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds of POYO, MLP, GRU")
    parser.add_argument("--context-s", type=float, default=4.0, help="POYO context (s) in the written run file")
    parser.add_argument("--config", default=None, help="POYO run file or preset instead of the written one")
    parser.add_argument("--max-steps", type=int, default=None, help="POYO training steps (default: the run file's)")
    parser.add_argument("--no-matched", action="store_true", help="skip the window-matched baselines")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    source = args.real / FILE
    if not source.is_file():
        print(f"skipped: no {FILE} in {args.real} (pass --real DIR)")
        return

    import torch

    import neuropoyo

    torch.set_num_threads(args.threads)
    work = args.work or Path(tempfile.mkdtemp(prefix="neuropoyo-place-cells-"))
    if work.is_dir() and any(work.iterdir()):
        raise SystemExit(f"{work} is not empty; pass a new or empty --work folder")
    work.mkdir(parents=True, exist_ok=True)
    env = f"OMP_NUM_THREADS={args.threads} "
    where = " ".join(INTERVALS)
    commands: list[str] = []
    data = work / "data"
    neuropoyo.prepare_nwb([source], data, task="linear_track")
    commands.append(f"neuropoyo prepare nwb {shlex.quote(str(source))} --out {data} --task linear_track")
    config = args.config or str(run_file(work, args.context_s))
    context_s = neuropoyo.RunConfig.from_yaml(config).model.context_length_s
    matched = None if args.no_matched else context_s
    # (results key suffix, folder suffix, bin_s, n_lags, CLI options): shipped grids, then window-matched
    grids = [("", "", None, None, "")]
    if matched:
        bin_s = round(matched / MATCHED_LAGS, 6)
        grids.append(("@", f"_matched{matched:g}s", bin_s, MATCHED_LAGS, f" --bin-s {bin_s:g} --n-lags {MATCHED_LAGS}"))

    results: dict[str, list[dict]] = {key: [] for key in ["POYO", *(m + g[0] for g in grids for m in BASELINES)]}
    seconds: dict[str, list[float]] = {"POYO": [], "mlp+gru": [], "wiener+bayes": []}
    valid: list[dict] = []

    def baselines(methods, folder: Path, grid, seed: int | None = None) -> None:
        suffix, _, bin_s, n_lags, options = grid
        started = time.perf_counter()
        summaries = neuropoyo.baselines(
            data, folder, methods=methods, readout=STREAM, bin_s=bin_s, n_lags=n_lags, seed=seed or 0,
            eval_intervals=INTERVALS,
        )
        seconds["mlp+gru" if seed is not None else "wiener+bayes"].append(time.perf_counter() - started)
        for method in methods:
            results[method + suffix].append(scores(summaries[method]))
        commands.append(
            f"{env}neuropoyo baselines --data {data} --out {folder} --readout {STREAM} --methods {' '.join(methods)}"
            + (f" --seed {seed}" if seed is not None else "") + f"{options} --eval-intervals {where}"
        )

    for grid in grids:
        baselines(FIXED, work / f"base{grid[1]}" / "fixed", grid)
    for seed in args.seeds:
        run_dir, eval_dir = work / "poyo" / f"seed{seed}", work / "eval" / "POYO" / f"seed{seed}"
        started = time.perf_counter()
        neuropoyo.train(
            data, run_dir, config=config, readouts=[STREAM], seed=seed, max_steps=args.max_steps, progress=False
        )
        results["POYO"].append(scores(neuropoyo.evaluate(run_dir, out=eval_dir, eval_intervals=INTERVALS, progress=False)))
        seconds["POYO"].append(time.perf_counter() - started)
        valid.append(scores(neuropoyo.evaluate(run_dir, split="valid", eval_intervals=INTERVALS, progress=False)))
        commands += [
            f"{env}neuropoyo train --config {config} --data {data} --out {run_dir} --readout {STREAM} --seed {seed}"
            + (f" --max-steps {args.max_steps}" if args.max_steps else ""),
            f"{env}neuropoyo evaluate --model {run_dir} --out {eval_dir} --eval-intervals {where}",
        ]
        for grid in grids:
            baselines(SEEDED, work / f"base{grid[1]}" / f"seed{seed}", grid, seed)
        print(
            f"seed {seed}: POYO test R2 {results['POYO'][-1]['r2']:.3f}, median {results['POYO'][-1]['median']:.1f} px "
            f"(valid R2 {valid[-1]['r2']:.3f}, median {valid[-1]['median']:.1f} px); "
            f"MLP {results['mlp'][-1]['r2']:.3f}, GRU {results['gru'][-1]['r2']:.3f}",
            flush=True,
        )

    print(f"\n{FILE}, {len(args.seeds)} seed(s) {args.seeds}; POYO run file {config} (context {context_s:g} s)"
          + (f", {args.max_steps} steps" if args.max_steps else ""))
    print(f"machine: {machine()}\n")
    print(tables(results, args.seeds, matched))
    print(
        f"\nwall time per fit: POYO train + evaluate {spread(seconds['POYO'], 0)} s; MLP + GRU "
        f"{spread(seconds['mlp+gru'], 0)} s; Wiener + Bayes {spread(seconds['wiener+bayes'], 0)} s"
    )
    print(f"POYO on the validation split: R2 {spread([v['r2'] for v in valid], 3)}, median "
          f"{spread([v['median'] for v in valid], 1)} px")
    if args.config is None:
        print(f"\nrun file {config}:\n" + Path(config).read_text())
    print("commands (the script calls the same through the Python API):\n  " + "\n  ".join(commands))
    print(
        "\nreproduce: python benchmarks/place_cells.py --seeds " + " ".join(map(str, args.seeds))
        + (f" --config {args.config}" if args.config else f" --context-s {args.context_s:g}")
        + (f" --max-steps {args.max_steps}" if args.max_steps else "")
        + (" --no-matched" if args.no_matched else "") + f" --threads {args.threads}"
    )
    (work / "place_cells.json").write_text(
        json.dumps({"seeds": args.seeds, "context_s": context_s, "test": results, "valid_poyo": valid}, indent=2)
    )
    print(f"all reports under {work}")


if __name__ == "__main__":
    main()
