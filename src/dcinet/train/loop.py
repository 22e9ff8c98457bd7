"""The training loop: ``fit`` a config on a dataset into a run directory.

``fit`` runs four steps a reader can take one at a time:

1. :func:`prepare` reads the dataset and checks everything that can be known before any work —
   the config, the backbone and its weights, the map CMSI cuts, the batch, the run directory and
   every training file — and writes nothing;
2. :func:`start_run` writes the run's records (or, with ``resume``, restores the latest
   checkpoint: weights, optimizer, schedule, AMP scaler and every rank's RNG streams);
3. :func:`train_one_epoch` per epoch: the model's ``forward`` returns ``{"loss": L_sum,
   "parts": {...}}``, which is backpropagated; every ``accum_steps`` batches make an optimizer
   step, with the options of :mod:`dcinet.train.recipe` (warmup, clipping, the EMA);
4. :func:`end_epoch`: rank 0 appends the per-loss means to ``metrics.csv``, redraws ``losses.png``
   (the paper's Fig. 5), records in ``run.json`` how often CMSI and CMCI changed a map so far
   (:mod:`dcinet.train.fired`) and writes an atomic checkpoint; in a run with validation items
   (:mod:`dcinet.data.splits`), every ``val_every`` epochs and after the last, it adds their mAPs
   (:mod:`dcinet.train.validation`; ``val.png``) and keeps the best weights beside the latest.

A run that fails before its first checkpoint removes what it wrote (never what an earlier run
wrote), so the same command can simply be run again. ``resume=True`` continues bit-identically
to an uninterrupted run on the same machine on the CPU with ``deterministic=true`` (refused on
CUDA, whose resumed runs agree within the tolerance ``docs/gpu.md`` states). A NaN or inf loss
stops the run within ``log_every`` steps (:mod:`dcinet.train.progress`); the last good checkpoint
stays.

``batch_per_modality`` is the batch of all ranks together: under ``torchrun`` with ``W`` ranks
each rank takes ``b / W`` samples of each modality per step, so the global batch, the steps per
epoch and the lr schedule do not depend on the number of GPUs (:func:`per_rank_batch`). How the
device is used (AMP dtype, cuDNN autotuning, ``compile``, ``sync_bn``, DDP) is
:mod:`dcinet.train.device`.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from dcinet.config import Config, save_config
from dcinet.data.dataset import build_train_loader, dropped_from_training, train_modalities
from dcinet.data.readers import read_configured
from dcinet.data.records import Collection, Sample
from dcinet.data.splits import hold_out_validation, validation_warnings
from dcinet.distributed import DistInfo, all_gather, barrier, init_distributed
from dcinet.errors import DcinetError
from dcinet.models.factory import create_model
from dcinet.rundir import CONFIG_FILE, POINTER, read_metrics, read_run
from dcinet.train.batch_fit import fit_batch
from dcinet.train.checkpoint import (
    load_checkpoint,
    load_scaler_state,
    restore_best,
    rng_state,
    save_best,
    save_checkpoint,
    set_rng_state,
)
from dcinet.train.device import (
    amp_dtype,
    autocast,
    batch_line,
    check_device_config,
    configure_backends,
    make_scaler,
    per_rank_batch,
    wrap_for_training,
)
from dcinet.train.fired import RUN_KEY, add_counts, fired_record, sum_over_ranks
from dcinet.train.plots import plot_curves
from dcinet.train.progress import EpochProgress
from dcinet.train.recipe import (
    clip_gradients,
    lr_factor,
    make_ema,
    make_optimizer,
    warm_up,
)
from dcinet.train.runs import (
    check_resume,
    config_changes,
    dropped_warnings,
    update_run_info,
    write_metrics,
    write_run_info,
)
from dcinet.train.validation import checked_val_samples, improved_best, validate, validation_due


@dataclass
class FitResult:
    run_dir: Path
    model: torch.nn.Module
    history: list[dict]
    skipped: list


@dataclass
class Prepared:
    """What :func:`prepare` checked: the data, the model and the batches, nothing written yet."""

    collection: Collection
    modalities: list[str]
    model: torch.nn.Module
    loader: DataLoader
    skipped: list
    dropped: dict
    cfg: Config  # the config fitted to the data (train.batch_fit), what runs
    validation: dict | None = None  # run.json's record of the validation items
    val_samples: list[Sample] = field(default_factory=list)  # checked; [] = no validation
    notes: list[str] = field(default_factory=list)  # what fitting it changed, one line each


@dataclass
class Trainer:
    """The model (on its device) and what steps it."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler  # enabled for float16 autocast only
    ema: torch.nn.Module | None = None  # timm ModelEmaV3 of ``model`` (config ema_decay)
    amp_dtype: torch.dtype | None = None  # the steps' autocast dtype (None: float32)
    history: list[dict] = field(default_factory=list)
    start_epoch: int = 0
    best: dict | None = None  # best.json's record of the best validation score so far
    # the maps CMSI / CMCI changed over the epochs counted (dcinet.train.fired), in the checkpoint
    fired: dict = field(default_factory=lambda: {"epochs": 0, "counts": {}})

    @property
    def evaluated(self) -> torch.nn.Module:
        """The model that is validated and saved as the run's weights: the EMA's, if any."""
        return self.ema.module if self.ema is not None else self.model


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and torch; optionally force deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def prepare(cfg: Config, data_root: Path, run_dir: Path, resume: bool, dist: DistInfo,
            cache_dir: Path | None = None) -> Prepared:
    """Read and check everything a run needs before it writes anything.

    Raises:
        DcinetError: bad data (unless ``cfg.skip_bad``), an unknown backbone, weights of another
            architecture, a map too small for CMSI, an odd CMSI batch, a batch that the ranks
            cannot share (:func:`~dcinet.train.device.per_rank_batch`), an existing run without ``resume``, or a resume
            with another config or dataset.
    """
    reader_problems: list = []
    collection = read_configured(data_root, cfg, reader_problems if cfg.skip_bad else None)
    collection, validation = hold_out_validation(collection, cfg)
    modalities = train_modalities(collection, cfg)
    cfg, notes = fit_batch(cfg, collection, modalities)
    b = per_rank_batch(cfg, len(modalities), dist.world_size)
    if not resume and (run_dir / CONFIG_FILE).exists():  # before any weights are read
        raise DcinetError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    restoring = resume and (run_dir / POINTER).exists()  # the checkpoint holds every weight
    model = create_model(replace(cfg, pretrained=None) if restoring else cfg,
                         collection.num_classes, modalities)
    if resume:
        check_resume(run_dir, cfg, collection, validation)
    loader, skipped = build_train_loader(collection, replace(cfg, batch_per_modality=b),
                                         rank=dist.rank, world_size=dist.world_size,
                                         skip_bad=cfg.skip_bad, cache_dir=cache_dir,
                                         pin_memory=dist.device.type == "cuda")
    dropped = dropped_from_training(loader, collection.classes, cfg.text_len)
    val_samples, val_skipped = ([], [])
    if validation is not None and cfg.val_every > 0:
        val_samples, val_skipped = checked_val_samples(collection, modalities, cfg.skip_bad)
    return Prepared(collection, modalities, model, loader, reader_problems + skipped + val_skipped,
                    dropped, cfg, validation, val_samples, notes)


