"""The public Python API: one function per job, and :class:`Decoder`, the estimator for notebooks.

Every ``neuropoyo`` command is one call of a function here (the command line parses and prints).
Wherever a function takes recordings (``data``), it accepts :class:`~neuropoyo.data.Recording`
objects in memory, recording files, folders of them, quoted globs and dataset files (.yaml), alone
or in a list. Recordings in memory are written where the call keeps its files (a run's
``RUN/data/``) or to a temporary folder the call removes; a recording without splits gets
train/valid/test by :func:`~neuropoyo.data.splits.assign_splits` (seed 0) on the way.
"""

from __future__ import annotations

import copy
import dataclasses
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

import numpy as np
from tqdm.auto import tqdm

from neuropoyo import __version__, distributed
from neuropoyo.baselines.run import run_baselines
from neuropoyo.data.dataset import RUN_INFO, Dataset, load_dataset, run_dataset
from neuropoyo.data.directory import few_shot_spans, stream_classes, stream_dims, write_dataset
from neuropoyo.data.recording import Recording
from neuropoyo.data.simulate import FRAME_RATE_HZ, MODALITIES, TASKS, simulate_calcium, simulate_dataset
from neuropoyo.data.splits import WHOLE_RECORDING, assign_splits
from neuropoyo.data.store import RecordingFile, read_recording
from neuropoyo.errors import ConfigError, MissingKeyError
from neuropoyo.evaluation import evaluate as evaluation
from neuropoyo.evaluation.compare import (
    accuracy_table,
    comparison,
    error_table,
    find_metrics,
    format_accuracy_markdown,
    format_errors_markdown,
    format_markdown,
    plot_comparison,
)
from neuropoyo.evaluation.report import format_table
from neuropoyo.evaluation.selection import WHOLE_SPLIT, EvaluationConfig
from neuropoyo.io import write_text_atomic
from neuropoyo.trained import TrainedModel, load_model, model_selection, save_model
from neuropoyo.training import finetune as finetuning
from neuropoyo.training import loop
from neuropoyo.training.config import RunConfig, read_run_info
from neuropoyo.training.recipe import resolve_config

Data = Union[Recording, str, Path, Dataset, Sequence[Union[Recording, str, Path]]]
Log = Callable[[str], None]
Predictions = dict[str, tuple[np.ndarray, np.ndarray]]
BASELINE_STREAM = "hand_vel"  # the baselines' stream when the recordings hold it
DATA_FOLDER = "data"  # RUN/data: the recordings a run was given in memory
DEMO_QUICK_STEPS = 350
DEMO_BASELINES = ("wiener", "mlp")  # the GRU would add minutes on 2 CPU cores: `neuropoyo baselines`


def _quiet(message: str) -> None:
    """The default ``log`` of library calls: say nothing."""


def simulate(
    *, animals: int = 2, days: int = 2, tasks: Sequence[str] = TASKS, trials: int = 100,
    duration_s: float = 300.0, seed: int = 0, modality: str = "spikes", frame_rate_hz: float = FRAME_RATE_HZ,
) -> list[Recording]:
    """Simulated reaching recordings of ``animals`` x ``days`` x ``tasks``, with train/valid/test
    splits (seeded by ``seed``): same arguments, same recordings. trials: per center-out recording;
    duration_s: of each random-target recording. modality: ``"spikes"``, or ``"calcium"``: the same
    neurons imaged at ``frame_rate_hz`` (dF/F traces, :func:`~neuropoyo.data.simulate.simulate_calcium`).
    See :mod:`neuropoyo.data.simulate`."""
    if modality not in MODALITIES:
        raise ConfigError(f"simulate: modality must be one of {', '.join(MODALITIES)}; got {modality!r}")
    recordings = simulate_dataset(
        n_animals=animals, sessions_per_animal=days, tasks=tuple(tasks), n_trials=trials,
        duration_s=duration_s, seed=seed,
    )
    if modality == "calcium":
        recordings = [simulate_calcium(r, frame_rate_hz=frame_rate_hz, seed=seed) for r in recordings]
    return [assign_splits(r, seed=seed) for r in recordings]


