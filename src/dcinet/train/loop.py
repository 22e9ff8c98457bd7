"""The training loop: ``fit`` a config on a dataset into a run directory.

One epoch = the multimodal batch sampler's steps; each step calls the model's ``forward``
(which returns ``{"loss": L_sum, "parts": {...}}``), backpropagates, steps the optimizer. After
every epoch, rank 0 appends the per-loss means to ``metrics.csv``, redraws ``losses.png`` (the
paper's Fig. 5) and writes an atomic checkpoint. ``resume=True`` continues from the latest
checkpoint with the saved RNG states, so the result is bit-identical to an uninterrupted run on
CPU with ``deterministic=true``. A NaN or inf loss stops the run; the last good checkpoint stays.
"""

from __future__ import annotations

import contextlib
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from dcinet.config import Config, save_config
from dcinet.data.dataset import build_train_loader, train_modalities
from dcinet.data.readers import read_configured
from dcinet.errors import DcinetError
from dcinet.models import build_model
from dcinet.train.checkpoint import (
    POINTER,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from dcinet.train.distributed import (
    DistInfo,
    any_rank,
    barrier,
    init_distributed,
    mean_across_ranks,
)
from dcinet.train.plots import plot_curves
from dcinet.train.runs import CONFIG_FILE, check_resume, read_metrics, write_metrics, write_run_info


@dataclass
class FitResult:
    run_dir: Path
    model: torch.nn.Module
    history: list[dict]
    skipped: list


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed Python, NumPy and torch; optionally force deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def make_optimizer(cfg: Config, model: torch.nn.Module):
    """Momentum SGD (§4.2) and the epoch-level learning-rate schedule."""
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    if cfg.scheduler == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    elif cfg.scheduler == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=0.1)
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    return optimizer, scheduler


def _to_device(batch: dict, device: torch.device, channels_last: bool) -> tuple[dict, dict]:
    inputs = {}
    for mod, x in batch["inputs"].items():
        x = x.to(device, non_blocking=True)
        if channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        inputs[mod] = x
    labels = {mod: y.to(device, non_blocking=True) for mod, y in batch["labels"].items()}
    return inputs, labels