def start_run(cfg: Config, run: Prepared, run_dir: Path, resume: bool, dist: DistInfo,
              progress: bool) -> Trainer:
    """Write a new run's records, or restore a resumed run's latest checkpoint; the trainer holds
    the model on its device."""
    barrier(dist)  # every rank has checked the run directory before rank 0 writes into it
    if dist.is_main and not resume:
        write_run_info(run_dir, cfg, run.collection, run.modalities, run.dropped, run.validation)
    if dist.is_main and run.skipped:
        (run_dir / "skipped.txt").write_text("".join(f"{p.format()}\n" for p in run.skipped))
        print(f"skipped {len(run.skipped)} bad files (listed in {run_dir / 'skipped.txt'})", flush=True)
    if dist.is_main and progress:
        for line in dropped_warnings(run.dropped) + validation_warnings(run.validation):
            print(f"warning: {line} (recorded in {run_dir / 'run.json'})", flush=True)
        print(batch_line(cfg, run.loader, len(run.modalities), dist), flush=True)
    barrier(dist)
    model = run.model.to(dist.device)
    optimizer, scheduler = make_optimizer(cfg, model)
    dtype = amp_dtype(cfg, dist.device)
    trainer = Trainer(model, optimizer, scheduler, make_scaler(dtype), make_ema(cfg, model), dtype)
    if resume and (run_dir / POINTER).exists():
        _restore(trainer, cfg, run_dir, dist)
        if dist.is_main:
            save_config(cfg, run_dir / CONFIG_FILE)
            print(f"resuming {run_dir} after epoch {trainer.start_epoch}", flush=True)
    elif resume and dist.is_main and progress:  # stopped before its first checkpoint
        print(f"{run_dir} has no checkpoint yet: starting it from epoch 1", flush=True)
    return trainer


