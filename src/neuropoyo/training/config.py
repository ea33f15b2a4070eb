"""Run configuration: the model and every settings section, read from one YAML file.

A run file has up to five sections::

    model: paper-single-session       # a model preset (next to this file or shipped) or a mapping
    loss: {interval_weights: {reach: 5.0}, output_samples: 100}
    augment: {unit_dropout_min: 30}
    evaluation: {intervals: {center_out: [reach]}, step_s: 0.5}
    training: {batch_size: 128, lr: 4.0e-3, epochs: 100}

The presets ship inside the package: model presets in ``configs/models`` (:data:`MODEL_PRESETS`),
run files in ``configs/runs`` (:data:`RUN_PRESETS`); ``--config cpu-small`` finds one by name (run
files first). A run file or model preset may start from another with ``extends: NAME`` (looked up
next to the file, then among the shipped presets of its kind) and change what differs: a model
preset key by key, a run file section by section, then key by key inside a section (``model:
{extends: paper-mp-L6, depth: 8}`` works too). A flat model preset is also a valid run file: the
other sections then take their defaults, and a :class:`PresetNotice` names the training settings
taken. Unknown keys are errors. Preset names and keys of earlier releases still read, with a
RenamedWarning; a ``data`` section in the 0.1.0 layout is still read (each key goes to its new
section).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from neuropoyo.data.dataset import SourceOptions
from neuropoyo.errors import ConfigError, RenamedWarning, warn_renamed
from neuropoyo.evaluation.selection import EvaluationConfig
from neuropoyo.model.config import POYOConfig
from neuropoyo.pipeline.config import AugmentConfig, LossConfig
from neuropoyo.settings import current_keys, from_mapping, read_yaml, sections_from_legacy_data

PRESET_DIR = Path(__file__).resolve().parents[1] / "configs"
MODEL_PRESETS = PRESET_DIR / "models"
RUN_PRESETS = PRESET_DIR / "runs"
KINDS = {"models": MODEL_PRESETS, "runs": RUN_PRESETS}
# Preset names of earlier releases -> (kind, the mapping they read as now). cpu_small_multi_run keeps
# its own lr: the multi-recording rate is now chosen by the recipe (neuropoyo.training.recipe), and
# the alias gives what the old file gave.
OLD_PRESETS = {
    "cpu_small": ("models", {"extends": "cpu-small"}),
    "poyo_single_session": ("models", {"extends": "paper-single-session"}),
    "poyo_mp_L6": ("models", {"extends": "paper-mp-L6"}),
    "poyo_mp_L14": ("models", {"extends": "paper-mp-L14"}),
    "poyo_mp_L26": ("models", {"extends": "paper-mp-L26"}),
    "cpu_small_run": ("runs", {"extends": "cpu-small"}),
    "cpu_small_multi_run": ("runs", {"extends": "cpu-small", "training": {"lr": 4.0e-3}}),
    "poyo_single_session_gpu": ("runs", {"extends": "paper-single-session", "training": {"num_workers": 8}}),
    "demo": ("models", {"extends": "cpu-small"}),
    "demo_run": ("runs", {"extends": "cpu-small"}),
}
RETIRED_PRESETS = ("demo", "demo_run")  # the small model the CPU recipe replaced; no file of their own
SECTIONS = ("model", "loss", "augment", "evaluation", "training")
SETTINGS = {"loss": LossConfig, "augment": AugmentConfig, "evaluation": EvaluationConfig}
ON_COLLAPSE = ("warn", "restart")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; defaults are the single-session values of Table 4.

    batch_size: windows per optimisation step (over all ranks under torchrun).
    lr: peak learning rate of LAMB (runs/cpu-small: 1e-2, lowered to 4e-3 from 2 recordings when
        no run file is given).
    weight_decay: LAMB's weight decay.
    epochs: passes over the training windows; ignored when ``max_steps`` is set.
    grad_clip: gradients are clipped to this global norm.
    seed: seeds the weights, the window sampling and augmentation (``--seed`` overrides it).
    checkpoint_every: steps between checkpoints (``checkpoint/``) that ``--resume`` continues from.
    log_every: steps between lines of ``metrics.csv`` and the progress display.
    num_workers: DataLoader worker processes that cut windows (0: in the training process).
    select_on: the readouts whose validation scores choose the best model (their mean; empty: every
        readout). E.g. ``[direction]`` when a run also decodes noisy streams whose R2 would decide.
    """

    batch_size: int = 128
    lr: float = 4e-3
    weight_decay: float = 1e-4
    epochs: int = 100
    max_steps: int | None = None  # overrides epochs when set
    decay_fraction: float = 0.25  # cosine decay over the last 25 % of steps (A.4)
    grad_clip: float = 1.0
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 10
    num_workers: int = 0
    amp: bool = True  # bf16 autocast on CUDA devices that support it; ignored on CPU
    max_nonfinite_steps: int = 5  # NaN/inf loss or gradients: steps skipped in a row before stopping
    validate_every: int = 500  # steps between validation scores (and the last step); 0: never
    on_collapse: str = "warn"  # predictions collapsed on validation: "warn", or "restart" from the best
    select_on: tuple[str, ...] = ()

    def __post_init__(self):
        at_least = {"batch_size": 1, "epochs": 1, "checkpoint_every": 1, "log_every": 1, "num_workers": 0,
                    "max_nonfinite_steps": 1, "validate_every": 0}
        for name, low in at_least.items():
            if getattr(self, name) < low:
                raise ConfigError(f"training.{name} must be >= {low}, got {getattr(self, name)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"training.max_steps must be >= 1 or null, got {self.max_steps}")
        if not self.lr > 0 or self.weight_decay < 0 or not self.grad_clip > 0:
            raise ConfigError(
                f"training: need lr > 0, weight_decay >= 0 and grad_clip > 0; got lr={self.lr}, "
                f"weight_decay={self.weight_decay}, grad_clip={self.grad_clip}"
            )
        if not 0 <= self.decay_fraction <= 1:
            raise ConfigError(f"training.decay_fraction must be in [0, 1], got {self.decay_fraction}")
        if self.on_collapse not in ON_COLLAPSE:
            raise ConfigError(f"training.on_collapse must be one of {', '.join(ON_COLLAPSE)}; got {self.on_collapse!r}")
        names = [self.select_on] if isinstance(self.select_on, str) else self.select_on
        if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(f"training.select_on must be a list of readout names, got {self.select_on!r}")
        object.__setattr__(self, "select_on", tuple(names))

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "select_on": list(self.select_on)}  # as run.json stores it

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "training config") -> "TrainConfig":
        return from_mapping(cls, data, source=source, section="training")


