"""The experiments' cache of finished fits: one JSON file per fit, so a rerun into the same folder
skips what is done (and an interrupted experiment resumes at the fit it was in). A fit's record
``NAME.json`` lies beside the folder ``NAME/`` the fit ran in."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path
from typing import Callable

from neuropoyo.errors import ConfigError
from neuropoyo.interrupt import Interrupted, raise_lost, signal_of
from neuropoyo.io import write_text_atomic

Log = Callable[[str], None]
SETTINGS = "settings.json"


def cached_fit(path: Path, compute: Callable[[], dict], log: Log, what: str) -> dict:
    """The result stored at ``path``, or ``compute()`` stored there atomically."""
    raise_lost()
    if path.is_file():
        log(f"{what}: done before ({path})")
        return json.loads(path.read_text())
    log(f"{what}: fitting")
    started = time.perf_counter()
    result = {**compute(), "seconds": round(time.perf_counter() - started, 1)}
    write_text_atomic(path, json.dumps(result, indent=2))
    log(f"{what}: test R2 {result['r2']:.4f} in {result['seconds']:.0f} s")
    return result


def same_settings(out: Path, settings: dict, command: str) -> None:
    """Record the settings every fit in ``out`` shares (``out/settings.json``), or, when a run
    before recorded others, raise ConfigError naming them: its finished fits would be reused."""
    path = out / SETTINGS
    settings = json.loads(json.dumps(settings))  # as stored: tuples become lists
    if not path.is_file():
        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(settings, indent=2))
        return
    before = json.loads(path.read_text())
    changed = sorted(key for key in settings.keys() | before.keys() if settings.get(key) != before.get(key))
    if changed:
        said = "; ".join(f"{key}: {before.get(key)!r} then, {settings.get(key)!r} now" for key in changed)
        raise ConfigError(
            f"{command}: {out} holds fits made with other settings ({said}); its finished fits would be "
            "reused as they are: give another --out, or the settings of that run"
        )


def finished_fits(out: str | Path) -> list[Path]:
    """The records of the fits finished in the experiment folder ``out``."""
    return sorted(p for p in Path(out).rglob("*.json") if p.with_suffix("").is_dir())


def keeps_fits_on_interrupt(run: Callable) -> Callable:
    """Decorate an experiment ``run(out, ...)``: Ctrl-C or SIGTERM ends it with
    :class:`~neuropoyo.interrupt.Interrupted` saying how many finished fits ``out`` keeps."""

    @functools.wraps(run)
    def interruptible(out, *args, **kwargs):
        try:
            return run(out, *args, **kwargs)
        except KeyboardInterrupt as error:
            kept = len(finished_fits(out))
            fits = "1 finished fit is" if kept == 1 else f"{kept} finished fits are"
            raise Interrupted(signal_of(error), f"rerun the same command: {fits} kept in {out}") from None

    return interruptible
