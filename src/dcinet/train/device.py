"""How a training run uses its device: the checks made before any work, the backend switches,
mixed precision, ``torch.compile`` and the DDP wrapper (``docs/gpu.md`` is the user's guide).

* ``deterministic: true`` runs on the CPU only (:func:`check_device_config`): CUDA has no
  deterministic backward for the heads' ``AdaptiveAvgPool2d`` (``torch.use_deterministic_algorithms``
  raises at the first backward), and ``warn_only`` would keep the key's promise, a bit-identical
  ``--resume``, only in name. It is refused in one line before any work.
* On CUDA ``cudnn.benchmark`` is on (:func:`configure_backends`): every step has the same shapes,
  so cuDNN's autotuner picks the fastest convolution once.
* ``amp_dtype`` (:func:`amp_dtype`): ``auto`` is bfloat16 where the GPU has it (Ampere and later),
  else float16; only float16 needs the GradScaler (:func:`make_scaler`).
* ``compile`` (:func:`compile_halves`): ``torch.compile`` of the CCRN's two sub-modules in place
  (the weights' names do not change); CMSI and CMCI, which draw on the host and match labels in
  Python, stay eager between them.
* Under ``torchrun``, ``batch_per_modality`` is the batch of all ranks together
  (:func:`per_rank_batch`), so the global batch, the steps per epoch and the lr do not change with
  the number of GPUs; ``sync_bn`` turns every BatchNorm into a SyncBatchNorm, and DDP is built
  with ``device_ids`` on CUDA (:func:`wrap_for_training`).
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from dcinet.config import Config
from dcinet.distributed import DistInfo
from dcinet.errors import DcinetError

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_device_config(cfg: Config, dist: DistInfo) -> None:
    """Refuse, before any work, the settings that cannot run on ``dist.device``.

    Raises:
        DcinetError: ``deterministic: true`` on CUDA; ``sync_bn: true`` under ``torchrun`` on the
            CPU (torch's SyncBatchNorm runs on GPUs only; in one process it has nothing to
            synchronise and changes nothing).
    """
    if cfg.deterministic and dist.device.type == "cuda":
        raise DcinetError("config key 'deterministic' is true, which runs on the CPU only (CUDA has "
                          "no deterministic backward for this network's pooling): set "
                          "deterministic=false on CUDA, or train with --device cpu")
    if cfg.sync_bn and dist.ddp and dist.device.type != "cuda":
        raise DcinetError("config key 'sync_bn' is true, which needs CUDA (torch's SyncBatchNorm "
                          "runs on GPUs only): set sync_bn=false for torchrun on the CPU")


def configure_backends(cfg: Config, device: torch.device) -> None:
    """Turn on cuDNN's autotuner on CUDA (``deterministic`` is CPU-only, see
    :func:`check_device_config`); on the CPU nothing changes."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not cfg.deterministic