def _restore(trainer: Trainer, cfg: Config, run_dir: Path, dist: DistInfo) -> None:
    """Load the latest checkpoint into ``trainer`` (weights, and the EMA's, optimizer, schedule
    re-planned for ``cfg.epochs``, AMP scaler, this rank's RNG streams) and its metrics history."""
    weights, state = load_checkpoint(run_dir)
    if trainer.ema is not None:  # the weights file holds the EMA, the state the trained weights
        trainer.ema.module.load_state_dict(weights)
        trainer.model.load_state_dict(state["training_weights"])
    else:
        trainer.model.load_state_dict(weights)
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    factor = lr_factor(cfg)
    for group, base in zip(trainer.optimizer.param_groups, trainer.scheduler.base_lrs, strict=True):
        group["lr"] = base * factor(trainer.scheduler.last_epoch)
    load_scaler_state(trainer.scaler, state["scaler"])
    trainer.start_epoch = int(state["epoch"])
    rng = state["rng"]
    set_rng_state(rng[dist.rank] if dist.rank < len(rng) else rng[0])
    trainer.best = state.get("best")
    # a checkpoint written before the counts existed: count from here ("epochs" says how many)
    trainer.fired = state.get("fired") or {"epochs": 0, "counts": {}}
    if dist.is_main:
        restore_best(run_dir, trainer.evaluated, trainer.best, trainer.start_epoch)
    trainer.history = [row for row in read_metrics(run_dir) if row["epoch"] <= trainer.start_epoch]


def _to_device(inputs: dict[str, torch.Tensor], device: torch.device, channels_last: bool
               ) -> dict[str, torch.Tensor]:
    """A batch's inputs on ``device`` (non-blocking: the loader pins them on CUDA), images NHWC
    with ``channels_last``."""
    out = {}
    for mod, x in inputs.items():
        x = x.to(device, non_blocking=True)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        out[mod] = x
    return out


def train_one_epoch(net, loader, trainer: Trainer, cfg: Config, dist: DistInfo, epoch: int,
                    progress: bool, fired: dict | None = None) -> dict[str, float]:
    """Run one epoch of ``net`` (``trainer.model``, or its DDP wrapper); returns the mean of
    ``loss`` and of every loss part over its batches.

    Every ``cfg.accum_steps`` batches (fewer for the epoch's last group) make one optimizer step
    (:func:`_update`): each batch's loss is divided by the batches in its group, so the step
    follows their mean gradient. In the first ``cfg.warmup_epochs`` epochs the lr climbs
    linearly, step by step, from ``1 / (warmup_epochs * steps)`` of the scheduled lr to all of it
    (:func:`~dcinet.train.recipe.warm_up`). The losses stay on the device; every
    ``cfg.log_every`` steps they are checked finite and shown (:class:`EpochProgress`), so a step
    never waits for the GPU. The labels stay on the host: the model moves them, and CMCI matches
    maps on the host copy.
    ``fired``, when given, receives this rank's counts of the maps CMSI and CMCI changed
    (:func:`~dcinet.train.fired.add_counts` of each batch's ``out["fired"]``).

    Raises:
        DcinetError: a non-finite loss (on any rank).
    """
    net.train()
    batches, accum = len(loader), cfg.accum_steps
    steps = math.ceil(batches / accum)
    scheduled = [group["lr"] for group in trainer.optimizer.param_groups]
    shown = EpochProgress(dist, epoch, cfg.epochs, batches, cfg.log_every, progress)
    trainer.optimizer.zero_grad(set_to_none=True)
    try:
        for batch_no, batch in enumerate(loader):
            step, micro = divmod(batch_no, accum)
            group = min(accum, batches - step * accum)  # batches in this optimizer step
            inputs = _to_device(batch["inputs"], dist.device, cfg.channels_last)
            # DDP all-reduces the gradients on a group's last batch only
            syncing = micro + 1 == group or not isinstance(net, DistributedDataParallel)
            with contextlib.nullcontext() if syncing else net.no_sync():
                with autocast(trainer.amp_dtype, dist.device):
                    out = net(inputs, batch["labels"])
                if fired is not None:
                    add_counts(fired, out.get("fired", {}))
                trainer.scaler.scale(out["loss"] / group).backward()
            if micro + 1 == group:
                if epoch < cfg.warmup_epochs:
                    warm_up(trainer.optimizer, scheduled,
                            (epoch * steps + step + 1) / (cfg.warmup_epochs * steps))
                _update(trainer, cfg, epoch * steps + step + 1)
            shown.add(out, batch_no + 1)
    finally:
        shown.close()
    return shown.means()