@dataclass(frozen=True)
class RunConfig:
    model: POYOConfig
    loss: LossConfig = field(default_factory=LossConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    training: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        context = self.model.context_length_s
        if self.evaluation.step_s > context:
            raise ConfigError(
                f"evaluation.step_s = {self.evaluation.step_s} s is longer than the model's window "
                f"(context_length_s = {context} s): samples between windows would never be scored"
            )

    def with_training(self, **changes: Any) -> "RunConfig":
        """This run file with the given ``training`` fields replaced (e.g. ``max_steps=3000``)."""
        return dataclasses.replace(self, training=dataclasses.replace(self.training, **changes))

    def settings(self) -> dict[str, dict]:
        """The sections a model directory keeps (loss, augment, evaluation) as JSON-ready dicts."""
        return {name: getattr(self, name).to_dict() for name in SETTINGS}

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model.to_dict(), **self.settings(), "training": self.training.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping, *, source: str = "run config", base: Path | None = None) -> "RunConfig":
        """The run config of a run file's mapping; preset names in it are read from ``base`` (the
        file's folder; None: the shipped presets only). A flat model preset takes the default
        training settings, with a :class:`PresetNotice` naming them."""
        return _run_config(source, data, base, "runs", None)

    @classmethod
    def from_yaml(cls, path: str | Path) -> "RunConfig":
        """Read a run file; a name that is no file is looked up among the shipped run files, then
        the shipped model presets (with or without ``.yaml``; old names with a RenamedWarning)."""
        source, data, base, kind = _find(str(path), ("runs", "models"), None, None, FileNotFoundError)
        return _run_config(source, data, base, kind, Path(source) if Path(source).is_file() else None)