def write_recordings(
    recordings: Sequence[Recording], folder: str | Path, *, split_seed: int = 0, progress: bool = False
) -> list[Path]:
    """Write each recording to ``folder/<recording_id>.h5`` atomically (splits assigned with
    ``split_seed`` where a recording has none); returns the files. progress: a progress bar."""
    ids = [r.recording_id for r in recordings]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ConfigError(f"recordings: recording_id {repeated[0]!r} is given twice; every recording needs its own id")
    bar = tqdm(recordings, desc="writing recordings", unit="rec", disable=None if progress else True)
    return write_dataset(bar, folder, split_seed=split_seed)


def read_recordings(data: Data) -> list[Recording]:
    """The recordings of files, folders, globs or dataset files, read whole into memory."""
    return [read_recording(path) for path in load_dataset(_as_list(data)).paths]


def _as_list(data: Data) -> list:
    if isinstance(data, (Recording, str, Path)):
        return [data]
    return list(data)


def _on_disk(data: Data | None, folder: Path) -> Dataset | list | None:
    """``data`` as the file-based layer takes it: Recording objects written to ``folder``."""
    if data is None or isinstance(data, Dataset):
        return data
    items = _as_list(data)
    in_memory = [item for item in items if isinstance(item, Recording)]
    if not in_memory:
        return items
    written = iter(write_recordings(in_memory, folder))
    return [next(written) if isinstance(item, Recording) else item for item in items]


def _paths(data: Dataset | list) -> list[Path]:
    return list(load_dataset(data).paths)


def _streams(
    paths: Sequence[Path], wanted: Sequence[str], readouts: Sequence[str] | None, log: Log, *, training: bool = True
) -> dict[str, int]:
    """The behavior streams to decode, name -> width read from the data: ``readouts`` when given;
    else ``wanted`` when some recording holds one of them; else the one stream every recording
    holds (said through ``log``). training: the error names the run's config key (else the
    baselines' argument)."""
    if readouts:
        return stream_dims(paths, list(readouts))
    held, dims = [], {}
    for path in paths:
        with RecordingFile(path) as f:
            held.append(set(f.behavior_dims))
            dims = f.behavior_dims | dims  # the first file holding a stream gives its width
    present = [name for name in wanted if name in dims]
    if present:
        return {name: dims[name] for name in present}
    common = sorted(set.intersection(*held)) if held else []
    if len(common) != 1:
        raise MissingKeyError(_no_readout(wanted, common or sorted(dims), dims, training))
    log(f"readout: {common[0]}, the one behavior stream the recordings hold (--readout chooses)")
    return {common[0]: dims[common[0]]}


def _no_readout(wanted: Sequence[str], choices: Sequence[str], dims: Mapping[str, int], training: bool) -> str:
    """The error of recordings holding none of the ``wanted`` streams: which they hold, and the
    flag, config key (training) and argument that choose one (``choices[0]`` as the example)."""
    if not choices:
        return (
            f"the recordings hold no behavior stream (looked for {', '.join(wanted)}); import one, "
            "e.g. neuropoyo prepare nwb FILE --out DIR --behavior NAME"
        )
    name = choices[0]
    where = (
        f"config key model.readouts: {{{name}: {dims[name]}}}; Python: readouts=[{name!r}]"
        if training
        else f"Python: readout={name!r}"
    )
    return (
        f"the recordings hold no behavior stream named {', '.join(wanted)}; they hold "
        f"{', '.join(sorted(dims))}: choose the stream to decode with --readout {name} ({where})"
    )


def _with_readouts(config: RunConfig, paths: Sequence[Path], readouts: Sequence[str] | None, log: Log) -> RunConfig:
    """``config`` decoding :func:`_streams` (unchanged when its own readouts are in the data)."""
    chosen = _streams(paths, list(config.model.readouts), readouts, log)
    classes = stream_classes(paths, list(chosen))
    if readouts is None and set(chosen) <= set(config.model.readouts) and classes == config.model.classes:
        return config
    return dataclasses.replace(config, model=dataclasses.replace(config.model, readouts=chosen, classes=classes))


