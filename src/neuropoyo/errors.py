"""Errors a user can fix: the command line prints them without a traceback; and the warning for
old spellings of renamed presets, flags and config keys."""

import warnings


class ConfigError(ValueError):
    """A config file or option is wrong (unknown key, bad value, missing preset)."""


class DataError(ValueError):
    """Recordings cannot serve the request (missing stream, split, scale or id)."""


class MissingKeyError(DataError, KeyError):
    """A named thing (stream, split, column, id) is absent; also a KeyError for dict-like callers."""

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0]) if self.args else ""


class CheckpointError(ValueError):
    """A checkpoint to import cannot be read or does not hold the model it should."""


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. losses or gradients that stay NaN/inf); the last good checkpoint is kept."""


class RenamedWarning(FutureWarning):
    """An old spelling of a preset, flag or config key was used: it works in this release, not the next."""


def warn_renamed(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Warn that ``old`` (e.g. ``--stream``) is now spelled ``new`` (e.g. ``--readout``)."""
    warnings.warn(f"{old} is now {new}; the old name works in this release only", RenamedWarning, stacklevel=stacklevel)
