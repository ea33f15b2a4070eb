"""Learning-rate schedule of POYO (Appendix A.4): constant, then cosine decay over the last 25 %."""

from __future__ import annotations

import math


def lr_factor(step: int, total_steps: int, *, decay_fraction: float = 0.25, final: float = 0.0) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``total_steps``.

    1.0 until ``(1 - decay_fraction) * total_steps``, then a half cosine down to ``final`` at the
    last step.
    """
    decay_start = (1.0 - decay_fraction) * total_steps
    if step < decay_start or total_steps <= 0:
        return 1.0
    progress = min(1.0, (step - decay_start) / max(total_steps - decay_start, 1e-12))
    return final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * progress))