def run_config(
    data: Data | None = None, *, config: str | Path | RunConfig | None = None, readouts: Sequence[str] | None = None,
    max_steps: int | None = None, epochs: int | None = None, seed: int | None = None, log: Log = _quiet,
    run_dir: str | Path | None = None,
) -> RunConfig:
    """The run config :func:`train` uses: ``config`` (default: the CPU recipe for the number of
    recordings, :mod:`neuropoyo.training.recipe`), decoding ``readouts``, with the given training
    length and seed. run_dir: a run to resume: its recordings when data is None, its own config
    when config is None."""
    with tempfile.TemporaryDirectory(prefix="neuropoyo-") as scratch:
        paths = _paths(_on_disk(data, Path(scratch))) if data is not None else run_dataset(run_dir).paths
        if config is None and run_dir is not None:
            info = Path(run_dir) / RUN_INFO  # read in this release's keys, however old the run
            resolved = RunConfig.from_dict(read_run_info(info)["config"], source=str(info))
        else:
            resolved, note = resolve_config(config, len(paths))
            if note:
                log(note)
        resolved = _with_readouts(resolved, paths, readouts, log)
    overrides = {k: v for k, v in (("max_steps", max_steps), ("epochs", epochs), ("seed", seed)) if v is not None}
    if epochs is not None and max_steps is None:
        overrides["max_steps"] = None
    return resolved.with_training(**overrides)


def train(
    data: Data | None, out: str | Path, *, config: str | Path | RunConfig | None = None,
    readouts: Sequence[str] | None = None, max_steps: int | None = None, epochs: int | None = None,
    seed: int | None = None, resume: bool = False, device: str = "cpu", progress: bool = True, log: Log = _quiet,
) -> loop.TrainResult:
    """Train POYO on the training splits of ``data`` into the run directory ``out``.

    config: a run file or preset name, a RunConfig, or None for the CPU recipe (its choice is said
    through ``log``). readouts: behavior streams to decode (default: the config's, or the one
    stream the recordings hold). resume: continue ``out`` from its checkpoint (data None: the
    run's recordings; config None: the run's config). Returns the TrainResult; ``out/best`` is the
    best model on validation, ``out/model`` the last (layout in :func:`neuropoyo.training.loop.train`).
    """
    if data is None and not resume:
        raise ConfigError("train: name the recordings with --data (Python: data=...); only a resume may leave them out")
    out = Path(out)
    on_disk = _on_disk(data, out / DATA_FOLDER)
    resolved = run_config(
        on_disk, config=config, readouts=readouts, max_steps=max_steps, epochs=epochs, seed=seed,
        log=log if distributed.from_environment().is_main else _quiet, run_dir=out if resume else None,
    )
    return loop.train(resolved, on_disk, out, resume=resume, device=device, progress=progress)


def evaluate(
    model: str | Path | TrainedModel, data: Data | None = None, out: str | Path | None = None, *,
    split: str = "test", eval_intervals: Sequence[str] | None = None, num_workers: int = 0,
    device: str = "cpu", progress: bool = True,
) -> dict:
    """Score ``model`` (a run directory: its best model on validation, else its last; a model
    directory; or a TrainedModel) on ``split`` of ``data`` (default: the run's recordings).

    out: folder for metrics.json, predictions and figures (None: write nothing). eval_intervals:
    interval names scored for every task (``["all"]``: the whole split). Returns the summary
    (layout in :mod:`neuropoyo.evaluation.report`): ``summary["mean_r2"]``, per recording and task.
    """
    with tempfile.TemporaryDirectory(prefix="neuropoyo-") as scratch:
        return evaluation.evaluate(
            model, _on_disk(data, Path(scratch)), out, split=split, eval_intervals=eval_intervals,
            num_workers=num_workers, device=device, progress=progress,
        )