def _update(trainer: Trainer, cfg: Config, step: int) -> None:
    """One optimizer step from the accumulated gradients: clip them (``cfg.grad_clip_norm``),
    step, clear them, and move the EMA; ``step`` counts the run's optimizer steps from 1."""
    clip_gradients(trainer.model, trainer.optimizer, trainer.scaler, cfg.grad_clip_norm)
    trainer.scaler.step(trainer.optimizer)
    trainer.scaler.update()
    trainer.optimizer.zero_grad(set_to_none=True)
    if trainer.ema is not None:
        trainer.ema.update(trainer.model, step=step)


def end_epoch(trainer: Trainer, cfg: Config, run_dir: Path, dist: DistInfo, epoch: int,
              means: dict[str, float], seconds: float, progress: bool,
              val: dict[str, float] | None = None) -> None:
    """Step the schedule, record the epoch's row (with the validation scores ``val``, when it
    validated) and save the checkpoint, then the best weights when ``val`` beats them (rank 0)."""
    lr = trainer.optimizer.param_groups[0]["lr"]
    trainer.scheduler.step()
    row = {"epoch": epoch + 1, **means, **(val or {}), "lr": lr, "seconds": seconds}
    trainer.history.append(row)
    new_best = improved_best(trainer.best, val, epoch + 1) if val else None
    trainer.best = new_best or trainer.best
    states = _gather_rng(dist)
    if dist.is_main:
        history = trainer.history
        write_metrics(run_dir, history)
        _plot(history, means, cfg, run_dir)
        update_run_info(run_dir, {RUN_KEY: fired_record(trainer.fired["counts"],
                                                        trainer.fired["epochs"])})
        state = {"optimizer": trainer.optimizer.state_dict(),
                 "scheduler": trainer.scheduler.state_dict(),
                 "scaler": trainer.scaler.state_dict(), "rng": states, "best": trainer.best,
                 "fired": trainer.fired}
        if trainer.ema is not None:  # the weights file holds the EMA's, resume needs these too
            state["training_weights"] = {k: v.detach().cpu()
                                         for k, v in trainer.model.state_dict().items()}
        save_checkpoint(run_dir, trainer.evaluated, state, epoch + 1)
        if new_best:
            save_best(run_dir, trainer.evaluated, new_best)
        if progress:
            parts = " ".join(f"{k} {v:.4f}" for k, v in {**means, **(val or {})}.items())
            print(f"epoch {epoch + 1}/{cfg.epochs} {parts} ({seconds:.1f}s)"
                  f"{' best' if new_best else ''}", flush=True)
    barrier(dist)


def _plot(history: list[dict], loss_keys, cfg: Config, run_dir: Path) -> None:
    """``losses.png`` (the curves of ``loss_keys``) and, once the run validated, ``val.png``."""
    val_keys = [k for k in dict.fromkeys(k for r in history for k in r) if k.startswith("val_")]
    for keys, name, title, ylabel in ((list(loss_keys), "losses.png", "losses", "loss"),
                                      (val_keys, "val.png", "validation", "mAP")):
        if keys:
            plot_curves({k: [(r["epoch"], r[k]) for r in history if k in r] for k in keys},
                        run_dir / name, f"{cfg.method} {title}", ylabel)


