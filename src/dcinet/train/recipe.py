"""The optimisation recipe around the paper's momentum SGD (§4.2): the epoch-level lr schedule and
its warmup, a separate lr for the new layers, gradient clipping and an EMA of the weights.

Each option is a config key whose default is the paper's plain SGD:

* ``scheduler`` / ``step_size`` (:func:`lr_factor`) and ``warmup_epochs`` (:func:`warm_up`);
* ``new_layer_lr_mult``: the layers no pretrained backbone provides (the classifier and the
  text module, :meth:`~dcinet.models.shared.SharedCCRNModel.new_layers`) train at ``lr`` times
  this, in a second parameter group (:func:`make_optimizer`);
* ``grad_clip_norm``: the gradients' total L2 norm is clipped to it before each step
  (:func:`clip_gradients`);
* ``ema_decay``: timm's ``ModelEmaV3`` keeps an exponential moving average of every weight and
  buffer (:func:`make_ema`); it is what validation scores and what the checkpoints hold as the
  model;
* ``accum_steps`` (in :func:`dcinet.train.loop.train_one_epoch`): that many batches' gradients,
  each loss divided by the batches in its group, make one optimizer step.

Everything that varies during a run is a function of the epoch and the optimizer step, so a
resumed run repeats an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from timm.utils import ModelEmaV3

from dcinet.config import Config

EMA_WARMUP_POWER = 0.75
"""The EMA's decay at optimizer step ``t`` (1-based) is ``min(ema_decay, 1 - t ** -0.75)``
(timm's warmup, with the power it suggests for shorter runs): step 1 copies the weights, and the
average follows them closely at first instead of remembering the initial weights."""


def lr_factor(cfg: Config) -> Callable[[int], float]:
    """The learning-rate multiplier of epoch ``e`` (0-based) under ``cfg.scheduler``.

    ``cosine`` anneals from 1 to 0 over ``cfg.epochs`` epochs, ``step`` multiplies by 0.1 every
    ``cfg.step_size`` epochs, ``none`` keeps 1. The plan is a function of ``cfg.epochs``, so
    resuming with more epochs re-plans the cosine over the new total from the resumed epoch.
    """
    if cfg.scheduler == "cosine":
        return lambda e: 0.5 * (1.0 + math.cos(math.pi * min(e, cfg.epochs) / cfg.epochs))
    if cfg.scheduler == "step":
        return lambda e: 0.1 ** (e // cfg.step_size)
    return lambda e: 1.0


def make_optimizer(cfg: Config, model: torch.nn.Module):
    """Momentum SGD (§4.2) and the epoch-level learning-rate schedule (:func:`lr_factor`).

    One parameter group at ``cfg.lr``; with ``cfg.new_layer_lr_mult != 1`` a second one, the
    model's ``new_layers()``, at ``cfg.lr * cfg.new_layer_lr_mult`` (group 0 keeps the backbone).
    The schedule and the warmup scale both groups alike.
    """
    params = list(model.parameters())
    groups: list[dict] = [{"params": params}]
    if cfg.new_layer_lr_mult != 1:
        new = {id(p) for p in model.new_layers()}
        groups = [{"params": [p for p in params if id(p) not in new]},
                  {"params": [p for p in params if id(p) in new],
                   "lr": cfg.lr * cfg.new_layer_lr_mult}]
    optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg))


def warm_up(optimizer: torch.optim.Optimizer, scheduled: list[float], fraction: float) -> None:
    """Set every parameter group's lr to its ``scheduled`` lr (this epoch's, from
    :func:`lr_factor`) times ``fraction``: the share of the ``warmup_epochs`` optimizer steps
    done, this one included. A function of the epoch and step only, so a resumed run warms up as
    an uninterrupted one."""
    for group, lr in zip(optimizer.param_groups, scheduled, strict=True):
        group["lr"] = lr * fraction


def clip_gradients(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   scaler: torch.amp.GradScaler, max_norm: float) -> None:
    """Clip the total L2 norm of ``model``'s gradients to ``max_norm`` (0: leave them), after
    undoing the AMP scaler's scale, so the norm is that of the true gradients."""
    if max_norm > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)


def make_ema(cfg: Config, model: torch.nn.Module) -> ModelEmaV3 | None:
    """An EMA of ``model`` (a copy on its device, eval mode) with ``cfg.ema_decay`` and the
    warmup of :data:`EMA_WARMUP_POWER`, or None when ``ema_decay`` is 0. Update it with
    ``ema.update(model, step=t)``, ``t`` the optimizer steps done since the run's start."""
    if cfg.ema_decay <= 0:
        return None
    return ModelEmaV3(model, decay=cfg.ema_decay, use_warmup=True,
                      warmup_power=EMA_WARMUP_POWER)
