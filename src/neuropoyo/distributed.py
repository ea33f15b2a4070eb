"""Which process of a distributed run this is, and the few collective steps neuropoyo needs.

A run is distributed when ``torchrun`` (or any launcher setting the same variables) starts it:
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE`` name this process, and
``MASTER_ADDR`` / ``MASTER_PORT`` where rank 0 listens. :func:`join` opens PyTorch's process
group (gloo on CPU, NCCL on CUDA); without those variables everything here is the one-process
case and costs nothing. A leaf module: training and evaluation both use it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from neuropoyo.errors import ConfigError

LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run. rank / world: among all processes; local_rank /
    local_world: among the processes of this machine."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes checkpoints, logs and models."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


SINGLE = Ranks()


def _integer(name: str, default: int | None = None) -> int:
    text = os.environ.get(name)
    if text is None:
        if default is None:
            raise ConfigError(f"distributed run: the launcher set WORLD_SIZE but not {name}; start it with torchrun")
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"distributed run: environment variable {name}={text!r} is not an integer") from None


def from_environment() -> Ranks:
    """The ranks the launcher's environment names; one process when WORLD_SIZE is unset or 1."""
    world = _integer("WORLD_SIZE", 1)
    if world <= 1:
        return SINGLE
    missing = [name for name in LAUNCH_VARIABLES if name not in os.environ]
    if missing:
        raise ConfigError(
            f"distributed run: WORLD_SIZE={world} but {', '.join(missing)} unset; start it with "
            "`torchrun --nproc-per-node N -m neuropoyo train ...`"
        )
    rank = _integer("RANK")
    local_world = _integer("LOCAL_WORLD_SIZE", world)
    ranks = Ranks(rank=rank, world=world, local_rank=_integer("LOCAL_RANK", rank), local_world=local_world)
    if not 0 <= ranks.rank < world or not 0 <= ranks.local_rank < local_world:
        raise ConfigError(f"distributed run: rank {rank} (local {ranks.local_rank}) outside a world of {world}")
    return ranks


def join(device: torch.device) -> Ranks:
    """Open the process group of a distributed run (once per process; gloo on CPU, NCCL on CUDA)
    and return this process's ranks; the one-process ranks when the run is not distributed."""
    ranks = from_environment()
    if ranks.distributed and not dist.is_initialized():
        backend = "gloo"
        if device.type == "cuda":  # one GPU per process, chosen before NCCL opens
            torch.cuda.set_device(ranks.local_rank)
            backend = "nccl"
        dist.init_process_group(backend=backend, rank=ranks.rank, world_size=ranks.world)
    return ranks


def device_for(name: str, ranks: Ranks) -> str:
    """``cuda`` becomes ``cuda:<local rank>`` in a distributed run: one GPU per process."""
    return f"cuda:{ranks.local_rank}" if ranks.distributed and name == "cuda" else name


def cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def thread_share(ranks: Ranks, *, workers: int = 0, available: int | None = None) -> int:
    """Intra-op threads for one process: its share of the machine's cores (cores / processes on
    this machine), less its DataLoader workers, at least 1. Two 2-thread trainings on 2 cores
    ran 14x slower than one: every process must keep to its share."""
    share = (available or cores()) // ranks.local_world
    return max(1, share - workers)


def all_sum(values: np.ndarray | torch.Tensor, ranks: Ranks) -> np.ndarray | torch.Tensor:
    """Elementwise sum over the ranks (float64 for arrays); ``values`` itself in one process."""
    if not ranks.distributed:
        return values
    if isinstance(values, np.ndarray):
        tensor = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64)).clone()
        dist.all_reduce(tensor)
        return tensor.numpy().astype(values.dtype, copy=False)
    total = values.detach().clone()
    dist.all_reduce(total)
    return total


def gather(value: Any, ranks: Ranks) -> list[Any]:
    """Every rank's ``value`` (any picklable object made by this program), in rank order."""
    if not ranks.distributed:
        return [value]
    values: list[Any] = [None] * ranks.world
    dist.all_gather_object(values, value)
    return values


def barrier(ranks: Ranks) -> None:
    """Wait until every rank arrives (e.g. after rank 0 wrote a file the others read)."""
    if ranks.distributed:
        dist.barrier()


def leave() -> None:
    """Close this process's group (at the end of a command); nothing when none is open."""
    if dist.is_initialized():
        dist.destroy_process_group()