def fit(cfg: Config, data_root: Path, run_dir: Path, resume: bool = False, progress: bool = True,
        cache_dir: Path | None = None, device: str = "auto") -> FitResult:
    """Train ``cfg`` on the dataset at ``data_root``, writing everything into ``run_dir``.

    Args:
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``
            (:func:`~dcinet.distributed.resolve_device`); under ``torchrun`` each process
            takes GPU ``LOCAL_RANK``.
    Raises:
        DcinetError: see :func:`prepare`; a device that is not there, or settings it cannot run
            (:func:`~dcinet.train.device.check_device_config`); or a non-finite loss.
    """
    dist = init_distributed(device)
    check_device_config(cfg, dist)
    configure_backends(cfg, dist.device)
    run_dir = Path(run_dir)
    seed_everything(cfg.seed + dist.rank, cfg.deterministic)  # before the model's initialisation
    run = prepare(cfg, Path(data_root), run_dir, resume, dist, cache_dir)
    cfg = run.cfg
    if progress and dist.is_main:
        for note in run.notes:
            print(f"note: {note}", flush=True)
    with _removed_on_early_failure(run_dir, enabled=dist.is_main and not resume):
        trainer = start_run(cfg, run, run_dir, resume, dist, progress)
        net = wrap_for_training(trainer.model, cfg, dist)
        for epoch in range(trainer.start_epoch, cfg.epochs):
            started = time.perf_counter()
            run.loader.batch_sampler.set_epoch(epoch)  # the epoch travels to the workers in the keys
            fired: dict = {}
            means = train_one_epoch(net, run.loader, trainer, cfg, dist, epoch, progress, fired)
            add_counts(trainer.fired["counts"], sum_over_ranks(fired, dist))
            trainer.fired["epochs"] += 1
            seconds = time.perf_counter() - started
            val = None
            if run.val_samples and validation_due(cfg, epoch):
                val = validate(trainer.evaluated, cfg, run.collection.classes, run.modalities,
                               run.val_samples, dist)
            end_epoch(trainer, cfg, run_dir, dist, epoch, means, seconds, progress, val)
    return FitResult(run_dir, trainer.evaluated, trainer.history, run.skipped)


def train_or_resume(cfg: Config, data_root: Path, run_dir: Path, progress: bool = True,
                    device: str = "auto") -> list[dict]:
    """The history of the run in ``run_dir``: reused when it finished ``cfg.epochs``, resumed
    when it stopped earlier, trained when there is none.

    Raises:
        DcinetError: ``run_dir`` holds a run of another configuration (finished or not).
    """
    history = read_metrics(run_dir)
    if history and history[-1]["epoch"] >= cfg.epochs:
        changed = config_changes(read_run(run_dir)[0], cfg)
        if changed:
            raise DcinetError(f"{run_dir} holds a finished run of another configuration "
                              f"({changed}); choose another --out")
        if progress:
            print(f"reusing the finished run in {run_dir}", flush=True)
        return history
    return fit(cfg, data_root, run_dir, resume=(run_dir / CONFIG_FILE).exists(),
               progress=progress, device=device).history


@contextlib.contextmanager
def _removed_on_early_failure(run_dir: Path, enabled: bool) -> Iterator[None]:
    """Remove what this run wrote into ``run_dir`` if it fails (or is interrupted) before its
    first checkpoint: the files that were not there before, and the folder if it made it."""
    existed = run_dir.is_dir()
    before = set(run_dir.iterdir()) if existed else set()
    try:
        yield
    except BaseException:
        if enabled and run_dir.is_dir() and not (run_dir / POINTER).exists():
            for path in set(run_dir.iterdir()) - before:
                path.unlink(missing_ok=True)
            if not existed and not any(run_dir.iterdir()):
                run_dir.rmdir()
        raise


def _gather_rng(dist: DistInfo) -> list[dict]:
    """Every rank's RNG state (rank order), so that each rank resumes its own stream."""
    return all_gather(rng_state(), dist)
