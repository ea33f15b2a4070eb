"""The experiments' cache of finished fits: one JSON file per fit, so a rerun into the same folder
skips what is done (and an interrupted experiment resumes at the fit it was in)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from neuropoyo.io import write_text_atomic

Log = Callable[[str], None]


def cached_fit(path: Path, compute: Callable[[], dict], log: Log, what: str) -> dict:
    """The result stored at ``path``, or ``compute()`` stored there atomically."""
    if path.is_file():
        log(f"{what}: done before ({path})")
        return json.loads(path.read_text())
    log(f"{what}: fitting")
    started = time.perf_counter()
    result = {**compute(), "seconds": round(time.perf_counter() - started, 1)}
    write_text_atomic(path, json.dumps(result, indent=2))
    log(f"{what}: test R2 {result['r2']:.4f} in {result['seconds']:.0f} s")
    return result
