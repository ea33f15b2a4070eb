"""Run configuration: model + data + training settings, read from one YAML file.

A run file has up to three sections::

    model: poyo_single_session.yaml   # a preset path (relative to this file or to configs/) or a mapping
    data: {interval_weights: {reach: 5.0}}
    training: {batch_size: 128, lr: 4.0e-3, epochs: 100}

A flat model preset (``configs/poyo_single_session.yaml``) is also a valid run file: data and
training then take their defaults (paper Table 4 / Appendix A). Unknown keys are errors.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from neuropoyo.errors import ConfigError
from neuropoyo.data.dataset import DataConfig
from neuropoyo.model.config import POYOConfig

SECTIONS = ("model", "data", "training")
PRESET_DIR = Path(__file__).resolve().parents[3] / "configs"


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

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "training config") -> "TrainConfig":
        return _build(cls, data, source, "training")


def _checked(name: str, value: Any, hint: Any, source: str) -> Any:
    """``value`` if it fits a scalar field type (int for float accepted), else a ConfigError."""
    allowed = typing.get_args(hint) or (hint,)
    if value is None and type(None) in allowed:
        return value
    if float in allowed and type(value) is int:
        return float(value)
    if type(value) not in allowed:
        hint_text = " (YAML reads 1e-3 as text; write 1.0e-3)" if isinstance(value, str) else ""
        hint_name = hint.__name__ if isinstance(hint, type) else str(hint)
        raise ConfigError(f"{source}: {name} must be {hint_name}, got {value!r}{hint_text}")
    return value


def _build(cls, data: Mapping, source: str, section: str):
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise ConfigError(f"{source}: unknown {section} option(s) {unknown}; known: {sorted(hints)}")
    return cls(**{k: _checked(f"{section}.{k}", v, hints[k], source) for k, v in data.items()})


@dataclass(frozen=True)
class RunConfig:
    model: POYOConfig
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.to_dict(),
            "data": self.data.to_dict(),
            "training": dataclasses.asdict(self.training),
        }

    @classmethod
    def from_dict(cls, data: Mapping, *, source: str = "run config", base: Path | None = None) -> "RunConfig":
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a mapping, got {type(data).__name__}")
        if not any(key in data for key in SECTIONS):
            return cls(model=POYOConfig.from_dict(dict(data), source=source))
        unknown = sorted(set(data) - set(SECTIONS))
        if unknown:
            raise ConfigError(f"{source}: unknown section(s) {unknown}; a run file has {list(SECTIONS)}")
        model = data.get("model")
        if isinstance(model, str):
            model = POYOConfig.from_yaml(_preset_path(model, base, source))
        elif isinstance(model, Mapping):
            model = POYOConfig.from_dict(dict(model), source=f"{source}: model")
        else:
            raise ConfigError(f"{source}: 'model' must be a preset file name or a mapping")
        return cls(
            model=model,
            data=DataConfig.from_dict(data.get("data") or {}, source=source),
            training=TrainConfig.from_dict(data.get("training") or {}, source=source),
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> "RunConfig":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such config file (presets are in {PRESET_DIR})")
        with open(path) as f:
            data = yaml.safe_load(f) or {}
        return cls.from_dict(data, source=str(path), base=path.parent)


def _preset_path(name: str, base: Path | None, source: str) -> Path:
    for folder in (base, PRESET_DIR):
        if folder is not None and (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{source}: model preset {name!r} not found next to it or in {PRESET_DIR}")