def predict(
    model: str | Path | TrainedModel, recording: Recording | str | Path, *, device: str = "cpu",
    batch_size: int = 32, progress: bool = False,
) -> Predictions:
    """Stitched predictions over the whole recording: {stream: (timestamps (N,), values (N, D))}
    at the recording's own behavior timestamps inside its domain, in the stream's units; for a
    label stream (a classification task) values are (N, K) logits of its classes (argmax: the
    most likely class of each sample).

    The recording's session and units must be known to the model (trained on it, or adapted to it
    with :func:`finetune` / :meth:`Decoder.adapt`)."""
    trained = model if isinstance(model, TrainedModel) else load_model(model, device=device)
    with tempfile.TemporaryDirectory(prefix="neuropoyo-") as scratch:
        recordings = evaluation.recordings_for(trained, _on_disk(recording, Path(scratch)))
        every = evaluation.evaluation_config(trained).with_intervals([WHOLE_SPLIT])
        scored = dataclasses.replace(every, successful_only=False)  # every sample, not only scored ones
        results = evaluation.predict(
            trained, recordings, split=WHOLE_RECORDING, evaluation=scored, batch_size=batch_size,
            device=device, progress=progress,
        )
    return {r.stream: (r.timestamps, r.predicted) for r in results}


def finetune(
    model: str | Path | TrainedModel, data: Data, out: str | Path, *, mode: str | None = None,
    trials: int | None = None, minutes: float | None = None, max_steps: int | None = None,
    readouts: Sequence[str] | None = None, device: str = "cpu", progress: bool = True, **options: Any,
) -> loop.TrainResult:
    """Adapt ``model`` to new recordings ``data`` into the run directory ``out``.

    mode: ``"unit-id"`` (default: learn only the new unit and session embeddings) or ``"full"``
    (then every weight from ``unfreeze_at``). trials / minutes: use only the first N training trials
    (or M minutes) of each recording. options: other :class:`~neuropoyo.training.finetune.FinetuneConfig`
    fields (``embedding_lr``, ``lr``, ``unfreeze_at``, ``batch_size``, ``seed``, ``num_workers``).
    """
    given = {"mode": mode, "trials": trials, "minutes": minutes, "max_steps": max_steps, **options}
    config = finetuning.FinetuneConfig.from_dict(
        {k: v for k, v in given.items() if v is not None}, source="finetune"
    )
    out = Path(out)
    return finetuning.finetune(
        model, _on_disk(data, out / DATA_FOLDER), out, config, readouts=readouts, device=device, progress=progress
    )


def baselines(
    data: Data, out: str | Path | None = None, *, methods: Sequence[str] | None = None,
    readout: str | None = None, bin_s: float | None = None, n_lags: int | None = None, seed: int = 0,
    eval_intervals: Sequence[str] | None = None, trials: int | None = None,
) -> dict[str, dict]:
    """The classic decoders fitted per recording on binned spike counts and scored like
    :func:`evaluate`: method -> summary. methods: of ``wiener``, ``mlp``, ``gru`` (the default) and
    ``bayes`` (the place-field decoder of a 1-D or 2-D position); for a label stream (a
    classification task) of ``logistic`` and ``mlp`` (the default). out: one report folder per method
    (None: a temporary folder). readout: the stream to decode (default: hand_vel, else the one
    stream the recordings hold). bin_s, n_lags: the bins of every method (None: each method's
    own, :mod:`neuropoyo.baselines.run`). trials: fit on the first N training trials only."""
    evaluation_settings = EvaluationConfig()
    if eval_intervals:
        evaluation_settings = evaluation_settings.with_intervals(eval_intervals)
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="neuropoyo-")))
        paths = _paths(_on_disk(data, scratch / DATA_FOLDER))
        stream = readout or next(iter(_streams(paths, [BASELINE_STREAM], None, _quiet, training=False)))
        return run_baselines(
            paths, Path(out) if out is not None else scratch / "reports", methods=methods, stream=stream,
            evaluation=evaluation_settings, seed=seed, train_spans=few_shot_spans(paths, trials=trials),
            bin_s=bin_s, n_lags=n_lags,
        )


