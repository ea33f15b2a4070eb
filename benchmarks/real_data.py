"""POYO and the classic decoders on the project's real recordings, one model per file.

    python benchmarks/real_data.py [--real ../shared/data/real] [--max-steps 1000] [--out DIR]
                                   [--methods wiener mlp gru] [--files NAME ...] [--seeds 3]
                                   [--config cpu-small] [--device cpu]

For every file of ``--real`` this runs, through the command line, ``neuropoyo prepare nwb``, then
for each seed (``--seed`` 0, 1, ...) ``neuropoyo train`` (single-session, ``--max-steps`` steps; by
default the CPU recipe, run file ``cpu-small``, or the paper's with ``--config
paper-single-session --device cuda``), ``neuropoyo evaluate`` and ``neuropoyo baselines`` (same
splits, same evaluation samples), then prints a table of test R2 per file and method (mean ± sd
over seeds), POYO's paired difference to the best baseline (per seed), and the commands that
reproduce each row.

The five monkey files hold spike times rebuilt from 50-100 ms bins (spread evenly inside each bin),
so spike timing finer than the source bin is an artefact; the mouse file holds real spike times and
head direction, decoded as (cos, sin) and also scored by angular error. Skips, with a message,
when the folder is absent.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from neuropoyo.cli import main as neuropoyo
from neuropoyo.experiments.spread import mean_and_spread, paired_cell
from neuropoyo.training.config import RUN_PRESETS

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


class Dataset(NamedTuple):
    file: str
    task: str
    stream: str = "hand_vel"
    prepare: tuple[str, ...] = ()  # extra `neuropoyo prepare nwb` options


DATASETS = (
    Dataset("dyer2017_chewie_20131003_co.nwb", "center_out"),
    Dataset("dyer2017_chewie_20131219_co.nwb", "center_out"),
    Dataset("miller_co_m1_84units.nwb", "center_out"),
    Dataset("s1_area2_52units.nwb", "reaching"),
    Dataset("stevenson2011_monkeyC_m1_co.nwb", "center_out_continuous"),
    Dataset(
        "peyrache_A2929-200711_headdirection.nwb",
        "head_direction",
        stream="ry",
        prepare=(
            "--behavior-location", "acquisition/CompassDirection", "--behavior", "ry",
            "--circular", "ry", "--domain", "behavior",
        ),
    ),
)


def run(argv: list[str], log: list[str]) -> None:
    """Run one neuropoyo command in this process, keeping its command line for the report."""
    log.append("neuropoyo " + shlex.join(argv))
    print(f"$ {log[-1]}", flush=True)
    if neuropoyo(argv) != 0:
        sys.exit(f"failed: {log[-1]}")


def benchmark(dataset: Dataset, real: Path, out: Path, args: argparse.Namespace) -> dict:
    """Prepare the file, then per seed train, evaluate and run the baselines; returns its table
    row: per method, the stream's metrics of each seed."""
    stem = Path(dataset.file).stem
    data = out / "data" / stem
    commands: list[str] = []
    run(["prepare", "nwb", str(real / dataset.file), "--out", str(data), "--task", dataset.task,
         *dataset.prepare], commands)
    row = {"file": stem, "task": dataset.task, "commands": commands, "poyo_seconds": 0.0, "baseline_seconds": 0.0,
           **{method: [] for method in ["POYO", *args.methods]}}
    for seed in range(args.seeds):
        run_dir, eval_dir, base_dir = (out / part / stem / f"seed{seed}" for part in ("run", "eval", "base"))
        started = time.perf_counter()
        run(["train", "--config", str(args.config), "--data", str(data), "--out", str(run_dir), "--seed", str(seed),
             "--max-steps", str(args.max_steps), "--readout", dataset.stream, "--device", args.device], commands)
        run(["evaluate", "--model", str(run_dir), "--data", str(data), "--out", str(eval_dir),
             "--device", args.device], commands)
        row["poyo_seconds"] += time.perf_counter() - started
        started = time.perf_counter()
        run(["baselines", "--data", str(data), "--out", str(base_dir), "--methods", *args.methods,
             "--readout", dataset.stream, "--seed", str(seed)], commands)
        row["baseline_seconds"] += time.perf_counter() - started
        for method, folder in [("POYO", eval_dir)] + [(m, base_dir / m) for m in args.methods]:
            (record,) = json.loads((folder / "metrics.json").read_text())["recordings"].values()
            row[method].append(record["streams"][dataset.stream])
    return row