def _run_config(source: str, data: Any, base: Path | None, kind: str, file: Path | None) -> RunConfig:
    data, kind = _resolved(source, data, base, kind, (), file)
    if kind == "models":
        model, default = POYOConfig.from_dict(data, source=source), TrainConfig()
        warnings.warn(
            f"{source} is a model preset, so training takes the default settings (paper Table 4): "
            f"batch_size {default.batch_size}, lr {default.lr:g}, {default.epochs} epochs; to choose "
            "others use a run file with a training section, e.g. runs/paper-single-session, or one "
            "with 'extends: cpu-small'",
            PresetNotice, stacklevel=3,
        )
        return RunConfig(model=model)
    unknown = sorted(set(data) - set(SECTIONS) - {"data"})
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {unknown}; a run file has {list(SECTIONS)}")
    sections = dict(data)
    if "data" in sections:
        for name, values in sections_from_legacy_data(sections.pop("data"), source=source).items():
            sections[name] = {**values, **(sections.get(name) or {})}
    if not isinstance(sections.get("model"), Mapping):
        raise ConfigError(f"{source}: 'model' must be a model preset name or a mapping")
    model = POYOConfig.from_dict(dict(sections["model"]), source=f"{source}: model")
    settings = {name: config.from_dict(sections.get(name), source=source) for name, config in SETTINGS.items()}
    training = TrainConfig.from_dict(sections.get("training"), source=source)
    try:
        return RunConfig(model=model, **settings, training=training)
    except ConfigError as error:  # a rule across sections
        raise ConfigError(f"{source}: {error}") from None


class PresetNotice(UserWarning):
    """A model preset was given where a run file was expected: the training settings are the defaults."""


def presets() -> list[str]:
    """The names of the shipped presets, as ``runs/NAME`` and ``models/NAME``."""
    return sorted(f"{kind}/{p.stem}" for kind, folder in KINDS.items() for p in folder.glob("*.yaml"))


def read_run_info(path: Path) -> dict:
    """A training run's record (``run.json``) with its config and dataset in this release's keys:
    a run written before a key was renamed or a setting added compares equal to the same run now."""
    info = json.loads(Path(path).read_text())
    with warnings.catch_warnings():  # neuropoyo wrote the file: nothing for a user to change
        warnings.simplefilter("ignore", RenamedWarning)
        if isinstance(info.get("config"), Mapping):
            info["config"] = RunConfig.from_dict(info["config"], source=str(path)).to_dict()
    if isinstance(info.get("dataset"), Mapping) and isinstance(info["dataset"].get("sources"), list):
        info["dataset"]["sources"] = [
            current_keys(SourceOptions, entry, source=str(path), section="sources", warn=False)
            for entry in info["dataset"]["sources"]
        ]
    return json.loads(json.dumps(info))


def _is_run_file(data: Mapping) -> bool:
    return any(key in data for key in (*SECTIONS, "data"))


def _refuse_misspelled_sections(source: str, data: Mapping) -> None:
    """A key that is no model setting but nearly a section name (``trainig:``) is a misspelled
    section of a run file, not an unknown model key: say so."""
    fields = {f.name for f in dataclasses.fields(POYOConfig)}
    for key in sorted(set(map(str, data)) - fields - {"extends"}):
        close = difflib.get_close_matches(key, SECTIONS, n=1)
        if close:
            raise ConfigError(
                f"{source}: unknown section {key!r} (did you mean {close[0]!r}?); a run file has {list(SECTIONS)}"
            )


