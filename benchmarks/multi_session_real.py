"""One POYO on the five monkey recordings against one POYO per recording (issue 15, paper Table 2).

    python benchmarks/multi_session_real.py [--real ../shared/data/real] [--out DIR] [--max-steps N]
                                            [--config cpu-small] [--seeds 3]

Imports the five monkey files of ``--real`` (both Chewie days, Stevenson, Miller, S1) with
``neuropoyo prepare nwb`` exactly as benchmarks/real_data.py does (same tasks, same split seed, so
the same train/valid/test splits), then runs ``neuropoyo experiment scaling`` with the run file's
model on all five recordings: it fits one single-session model per recording and one model on the
five, with the same run file and steps, once per seed, and scores each on every recording's test
split. The table (mean ± sd over seeds, differences paired per seed) is in ``OUT/table.md``. Skips, with a message, when the folder is absent.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from real_data import DATASETS, REAL, run

ORDER = ("dyer2017_chewie_20131003_co", "dyer2017_chewie_20131219_co", "stevenson2011_monkeyC_m1_co",
         "miller_co_m1_84units", "s1_area2_52units")  # the order the model's vocabularies follow
MONKEYS = sorted((d for d in DATASETS if Path(d.file).stem in ORDER), key=lambda d: ORDER.index(Path(d.file).stem))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=REAL, help="folder of the real NWB files")
    parser.add_argument("--out", type=Path, default=None, help="working folder (default: a temp one)")
    parser.add_argument("--max-steps", type=int, help="training steps of every model (default: the run file's)")
    parser.add_argument("--config", default="cpu-small", help="run file of every model")
    parser.add_argument("--seeds", type=int, default=3, help="seeds of every fit (default 3)")
    args = parser.parse_args()
    if not args.real.is_dir():
        print(f"skipped: no real-data folder at {args.real} (pass --real DIR)")
        return
    out = args.out or Path(tempfile.mkdtemp(prefix="neuropoyo-multi-session-"))
    commands: list[str] = []
    folders = []
    for dataset in MONKEYS:
        folder = out / "data" / Path(dataset.file).stem
        if not folder.is_dir():
            run(["prepare", "nwb", str(args.real / dataset.file), "--out", str(folder), "--task", dataset.task,
                 *dataset.prepare], commands)
        folders.append(str(folder))
    steps = ["--max-steps", str(args.max_steps)] if args.max_steps else []
    run(["experiment", "scaling", "--data", *folders, "--out", str(out / "experiment"), "--config", args.config,
         "--depths", str(_depth(args.config)), "--recordings", str(len(folders)), "--seeds", str(args.seeds), *steps], commands)
    print("\n" + (out / "experiment" / "table.md").read_text())
    print("commands:\n  " + "\n  ".join(commands))


def _depth(config: str) -> int:
    from neuropoyo.training.config import RunConfig

    return RunConfig.from_yaml(config).model.depth


if __name__ == "__main__":
    main()