def compare(runs: Sequence[str | Path] | Mapping[str, dict], out: str | Path | None = None, *, group_by: str = "task") -> str:
    """The method x group table of test R2 (mean +- std over recordings) as Markdown, then the
    table of median errors per (recording, stream) where the reports have them, then the
    accuracy of each label stream (classification task) where there are some, from evaluation
    folders / metrics.json files or {method: summary}; with ``out``, also written there as
    comparison.md and comparison.png."""
    metrics = dict(runs) if isinstance(runs, Mapping) else find_metrics(runs)
    table = comparison(metrics, group_by=group_by)
    has_r2 = any(table.values())
    parts = [format_markdown(table)] if has_r2 else []
    parts += [format_errors_markdown(error_table(metrics)), format_accuracy_markdown(accuracy_table(metrics))]
    text = "\n\n".join(part for part in parts if part)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "comparison.md", text + "\n")
        if has_r2:
            plot_comparison(table, out / "comparison.png")
    return text


def describe_training(result: loop.TrainResult) -> str:
    """What a training or finetuning call did, in a line or two: steps, loss, where the models are."""
    minutes, seconds = divmod(result.seconds, 60)
    if result.steps_taken == 0:
        lines = [f"nothing left to train: the run has its {result.steps} steps; last model in {result.run_dir / 'model'}"]
    else:
        resumed = f" (the run has {result.steps})" if result.steps_taken != result.steps else ""
        lines = [
            f"trained {result.steps_taken} steps{resumed} in {int(minutes)} min {seconds:.0f} s, final loss "
            f"{result.final_loss:.4f}; last model in {result.run_dir / 'model'}"
        ]
    selection = model_selection(result.run_dir)
    if selection is not None:
        lines.append(
            f"best on validation: {result.run_dir / 'best'} (valid R2 {selection['valid_r2']:.4f} at step "
            f"{selection['step']}); `evaluate --model {result.run_dir}` uses it"
        )
    return "\n".join(lines)


@dataclass
class DemoResult:
    """What :func:`demo` made: its folder, the training result, POYO's test summary, the baselines'
    summaries and the comparison table (Markdown)."""

    out: Path
    training: loop.TrainResult
    summary: dict
    baselines: dict[str, dict]
    table: str


def demo(out: str | Path | None = None, *, quick: bool = False, log: Log = print) -> DemoResult:
    """Simulate two animals (one recording per task each), train the CPU recipe's POYO on them,
    score it on the test splits and compare it with the Wiener filter and the MLP; ``log`` says
    each stage. quick: short recordings and 350 steps (a smoke run). out: default a new temp folder."""
    from neuropoyo.data.summary import format_summary, summarize

    out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="neuropoyo-demo-"))
    data_dir = out / DATA_FOLDER
    log(f"neuropoyo {__version__} demo: simulating recordings into {data_dir}")
    trials, duration_s = (40, 120.0) if quick else (120, 300.0)
    recordings = simulate(animals=2, days=1, tasks=TASKS, trials=trials, duration_s=duration_s, seed=0)
    write_recordings(recordings, data_dir)
    for recording in recordings:
        log(format_summary(summarize(recording)) + "\n")
    config = run_config([data_dir], log=log, max_steps=DEMO_QUICK_STEPS if quick else None)
    log(f"training a small POYO for {config.training.max_steps} steps")
    result = loop.train(config, [data_dir], out / "run")
    log(describe_training(result))
    summary = evaluation.evaluate(result.run_dir, [data_dir], out / "eval")
    log(format_table(summary))
    log(f"\nclassic decoders on the same splits and samples: {', '.join(DEMO_BASELINES)}")
    scores = run_baselines([data_dir], out / "baselines", methods=DEMO_BASELINES, evaluation=config.evaluation)
    log("\ntest R2 by task (mean +- std over recordings):")
    table = compare({"POYO": summary, **scores}, out / "comparison")
    log(table)
    log(f"wrote {out / 'comparison' / 'comparison.md'} and {out / 'comparison' / 'comparison.png'}")
    if quick:
        log(
            f"\nsmoke run (quick): short sessions and {DEMO_QUICK_STEPS} training steps, so these "
            "scores say little about the decoders; `neuropoyo demo` gives the comparison that counts"
        )
    log(f"\nrun directory {out / 'run'}; evaluation report in {out / 'eval'}; baseline reports in {out / 'baselines'}")
    return DemoResult(out=out, training=result, summary=summary, baselines=scores, table=table)