def train_one_epoch(model, loader, optimizer, scaler, cfg: Config, dist: DistInfo, epoch: int,
                    progress: bool) -> dict[str, float]:
    """Run one epoch; returns the mean of ``loss`` and of every loss part over its steps."""
    model.train()
    use_amp = cfg.amp and dist.device.type == "cuda"
    channels_last = cfg.channels_last and dist.device.type == "cuda"
    sums: dict[str, float] = {}
    steps = len(loader)
    bar = None
    if progress and dist.is_main and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False)
    for step, batch in enumerate(loader):
        inputs, labels = _to_device(batch, dist.device, channels_last)
        autocast = torch.autocast("cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext()
        with autocast:
            out = model(inputs, labels)
        loss = out["loss"]
        if any_rank(not bool(torch.isfinite(loss.detach())), dist):
            raise DcinetError(
                f"training stopped: the loss became {loss.item()} at epoch {epoch + 1}, step "
                f"{step + 1}; the last good checkpoint is kept (lower lr or check the data)"
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        values = {"loss": loss.item(), **{k: v.item() for k, v in out["parts"].items()}}
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + v
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{values['loss']:.3f}")
        elif progress and dist.is_main and (step + 1) % cfg.log_every == 0:
            print(f"epoch {epoch + 1}/{cfg.epochs} step {step + 1}/{steps} loss {values['loss']:.4f}",
                  flush=True)
    if bar is not None:
        bar.close()
    return mean_across_ranks({k: v / max(steps, 1) for k, v in sums.items()}, dist)


def fit(cfg: Config, data_root: Path, run_dir: Path, resume: bool = False, progress: bool = True,
        cache_dir: Path | None = None) -> FitResult:
    """Train ``cfg`` on the dataset at ``data_root``, writing everything into ``run_dir``.

    Raises:
        DcinetError: bad data (unless ``cfg.skip_bad``), an existing run without ``resume``, a
            resume with another config or dataset, or a non-finite loss.
    """
    dist = init_distributed()
    run_dir = Path(run_dir)
    reader_problems: list = []
    collection = read_configured(Path(data_root), cfg, reader_problems if cfg.skip_bad else None)
    modalities = train_modalities(collection, cfg)
    if resume:
        check_resume(run_dir, cfg, collection)
    elif (run_dir / CONFIG_FILE).exists():
        raise DcinetError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    barrier(dist)  # every rank has checked the run directory before rank 0 writes into it

    seed_everything(cfg.seed + dist.rank, cfg.deterministic)
    loader, skipped = build_train_loader(collection, cfg, rank=dist.rank, world_size=dist.world_size,
                                         skip_bad=cfg.skip_bad, cache_dir=cache_dir)
    skipped = reader_problems + skipped
    if dist.is_main:  # only once the data passed its checks: a refused run leaves no run directory
        write_run_info(run_dir, cfg, collection, modalities)
    barrier(dist)
    if dist.is_main and skipped:
        (run_dir / "skipped.txt").write_text("".join(f"{p.format()}\n" for p in skipped))
        print(f"skipped {len(skipped)} bad files (listed in {run_dir / 'skipped.txt'})", flush=True)
    model = build_model(cfg, collection.num_classes, modalities).to(dist.device)
    if cfg.channels_last and dist.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer, scheduler = make_optimizer(cfg, model)
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp and dist.device.type == "cuda")

    start_epoch, history = 0, []
    if resume and not (run_dir / POINTER).exists():  # stopped before its first checkpoint
        if dist.is_main and progress:
            print(f"{run_dir} has no checkpoint yet: starting it from epoch 1", flush=True)
    elif resume:
        weights, state = load_checkpoint(run_dir, map_location=dist.device)
        model.load_state_dict(weights)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch = int(state["epoch"])
        set_rng_state(state["rng"][dist.rank] if dist.rank < len(state["rng"]) else state["rng"][0])
        history = [row for row in read_metrics(run_dir) if row["epoch"] <= start_epoch]
        if dist.is_main:
            save_config(cfg, run_dir / CONFIG_FILE)
            print(f"resuming {run_dir} after epoch {start_epoch}", flush=True)

    net = DistributedDataParallel(model) if dist.enabled else model
    for epoch in range(start_epoch, cfg.epochs):
        started = time.perf_counter()
        loader.batch_sampler.set_epoch(epoch)
        loader.generator.manual_seed(cfg.seed * 100_003 + epoch * 1_009 + dist.rank)  # worker seeds
        means = train_one_epoch(net, loader, optimizer, scaler, cfg, dist, epoch, progress)
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        row = {"epoch": epoch + 1, **means, "lr": lr, "seconds": time.perf_counter() - started}
        history.append(row)
        states = _gather_rng(dist)
        if dist.is_main:
            write_metrics(run_dir, history)
            plot_curves({k: [(r["epoch"], r[k]) for r in history if k in r]
                         for k in means}, run_dir / "losses.png", f"{cfg.method} losses")
            state = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "scaler": scaler.state_dict(), "rng": states}
            save_checkpoint(run_dir, model, state, epoch + 1)
            if progress:
                parts = " ".join(f"{k} {v:.4f}" for k, v in means.items())
                print(f"epoch {epoch + 1}/{cfg.epochs} {parts} ({row['seconds']:.1f}s)", flush=True)
        barrier(dist)
    return FitResult(run_dir, model, history, skipped)


def _gather_rng(dist: DistInfo) -> list[dict]:
    """Every rank's RNG state (rank order), so that each rank resumes its own stream."""
    state = rng_state()
    if not dist.enabled:
        return [state]
    gathered: list = [None] * dist.world_size
    torch.distributed.all_gather_object(gathered, state)
    return gathered
