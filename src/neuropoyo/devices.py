"""The torch device a user names (``--device``), checked before any work starts."""

from __future__ import annotations

import torch

from neuropoyo.errors import ConfigError

KINDS = ("cpu", "cuda", "mps")


def checked_device(name: str | torch.device) -> torch.device:
    """``name`` (``cpu``, ``cuda``, ``cuda:1``, ``mps``) as a device this machine has; a ConfigError
    naming the device and the fix otherwise (never a failure deep inside torch later)."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"device {name!r}: not a device name; use cpu, cuda, cuda:N or mps") from None
    if device.type not in KINDS:
        raise ConfigError(f"device {name!r}: neuropoyo runs on {', '.join(KINDS)}; use one of those")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this PyTorch is a CPU build" if torch.version.cuda is None else "no GPU is visible"
            raise ConfigError(
                f"device {name!r}: CUDA is not available ({why}); use --device cpu, or install the "
                "PyTorch build for your CUDA version"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ConfigError(f"device {name!r}: this machine has {count} GPU(s) (cuda:0 to cuda:{count - 1})")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {name!r}: MPS (Apple GPU) is not available here; use --device cpu")
    return device