class Decoder:
    """POYO as a scikit-learn-shaped estimator over recordings in memory or on disk::

        dec = neuropoyo.Decoder()                     # the CPU recipe; or Decoder("paper-single-session")
        dec.fit(recordings, out="run")                # Recording objects, files, folders or dataset files
        pred = dec.predict(recording)                 # {stream: (timestamps, values)}
        table = dec.score(recordings, split="test")   # the numbers `neuropoyo evaluate` writes
        new = dec.adapt(other, trials=20)             # unit identification (mode="full": finetuning)
        dec.save("model"); neuropoyo.Decoder.load("model")

    config: a run file or preset name, a RunConfig, or None (the CPU recipe for the number of
    recordings). The other arguments are :func:`train`'s. After fit, ``trained_`` is the model
    (the best on validation when the run kept one) and ``run_dir_`` the run directory.
    """

    def __init__(
        self, config: str | Path | RunConfig | None = None, *, readouts: Sequence[str] | None = None,
        max_steps: int | None = None, seed: int | None = None, device: str = "cpu", progress: bool = True,
    ):
        self.config, self.readouts, self.max_steps, self.seed = config, readouts, max_steps, seed
        self.device, self.progress = device, progress
        self.trained_: TrainedModel | None = None
        self.run_dir_: Path | None = None

    def __repr__(self) -> str:
        state = f"fitted, run {self.run_dir_}" if self.trained_ is not None else "not fitted"
        return f"Decoder(config={self.config!r}; {state})"

    def _fitted(self, what: str) -> TrainedModel:
        if self.trained_ is None:
            raise ConfigError(f"Decoder.{what}: the decoder has no model yet; call fit(...) or Decoder.load(path) first")
        return self.trained_

    def fit(self, data: Data, out: str | Path | None = None, *, log: Log = _quiet) -> "Decoder":
        """Train on the training splits of ``data`` into the run directory ``out`` (None: a new
        temporary folder); returns self."""
        out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="neuropoyo-run-"))
        result = train(
            data, out, config=self.config, readouts=self.readouts, max_steps=self.max_steps, seed=self.seed,
            device=self.device, progress=self.progress, log=log,
        )
        self.run_dir_ = result.run_dir
        self.trained_ = load_model(result.run_dir, device=self.device)
        return self

    def predict(self, recording: Recording | str | Path) -> Predictions:
        """{stream: (timestamps (N,), values (N, D))} over the whole recording (see :func:`predict`)."""
        return predict(self._fitted("predict"), recording, device=self.device)

    def score(self, data: Data, *, split: str = "test", eval_intervals: Sequence[str] | None = None, out: str | Path | None = None) -> dict:
        """The summary :func:`evaluate` writes to metrics.json, for ``split`` of ``data``."""
        return evaluate(
            self._fitted("score"), data, out, split=split, eval_intervals=eval_intervals, device=self.device,
            progress=self.progress,
        )

    def adapt(
        self, data: Data, *, trials: int | None = None, minutes: float | None = None, mode: str = "unit-id",
        out: str | Path | None = None, **options: Any,
    ) -> "Decoder":
        """A new Decoder adapted to the new recordings ``data`` (this one is left as it is):
        unit identification, or full finetuning with ``mode="full"``; ``options`` as :func:`finetune`."""
        out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="neuropoyo-adapt-"))
        options.setdefault("progress", self.progress)
        result = finetune(
            copy.deepcopy(self._fitted("adapt")), data, out, mode=mode, trials=trials, minutes=minutes,
            device=self.device, **options,
        )
        adapted = Decoder(self.config, readouts=self.readouts, seed=self.seed, device=self.device, progress=self.progress)
        adapted.run_dir_, adapted.trained_ = result.run_dir, load_model(result.run_dir, device=self.device)
        return adapted

    def save(self, path: str | Path) -> Path:
        """Write the model as a model directory (safetensors, config, vocabularies, normalizer)."""
        return save_model(self._fitted("save"), path)

    @classmethod
    def load(cls, path: str | Path, *, device: str = "cpu") -> "Decoder":
        """A fitted Decoder from a model directory or a run directory (its best model, else its last)."""
        decoder = cls(device=device)
        decoder.trained_ = load_model(path, device=device)
        decoder.run_dir_ = Path(path)
        return decoder
