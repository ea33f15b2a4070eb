"""POYOConfig: every architectural choice of the POYO network as one validated dataclass.

Paper numbers (Azabou et al. 2023): D = 128, head dim 64, rotary periods 1 ms .. 4 s on half of each head,
value rotation in the encoder cross-attention and all self-attentions (not the decoder), latents on a
uniform time grid sharing ``latents_per_timestamp`` embeddings (A.3), 1 s context window.
The paper's depth L counts the encoder and decoder layers too: L = depth + 2 (POYO-mp "24 layers" is L = 26).

Rotary periods (R = rotated dims per head = head_dim * rotate_fraction): ``rotary_spacing="half_open"``
(default, the paper's formula) gives T_i = t_min (t_max / t_min) ** (2i / R), i < R/2, stopping short
of t_max; ``"inclusive"`` spaces the R/2 periods log-uniformly with both t_min and t_max included, as
torch_brain's POYO does. A non-empty ``rotary_periods_s`` lists the R/2 periods outright and overrides
both: an imported torch_brain checkpoint keeps the exact (float32-computed) periods it was trained with.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuropoyo.errors import ConfigError
from neuropoyo.model.rotary import SPACINGS
from neuropoyo.settings import read_yaml

FFN_KINDS = ("gelu", "geglu")
LATENT_TIMINGS = ("linspace", "bin_centers")


@dataclass
class POYOConfig:
    """The network's settings (a model preset); defaults are the paper's single-session model (Table 4).

    num_units: rows of the unit-embedding table; set from the data's unit vocabulary when training.
    num_sessions: rows of the session-embedding table; set from the data's recordings.
    readouts: readout name (a behavior stream) -> output dim.
    classes: classification readout -> its class names (its dim is their number; its outputs are
        logits); set from the data's label streams when training.
    dim: width of every token, latent and query.
    head_dim: width of each attention head.
    ffn_mult: hidden width of the feed-forward blocks, in multiples of ``dim``.
    qkv_bias: learned biases in the query, key and value projections.
    num_latent_timestamps: times at which the latent tokens sit in a window.
    latents_per_timestamp: learned latent embeddings, repeated at each of those times.
    context_length_s: length of a window, in seconds.
    t_min: shortest period of the rotary time embedding, in seconds.
    t_max: longest period of the rotary time embedding, in seconds (see ``rotary_spacing``).
    rotate_fraction: fraction of each head's dimensions that the rotary embedding rotates.
    rotate_value_encoder: rotate the values too in the encoder's cross-attention (relative times in the output).
    rotate_value_self: rotate the values too in the latent self-attention.
    rotate_value_decoder: rotate the values too in the decoder's cross-attention.
    ffn_dropout: dropout inside the feed-forward blocks.
    linear_dropout: dropout on the residual branches of the self-attention blocks.
    attention_dropout: dropout on the attention weights.
    init_std: standard deviation of the normal initialisation of linear and embedding weights.
    value_inputs: value tokens (calcium traces, binned counts) embedded as UnitEmbed(u) + W value + b;
        set when training on data that hold traces.
    """

    # vocabularies (set from the dataset; presets hold the paper's sizes)
    num_units: int = 1
    num_sessions: int = 1
    readouts: dict[str, int] = field(default_factory=lambda: {"hand_vel": 2})  # name -> output dim
    classes: dict[str, list[str]] = field(default_factory=dict)  # classification readout -> class names
    # widths
    dim: int = 128
    head_dim: int = 64
    num_heads: int = 8  # self-attention heads
    cross_heads: int = 4  # encoder and decoder cross-attention heads
    depth: int = 6  # latent self-attention blocks
    ffn: str = "gelu"  # "gelu" | "geglu"
    ffn_mult: int = 4
    qkv_bias: bool = False
    # latent grid: num_latent_timestamps times x latents_per_timestamp shared embeddings
    num_latent_timestamps: int = 8
    latents_per_timestamp: int = 16
    latent_timing: str = "linspace"  # "linspace": linspace(0, T, n); "bin_centers": (k + 0.5) T / n
    context_length_s: float = 1.0
    # rotary time embedding
    t_min: float = 1e-3
    t_max: float = 4.0
    rotary_spacing: str = "half_open"  # "half_open": t_max excluded (paper); "inclusive": both ends
    rotary_periods_s: list[float] = field(default_factory=list)  # explicit periods; [] = from the above
    rotate_fraction: float = 0.5
    rotate_value_encoder: bool = True
    rotate_value_self: bool = True
    rotate_value_decoder: bool = False
    # dropouts (Table 4 names): inside the FFN, on residual branches of self-attention blocks, in attention
    ffn_dropout: float = 0.0
    linear_dropout: float = 0.0
    attention_dropout: float = 0.0
    # embeddings
    token_type_embedding: bool = False  # False: paper START/END embeddings; True: torch_brain 3-type table
    task_embedding: bool = False  # a per-readout query embedding; set for several tasks with a classification
    value_inputs: bool = False  # value tokens (calcium traces, binned counts): unit embedding + Linear(value)
    init_std: float = 0.02

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            setattr(self, f.name, _check_type(f.name, getattr(self, f.name), hints[f.name]))
        self.readouts = dict(sorted(self.readouts.items()))  # readout order = sorted names
        positive = ("num_units", "num_sessions", "dim", "head_dim", "num_heads", "cross_heads", "ffn_mult")
        positive += ("num_latent_timestamps", "latents_per_timestamp", "context_length_s", "init_std")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.depth < 0:
            raise ConfigError(f"depth must be >= 0, got {self.depth}")
        if not self.readouts:
            raise ConfigError("readouts must name at least one output, e.g. {hand_vel: 2}")
        for name, out_dim in self.readouts.items():
            if not name or "." in name or out_dim <= 0:
                raise ConfigError(f"readout {name!r}: need a non-empty name without '.' and a dim > 0")
        for name, classes in self.classes.items():
            if self.readouts.get(name) != len(classes) or len(classes) < 2 or len(set(classes)) != len(classes):
                raise ConfigError(
                    f"classes of {name!r}: a classification readout needs 2 or more distinct class names, one "
                    f"per output of the readout (readouts: {self.readouts}), got {classes}"
                )
        _check_choice("ffn", self.ffn, FFN_KINDS)
        _check_choice("latent_timing", self.latent_timing, LATENT_TIMINGS)
        _check_choice("rotary_spacing", self.rotary_spacing, SPACINGS)
        if not 0 < self.t_min < self.t_max:
            raise ConfigError(f"need 0 < t_min < t_max, got t_min={self.t_min}, t_max={self.t_max}")
        rotate_dim = self.head_dim * self.rotate_fraction
        if not 0 <= self.rotate_fraction <= 1 or rotate_dim != round(rotate_dim) or round(rotate_dim) % 2:
            raise ConfigError(
                f"rotate_fraction={self.rotate_fraction} must give an even number of rotated dims "
                f"out of head_dim={self.head_dim}"
            )
        if self.rotary_periods_s and (
            len(self.rotary_periods_s) != round(rotate_dim) // 2 or min(self.rotary_periods_s) <= 0
        ):
            raise ConfigError(
                f"rotary_periods_s must list {round(rotate_dim) // 2} positive periods (one per rotated "
                f"pair of dims), got {self.rotary_periods_s}; use [] to derive them from t_min and t_max"
            )
        for name in ("ffn_dropout", "linear_dropout", "attention_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    @property
    def num_latents(self) -> int:
        return self.num_latent_timestamps * self.latents_per_timestamp

    @property
    def readout_names(self) -> tuple[str, ...]:
        """Readout names in order; output_decoder_index indexes this tuple."""
        return tuple(self.readouts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; from_dict(to_dict()) == self."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config dict") -> POYOConfig:
        """Build from a mapping; unknown keys and bad values raise ValueError naming ``source``."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of model config keys, got {type(data).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = [key for key in data if key not in known]
        if unknown:
            raise ConfigError(
                f"{source}: unknown model config key {unknown[0]!r}"
                + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
                + f"; known keys: {', '.join(known)}"
            )
        try:
            return cls(**data)
        except (TypeError, ValueError) as error:
            raise ConfigError(f"{source}: {error}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> POYOConfig:
        """Read a flat YAML mapping of config keys (see configs/*.yaml)."""
        data = read_yaml(path)
        return cls.from_dict({} if data is None else data, source=str(path))


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _check_type(name: str, value: Any, hint: Any) -> Any:
    """Value checked against the field's annotation; ints are accepted (and converted) for floats."""
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool):
        if type(value) is not hint:
            extra = " (YAML reads 1e-3 as a string; write 1.0e-3)" if isinstance(value, str) else ""
            raise ConfigError(f"{name} must be {hint.__name__}, got {type(value).__name__} {value!r}{extra}")
        return value
    if typing.get_origin(hint) is list:  # list[float]
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
        ):
            raise ConfigError(f"{name} must be a list of numbers, got {value!r}")
        return [float(v) for v in value]
    if hint == dict[str, list[str]]:
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, (list, tuple)) and all(isinstance(c, str) for c in v)
            for k, v in value.items()
        ):
            raise ConfigError(f"{name} must map readout names to lists of class names, got {value!r}")
        return {k: list(v) for k, v in value.items()}
    # dict[str, int]
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and type(v) is int for k, v in value.items()
    ):
        raise ConfigError(f"{name} must map names to integer dims, got {value!r}")
    return dict(value)
