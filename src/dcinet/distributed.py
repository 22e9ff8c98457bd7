"""Where a process runs: its device (``--device auto|cpu|cuda[:N]``) and, under ``torchrun``, its
process group (DDP training, sharded evaluation and embedding); a single process needs no group."""

from __future__ import annotations

import atexit
import os
import re
from dataclasses import dataclass

import torch
import torch.distributed as dist

from dcinet.config import DEVICE_CHOICES
from dcinet.errors import DcinetError


def resolve_device(spec: str = "auto", local_rank: int = 0) -> torch.device:
    """The device a ``--device`` value names.

    Args:
        spec: ``auto`` (CUDA when present, else the CPU), ``cpu``, ``cuda`` (GPU ``local_rank``,
            one per ``torchrun`` process) or ``cuda:N``.
    Raises:
        DcinetError: an unknown value, or CUDA asked for where there is none (or not GPU ``N``).
    """
    match = re.fullmatch(r"(auto|cpu|cuda)(?::(\d+))?", spec.strip().lower())
    if match is None or (match[2] is not None and match[1] != "cuda"):
        raise DcinetError(f"--device must be {DEVICE_CHOICES}, got {spec!r}")
    kind = match[1]
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    if kind == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DcinetError(f"--device {spec}: CUDA is not available on this machine "
                          "(use --device cpu or auto)")
    index = int(match[2]) if match[2] is not None else local_rank
    if index >= torch.cuda.device_count():
        raise DcinetError(f"--device {spec}: this machine has {torch.cuda.device_count()} "
                          f"CUDA device(s)")
    return torch.device("cuda", index)


@dataclass(frozen=True)
class DistInfo:
    """This process's place: its rank among ``world_size``, its device, and whether it joined a
    process group (``ddp``: launched by ``torchrun``, even as its only rank; training then wraps
    the model in DistributedDataParallel)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    ddp: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """Whether there are other ranks to talk to (the collectives below are identities
        otherwise)."""
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """Whether ``torchrun`` (``torch.distributed.run``) started this process: it sets
    ``TORCHELASTIC_RUN_ID`` besides ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``."""
    return "TORCHELASTIC_RUN_ID" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(device: str = "auto") -> DistInfo:
    """Read ``torchrun``'s environment, pick the device (:func:`resolve_device`; under
    ``torchrun`` each process takes GPU ``LOCAL_RANK``) and join the process group (NCCL on
    CUDA, else gloo) when ``torchrun`` launched this process (even with one rank) or
    ``WORLD_SIZE`` > 1. The group is destroyed when the process exits (:func:`shutdown`)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    where = resolve_device(device, local_rank)
    if where.type == "cuda":
        torch.cuda.set_device(where)
    grouped = world_size > 1 or launched_by_torchrun()
    if grouped and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if where.type == "cuda" else "gloo")
        atexit.register(shutdown)
    return DistInfo(rank, world_size, local_rank, where, ddp=grouped)


def shutdown() -> None:
    """Destroy the default process group, if there is one (registered by
    :func:`init_distributed` to run at exit; safe to call again)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def mean_across_ranks(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average a dict of floats over all ranks (identity for one process)."""
    if not info.enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=info.device)
    dist.all_reduce(t)
    return {k: float(v) / info.world_size for k, v in zip(keys, t.tolist(), strict=True)}


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank if ``flag`` is true on any rank."""
    if not info.enabled:
        return flag
    t = torch.tensor([int(flag)], device=info.device)
    dist.all_reduce(t)
    return bool(t.item())


def all_gather(obj: object, info: DistInfo) -> list:
    """Every rank's ``obj`` (picklable), in rank order, on every rank (``[obj]`` for one process)."""
    if not info.enabled:
        return [obj]
    gathered: list = [None] * info.world_size
    dist.all_gather_object(gathered, obj)
    return gathered