def table(rows: list[dict], methods: list[str]) -> str:
    """Markdown: test R2 per file and method, mean ± sd over seeds (best mean in bold), with the
    mean / median angular error where the stream is an angle; then POYO minus the best baseline,
    paired per seed (mean ± sd, how many seeds above 0)."""
    columns = ["POYO", *methods]
    lines = ["| file | task | " + " | ".join(columns) + " | POYO - best baseline |",
             "|---|---|" + "---:|" * (len(columns) + 1)]
    for row in rows:
        r2 = {c: [m["r2"] for m in row[c]] for c in columns}
        best = max(columns, key=lambda c: np.mean(r2[c]))
        cells = []
        for c in columns:
            text = mean_and_spread(r2[c])
            if "angular_error_deg" in row[c][0]:
                mean, median = (np.mean([m["angular_error_deg"][k] for m in row[c]]) for k in ("mean", "median"))
                text += f" ({mean:.1f} / {median:.1f} deg)"
            cells.append(f"**{text}**" if c == best else text)
        rival = max(methods, key=lambda c: np.mean(r2[c]))
        gain = np.subtract(r2["POYO"], r2[rival])
        cells.append(f"{paired_cell(gain)} vs {rival}")
        lines.append(f"| {row['file']} | {row['task']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=REAL, help="folder of the real NWB files")
    parser.add_argument("--max-steps", type=int, default=1000, help="POYO training steps per file")
    parser.add_argument("--methods", nargs="+", default=["wiener", "mlp", "gru"], help="baselines to run")
    parser.add_argument("--files", nargs="+", help="only these file names (default: all six)")
    parser.add_argument("--out", type=Path, default=None, help="working folder (default: a temp one)")
    parser.add_argument("--config", type=Path, default=RUN_PRESETS / "cpu-small.yaml", help="POYO run file")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 of POYO and the MLP/GRU (default 3)")
    args = parser.parse_args()
    if not args.real.is_dir():
        print(f"skipped: no real-data folder at {args.real} (pass --real DIR)")
        return
    out = args.out or Path(tempfile.mkdtemp(prefix="neuropoyo-real-"))
    chosen = [d for d in DATASETS if not args.files or d.file in args.files]
    rows = [benchmark(d, args.real, out, args) for d in chosen]
    methods = args.methods
    print(f"\nTest R2 per file, mean ± sd over {args.seeds} seed(s) (head direction: mean / median angular error")
    print("in brackets); monkey spike times are rebuilt from 50-100 ms bins, so finer timing is an artefact.\n")
    print(table(rows, methods))
    print("\n| file | POYO train+evaluate s | baselines s |\n|---|---:|---:|")
    for row in rows:
        print(f"| {row['file']} | {row['poyo_seconds']:.0f} | {row['baseline_seconds']:.0f} |")
    print(
        f"\nreproduce: python benchmarks/real_data.py --max-steps {args.max_steps} --methods {' '.join(args.methods)} "
        f"--config {args.config} --device {args.device} --seeds {args.seeds}"
    )
    for row in rows:
        print(f"\n{row['file']}:\n  " + "\n  ".join(row["commands"]))
    (out / "real_data.json").write_text(json.dumps(rows, indent=2))
    print(f"\nall reports under {out}")


if __name__ == "__main__":
    main()
