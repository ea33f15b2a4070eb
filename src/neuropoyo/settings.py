"""Typed settings from YAML/JSON mappings: unknown keys and wrongly typed values are errors.

A leaf module used by every config dataclass (model, loss, augmentation, evaluation, training), so
each section reports problems the same way: the file, the ``section.key`` and what was expected.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any, Mapping, TypeVar

import yaml

from neuropoyo.errors import ConfigError, warn_renamed

T = TypeVar("T")
SCALARS = (bool, int, float, str)


def read_yaml(path: str | Path) -> Any:
    """The YAML document in ``path``; a ConfigError naming the file, line and column when it does
    not parse (or is not text)."""
    with open(path, "rb") as f:
        try:
            return yaml.safe_load(f)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise ConfigError(
                f"{path}:{where} not valid YAML ({problem}); check the brackets, colons and "
                "indentation there (a run file looks like the presets: neuropoyo/configs/runs/*.yaml)"
            ) from None


def _checked(name: str, value: Any, hint: Any, source: str) -> Any:
    """``value`` if it fits a scalar field type (an int is accepted for a float), else ConfigError.

    Container fields (mappings, tuples, lists) are passed through: their dataclass validates them.
    """
    allowed = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if not all(a in SCALARS or a is type(None) for a in allowed):
        return value
    if value is None and type(None) in allowed:
        return value
    if float in allowed and type(value) is int:
        return float(value)
    if type(value) not in allowed:
        hint_text = " (YAML reads 1e-3 as text; write 1.0e-3)" if isinstance(value, str) else ""
        names = " or ".join("null" if a is type(None) else a.__name__ for a in allowed)
        raise ConfigError(f"{source}: {name} must be {names}, got {value!r}{hint_text}")
    return value


def weights_by_name(value: Any, *, field: str) -> dict[str, float]:
    """``value`` as {name: float weight >= 0}, or a ConfigError naming ``field`` (e.g. loss weights of
    named intervals)."""
    if not isinstance(value, Mapping):
        raise ConfigError(f"{field} must map names to weights, got {value!r}")
    weights = {}
    for name, weight in value.items():
        if not isinstance(name, str) or not name or isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ConfigError(f"{field}: need name: number, got {name!r}: {weight!r}")
        if not (math.isfinite(weight) and weight >= 0):
            raise ConfigError(f"{field}: weight of {name!r} must be finite and >= 0, got {weight}")
        weights[name] = float(weight)
    return weights


def current_keys(cls: type, data: Mapping, *, source: str, section: str, warn: bool = True) -> dict:
    """``data`` with the old spellings of ``cls``'s renamed keys (``cls.RENAMED``: old -> new)
    replaced, each with a RenamedWarning (``warn=False``: silently, for files neuropoyo wrote itself,
    such as an older run's run.json). Both spellings at once is a ConfigError."""
    data = dict(data)
    for old, new in getattr(cls, "RENAMED", {}).items():
        if old not in data:
            continue
        if new in data:
            raise ConfigError(f"{source}: {section} sets both {old} and {new}; keep {new} (the new name of {old})")
        if warn:
            warn_renamed(f"{source}: {section}.{old}", f"{section}.{new}", stacklevel=4)
        data[new] = data.pop(old)
    return data


def from_mapping(cls: type[T], data: Any, *, source: str, section: str) -> T:
    """Build dataclass ``cls`` from ``data``: unknown keys and bad scalar types are ConfigErrors
    naming ``source`` and ``section.key``; ``cls.__post_init__`` checks the values. Keys renamed
    since an earlier release (``cls.RENAMED``) are read under their new name with a warning."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: {section} must be a mapping, got {type(data).__name__}")
    data = current_keys(cls, data, source=source, section=section)
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(f"{source}: unknown {section} option(s) {unknown}; known: {known}")
    values = {k: _checked(f"{section}.{k}", v, hints[k], source) for k, v in data.items()}
    try:
        return cls(**values)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{source}: {section}: {error}") from None


# neuropoyo 0.1.0 kept one flat "data" section; each key now lives in a section of its own.
LEGACY_DATA_KEYS = {
    "interval_weights": ("loss", "interval_weights"),
    "exclude_acceleration_factor": ("loss", "exclude_acceleration_factor"),
    "output_samples": ("loss", "output_samples"),
    "unit_dropout_min": ("augment", "unit_dropout_min"),
    "eval_intervals": ("evaluation", "intervals"),
    "eval_successful_only": ("evaluation", "successful_only"),
    "eval_step_s": ("evaluation", "step_s"),
}


def sections_from_legacy_data(data: Mapping, *, source: str) -> dict[str, dict]:
    """A 0.1.0 flat ``data`` section as {section: {key: value}} (e.g. eval_step_s -> evaluation.step_s)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: data must be a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - set(LEGACY_DATA_KEYS))
    if unknown:
        raise ConfigError(
            f"{source}: unknown data option(s) {unknown}; the data section is read as the 0.1.0 "
            f"layout ({sorted(LEGACY_DATA_KEYS)}): write loss / augment / evaluation sections instead"
        )
    sections: dict[str, dict] = {}
    for key, value in data.items():
        section, name = LEGACY_DATA_KEYS[key]
        sections.setdefault(section, {})[name] = value
    return sections