def amp_dtype(cfg: Config, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a training step on ``device``: None (float32) on the CPU or with
    ``amp: false``; ``cfg.amp_dtype`` on CUDA, ``auto`` meaning bfloat16 where
    ``torch.cuda.is_bf16_supported()``, else float16."""
    if not cfg.amp or device.type != "cuda":
        return None
    if cfg.amp_dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return AMP_DTYPES[cfg.amp_dtype]


def make_scaler(dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """The GradScaler of a run whose autocast dtype is ``dtype``: enabled for float16 only
    (bfloat16 has float32's range; a disabled scaler passes every call through)."""
    return torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)


def autocast(dtype: torch.dtype | None, device: torch.device):
    """The autocast context of a forward pass (a null context for ``dtype`` None)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def compile_halves(model: nn.Module, backend: str = "inductor") -> None:
    """``torch.compile`` sub-module 1 and sub-module 2 of ``model.ccrn`` in place
    (``nn.Module.compile``: the state dict's keys stay the same, so checkpoints are unchanged).

    The code between them (CMSI's host-side draws, CMCI's matching ``.tolist()``) is left eager,
    so it never breaks a graph. Shapes that change (the last batch, evaluation) recompile with
    dynamic shapes.
    """
    for half in (model.ccrn.submodule1, model.ccrn.submodule2):
        half.compile(backend=backend)


def per_rank_batch(cfg: Config, modalities: int, world_size: int) -> int:
    """Each rank's samples per modality and step: ``cfg.batch_per_modality`` is the batch of all
    ``world_size`` ranks together, so each takes ``b / world_size``.

    Raises:
        DcinetError: ``b`` is not a multiple of ``world_size``; with the class-aware sampler,
            ``b / world_size`` is not a multiple of ``samples_per_class``; with CMSI, a rank's
            batch (``b / world_size`` x ``modalities``) is odd.
    """
    b, where = cfg.batch_per_modality, f" on each of {world_size} ranks" if world_size > 1 else ""
    if b % world_size:
        raise DcinetError(f"batch_per_modality ({b}) is the batch of all ranks together: it must "
                          f"be a multiple of the {world_size} ranks (each takes b / {world_size})")
    mine = b // world_size
    if cfg.sampler == "class_aware" and mine % cfg.samples_per_class:
        raise DcinetError(f"the class-aware sampler draws samples_per_class "
                          f"({cfg.samples_per_class}) of each class: batch_per_modality "
                          f"{b} / {world_size} ranks = {mine} is not a multiple of it")
    if cfg.method == "dcinet" and "cmsi" in cfg.interaction and mine * modalities % 2:
        raise DcinetError(f"CMSI mixes pairs of maps: the batch{where} ({mine} per modality x "
                          f"{modalities} modalities = {mine * modalities}) must be even")
    return mine


def batch_line(cfg: Config, loader: DataLoader, modalities: int, dist: DistInfo) -> str:
    """What a run prints at its start: the global batch, how the ranks share it, the steps per
    epoch, and the precision the steps run in."""
    b, world = cfg.batch_per_modality, dist.world_size
    line = f"global batch {b * modalities} ({b} per modality x {modalities} modalities"
    line += f"; {b // world} per modality on each of {world} ranks)" if world > 1 else ")"
    line += f", {len(loader)} steps per epoch"
    if cfg.accum_steps > 1:
        line += f", an optimizer step every {cfg.accum_steps} ({b * modalities * cfg.accum_steps} samples)"
    dtype = amp_dtype(cfg, dist.device)
    precision = {None: "float32", torch.bfloat16: "bf16 autocast",
                 torch.float16: "fp16 autocast with a GradScaler"}[dtype]
    extras = [x for x, on in (("compiled", cfg.compile), ("sync_bn", cfg.sync_bn and dist.ddp)) if on]
    return f"{line}; {dist.device}, {precision}{''.join(', ' + x for x in extras)}"


def wrap_for_training(model: nn.Module, cfg: Config, dist: DistInfo) -> nn.Module:
    """``model`` as the training loop runs it: its CCRN halves compiled with ``cfg.compile``
    (:func:`compile_halves`); under ``torchrun`` (``dist.ddp``) with its BatchNorms turned into
    SyncBatchNorms first with ``cfg.sync_bn``, and wrapped in a :class:`DistributedDataParallel`
    with ``device_ids`` on CUDA. Everything happens in place: the weights' names, and the model
    the trainer holds and the checkpoints save, stay the same (the EMA's copy, made before,
    stays eager)."""
    if dist.ddp and cfg.sync_bn:
        _convert_sync_bn(model)
    if cfg.compile:
        compile_halves(model)
    if not dist.ddp:
        return model
    device_ids = [dist.device.index] if dist.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def _convert_sync_bn(model: nn.Module) -> None:
    """Replace every BatchNorm child of ``model`` by a SyncBatchNorm holding its weights and
    statistics (torch's ``convert_sync_batchnorm``, applied to the children so that the root
    object stays the one the trainer holds)."""
    for name, child in model.named_children():
        setattr(model, name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
