"""The default CPU recipe, decided in one place: which run file trains when none is given.

Every default (``neuropoyo train`` and ``demo`` without --config, the experiments, the Python API)
asks :func:`resolve_config`. The recipe is the shipped run file ``runs/cpu-small``; on
:data:`MANY_RECORDINGS` or more recordings its learning rate drops to :data:`MANY_RECORDINGS_LR`.
"""

from __future__ import annotations

from pathlib import Path

from neuropoyo.training.config import RunConfig

DEFAULT_RUN = "cpu-small"
# At the recipe's lr 1e-2, one model on several recordings trained or not depending on the seed: on
# the demo's four, valid R2 0.40 to 0.91 over four seeds, and on three simulated recordings seed 1
# never left the mean; at 4e-3 every seed trained (0.91-0.92 on the demo's four). benchmarks/RESULTS.md,
# "The CPU recipe on several recordings depended on the seed" (issue 36).
MANY_RECORDINGS = 2
MANY_RECORDINGS_LR = 4e-3


def default_config(n_recordings: int) -> tuple[RunConfig, str]:
    """(the CPU recipe for ``n_recordings`` recordings, a one-line note saying which it is)."""
    config = RunConfig.from_yaml(DEFAULT_RUN)
    note = f"config: runs/{DEFAULT_RUN}, the default CPU recipe, for {n_recordings} recording(s)"
    if n_recordings < MANY_RECORDINGS:
        return config, note
    lowered = config.with_training(lr=MANY_RECORDINGS_LR)
    return lowered, (
        f"{note}, with lr {MANY_RECORDINGS_LR:g} instead of {config.training.lr:g}: on {MANY_RECORDINGS} or "
        "more recordings the higher rate failed to train with some seeds"
    )


def resolve_config(config: str | Path | RunConfig | None, n_recordings: int) -> tuple[RunConfig, str | None]:
    """(the run config to train, a note to print or None): ``config`` itself when it is a RunConfig,
    the run file (or preset name) it names, or the default recipe (:func:`default_config`) when None."""
    if config is None:
        return default_config(n_recordings)
    if isinstance(config, RunConfig):
        return config, None
    return RunConfig.from_yaml(config), None