def _resolved(
    source: str, data: Any, base: Path | None, kind: str, chain: tuple[str, ...], file: Path | None
) -> tuple[dict, str]:
    """(the mapping of preset ``data`` with its ``extends`` chain merged in and, in a run file, its
    model as a mapping; its kind, ``runs`` or ``models``). ``kind`` is the kind it was looked up
    as, which a mapping of only ``extends`` keeps; ``chain``: the presets extending it, for cycles;
    ``file``: the file holding it, never its own parent or model."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: expected a mapping (a run file or model preset), got {type(data).__name__}")
    data = dict(data)
    if _is_run_file(data):
        kind = "runs"
    elif set(data) - {"extends"}:
        kind = "models"
        _refuse_misspelled_sections(source, data)
    chain = (*chain, source)
    if kind == "runs" and "model" in data:
        model = data["model"]
        if isinstance(model, str):
            model = {"extends": model}
        if not isinstance(model, Mapping):
            raise ConfigError(f"{source}: 'model' must be a model preset name or a mapping, got {model!r}")
        data["model"] = _resolved(f"{source}: model", model, base, "models", chain[:-1], file)[0]
    parent = data.pop("extends", None)
    if parent is None:
        return data, kind
    if not isinstance(parent, str):
        raise ConfigError(f"{source}: extends must name a preset, got {parent!r}")
    found, found_data, found_base, _ = _find(parent, (kind,), base, file, ConfigError)
    if found in chain:
        raise ConfigError(f"{source}: extends {parent!r}, a cycle: {' -> '.join((*chain, found))}")
    found_file = Path(found) if Path(found).is_file() else None
    inherited, _ = _resolved(found, found_data, found_base, kind, chain, found_file)
    if kind == "models":
        return {**inherited, **data}, kind
    merged = dict(inherited)
    for section, values in data.items():
        both = isinstance(values, Mapping) and isinstance(inherited.get(section), Mapping)
        merged[section] = {**inherited[section], **values} if both else values
    return merged, kind


def _find(
    name: str, kinds: tuple[str, ...], base: Path | None, within: Path | None, missing: type[Exception]
) -> tuple[str, Any, Path, str]:
    """(source, content, folder its names are read from, kind) of preset ``name``: a file (next to
    ``base`` unless that is a shipped folder, skipping ``within``, the file naming it), then the
    shipped presets of ``kinds``, then an old preset name; else ``missing`` listing the presets."""
    path = Path(name).expanduser()
    if base is None and path.is_file():
        return str(path), read_yaml(path) or {}, path.parent, kinds[0]
    names = [name] if name.endswith((".yaml", ".yml")) else [name, f"{name}.yaml"]
    folders = [(base, kinds[0])] if base is not None and base.resolve() not in KINDS.values() else []
    folders += [(KINDS[kind], kind) for kind in kinds] + [(PRESET_DIR, None)]
    for folder, kind in folders:
        for candidate in names:
            path = folder / candidate
            if path.is_file() and (within is None or path.resolve() != within.resolve()):
                kind = kind or next((k for k, f in KINDS.items() if path.resolve().parent == f), kinds[0])
                return str(path), read_yaml(path) or {}, path.parent, kind
    old = name.removesuffix(".yaml")
    if old in OLD_PRESETS and OLD_PRESETS[old][0] in kinds:
        kind, data = OLD_PRESETS[old]
        new = f"{kind}/{data['extends']}"
        changed = "".join(f" with {s}.{k} {v}" for s, keys in data.items() if s != "extends" for k, v in keys.items())
        if old in RETIRED_PRESETS:
            warnings.warn(
                f"preset {old}.yaml is retired: it was the small model the CPU recipe replaced, and "
                f"`neuropoyo demo` has run cpu-small since; it now reads as {new}", RenamedWarning, stacklevel=3,
            )
        else:
            warn_renamed(f"preset {old}.yaml", f"{new}{changed}", stacklevel=4)
        return f"{old}.yaml (now {new})", data, KINDS[kind], kind
    shipped = [p for p in presets() if p.split("/")[0] in kinds]
    raise missing(f"{within or '--config'}: no config file {name!r}, and no shipped preset of that name; presets: {', '.join(shipped)}")
