"""Run configuration: the model and every settings section, read from one YAML file.

A run file has up to five sections::

    model: poyo_single_session.yaml   # a preset (next to this file or shipped) or a mapping
    loss: {interval_weights: {reach: 5.0}, output_samples: 100}
    augment: {unit_dropout_min: 30}
    evaluation: {intervals: {center_out: [reach]}, step_s: 0.5}
    training: {batch_size: 128, lr: 4.0e-3, epochs: 100}

A flat model preset (``poyo_single_session.yaml``) is also a valid run file: the other sections then
take their defaults (paper Table 4 / Appendix A). Unknown keys are errors. The presets ship inside
the package (:data:`PRESET_DIR`); ``--config demo_run.yaml`` finds one by name. A ``data`` section
in the 0.1.0 layout is still read (each key goes to its new section).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from neuropoyo.errors import ConfigError
from neuropoyo.evaluation.selection import EvaluationConfig
from neuropoyo.model.config import POYOConfig
from neuropoyo.pipeline.config import AugmentConfig, LossConfig
from neuropoyo.settings import from_mapping, read_yaml, sections_from_legacy_data

PRESET_DIR = Path(__file__).resolve().parents[1] / "configs"
SECTIONS = ("model", "loss", "augment", "evaluation", "training")
SETTINGS = {"loss": LossConfig, "augment": AugmentConfig, "evaluation": EvaluationConfig}
ON_COLLAPSE = ("warn", "restart")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; defaults are the single-session values of Table 4."""

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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

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
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a mapping, got {type(data).__name__}")
        if not any(key in data for key in (*SECTIONS, "data")):
            return cls(model=POYOConfig.from_dict(dict(data), source=source))
        unknown = sorted(set(data) - set(SECTIONS) - {"data"})
        if unknown:
            raise ConfigError(f"{source}: unknown section(s) {unknown}; a run file has {list(SECTIONS)}")
        sections = dict(data)
        if "data" in sections:
            for name, values in sections_from_legacy_data(sections.pop("data"), source=source).items():
                sections[name] = {**values, **(sections.get(name) or {})}
        model = sections.get("model")
        if isinstance(model, str):
            model = POYOConfig.from_yaml(_preset_path(model, base, source))
        elif isinstance(model, Mapping):
            model = POYOConfig.from_dict(dict(model), source=f"{source}: model")
        else:
            raise ConfigError(f"{source}: 'model' must be a preset file name or a mapping")
        settings = {name: config.from_dict(sections.get(name), source=source) for name, config in SETTINGS.items()}
        training = TrainConfig.from_dict(sections.get("training"), source=source)
        try:
            return cls(model=model, **settings, training=training)
        except ConfigError as error:  # a rule across sections
            raise ConfigError(f"{source}: {error}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> "RunConfig":
        """Read a run file; a name that is no file is looked up among the shipped presets."""
        path = Path(path)
        if not path.is_file():
            path = _preset_path(str(path), None, "--config")
        return cls.from_dict(read_yaml(path) or {}, source=str(path), base=path.parent)


def presets() -> list[str]:
    """The names of the shipped presets (model presets and run files)."""
    return sorted(p.name for p in PRESET_DIR.glob("*.yaml"))


def _preset_path(name: str, base: Path | None, source: str) -> Path:
    candidates = [name, f"{name}.yaml"] if not name.endswith(".yaml") else [name]
    for folder in (base, PRESET_DIR):
        for candidate in candidates:
            if folder is not None and (folder / candidate).is_file():
                return folder / candidate
    raise FileNotFoundError(
        f"{source}: no config file {name!r}, and no shipped preset of that name; presets: "
        f"{', '.join(presets())}"
    )
