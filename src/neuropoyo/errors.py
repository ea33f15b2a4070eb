"""Errors a user can fix: the command line prints them without a traceback."""


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
