"""Paper-preset throughput on a CUDA GPU: the model-only step, the real training loop with its data
loading, AMP dtypes, ``compile``, evaluation time, and the projected time of the paper's 150
epochs on PKU FG-XMedia.

Model-only steps: synthetic tensors of the paper's shapes (the preset's BiT ResNetV2-50x1, 448 px,
b = 8 per modality x image/audio/text, channels_last) feed the real model, optimizer, autocast
and scaler (``dcinet.train.device``), labels on the host as the loop passes them; timed for
DCINet with bf16 and with fp16, for the plain shared network (``interaction=none``: no CMSI / CMCI
and no second pass through sub-module 2), and for DCINet with ``compile=true`` (its first step,
the compilation, timed apart).

The real loop: ``dcinet.train.loop.train_one_epoch`` itself on a dataset made by the built-in
generator at the preset's 448 px, with ``num_workers`` DataLoader workers decoding every sample at
every step (``decoded_cache_mb=0``, as PKU FG-XMedia's 16k training items do not fit the cache);
one warm-up epoch (workers start, cuDNN autotunes), then one timed epoch. ``loop_over_model`` is
its step rate over the model-only rate of the same settings (target >= 0.90).

Epoch length is that of PKU FG-XMedia with our sampler: ceil(6,000 / 8) = 750 steps (the largest
modality, audio). Also timed: building the model with the preset's timm weights read by timm
from a local file (no network). Run with ``bash bench/gpu.sh``; ``--device cpu --steps 2
--img-size 64 --workers 0`` smoke-tests it anywhere (no compile timing on the CPU).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path
from unittest import mock

import timm
import torch
from safetensors.torch import save_file

from dcinet.config import load_config
from dcinet.data.text import VOCAB_SIZE
from dcinet.distributed import DistInfo
from dcinet.models import pretrained
from dcinet.models.factory import create_model
from dcinet.train.device import (
    amp_dtype,
    autocast,
    compile_halves,
    configure_backends,
    make_scaler,
)
from dcinet.train.loop import make_optimizer, prepare, start_run, train_one_epoch

PKU_TRAIN = {"image": 5994, "audio": 6000, "text": 4000}
PKU_TEST = {"image": 5794, "audio": 6000, "text": 4000}
PKU_CLASSES = 200


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batch(cfg, device, b: int):
    """Inputs on ``device`` (NHWC with ``channels_last``), labels on the host (as the loop)."""
    inputs = {m: torch.randn(b, 3, cfg.img_size, cfg.img_size, device=device)
              for m in ("image", "audio")}
    inputs["text"] = torch.randint(2, VOCAB_SIZE, (b, cfg.text_len), device=device)
    if cfg.channels_last:
        inputs = {m: x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
                  for m, x in inputs.items()}
    labels = {m: torch.arange(b) % PKU_CLASSES for m in inputs}
    return inputs, labels


def train_step_times(cfg, device: torch.device, steps: int, warmup: int) -> dict:
    """Seconds of each timed model-only step, and of the first step (compilation, autotuning)."""
    model = create_model(cfg, PKU_CLASSES, ["image", "audio", "text"]).to(device)
    optimizer, _ = make_optimizer(cfg, model)
    dtype = amp_dtype(cfg, device)
    scaler = make_scaler(dtype)
    if cfg.compile:
        compile_halves(model)
    inputs, labels = _batch(cfg, device, cfg.batch_per_modality)
    times = []
    for _ in range(warmup + steps):
        _sync(device)
        t0 = time.perf_counter()
        with autocast(dtype, device):
            loss = model(inputs, labels)["loss"]
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return {"median_step_s": statistics.median(times[warmup:]), "first_step_s": times[0]}


def loop_epoch_seconds(cfg, device: torch.device, classes: int, per_class: int,
                       workers: int) -> dict:
    """The real ``train_one_epoch``, data loading included: seconds of a timed epoch (after a
    warm-up one) and its steps, on a generated dataset at ``cfg.img_size``."""
    from dcinet.sources.synth import synthesize

    with tempfile.TemporaryDirectory() as tmp:
        data = synthesize(Path(tmp) / "data", classes=classes, per_class=per_class, seed=0,
                          image_size=cfg.resize, progress=False, workers=max(1, workers))
        cfg = replace(cfg, num_workers=workers, decoded_cache_mb=0, epochs=2)
        dist = DistInfo(device=device)
        run = prepare(cfg, data, Path(tmp) / "run", False, dist)
        trainer = start_run(cfg, run, Path(tmp) / "run", False, dist, progress=False)
        if cfg.compile:
            compile_halves(trainer.model)
        seconds = []
        for epoch in range(2):
            run.loader.batch_sampler.set_epoch(epoch)
            _sync(device)
            t0 = time.perf_counter()
            train_one_epoch(trainer.model, run.loader, trainer, cfg, dist, epoch, progress=False)
            _sync(device)
            seconds.append(time.perf_counter() - t0)
        return {"loop_epoch_s": seconds[1], "loop_steps": len(run.loader),
                "loop_warmup_epoch_s": seconds[0]}


@torch.no_grad()
def eval_seconds(cfg, device: torch.device, batch: int = 64) -> float:
    """Time to encode every PKU FG-XMedia test item (CCRN only, float16 autocast as evaluate)."""
    model = create_model(cfg, PKU_CLASSES, ["image", "audio", "text"]).to(device).eval()
    inputs, _ = _batch(cfg, device, batch)
    dtype = torch.float16 if cfg.amp and device.type == "cuda" else None
    total = 0.0
    for modality, n in PKU_TEST.items():
        with autocast(dtype, device):
            model.encode(inputs[modality], modality)  # warm-up
            _sync(device)
            t0 = time.perf_counter()
            reps = 3
            for _ in range(reps):
                model.encode(inputs[modality], modality)
            _sync(device)
        total += (time.perf_counter() - t0) / reps * math.ceil(n / batch)
    return total


def pretrained_load_seconds(cfg) -> float:
    """Seconds for ``create_model`` to build the model with its timm weights (``cfg.pretrained``)
    read by timm from a local file: a state dict of the tag's architecture written here (random
    values) stands in for the hub's file."""
    tag = pretrained.timm_tag(cfg.pretrained, cfg.backbone)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "weights.safetensors"
        save_file({k: v.contiguous() for k, v in timm.create_model(tag).state_dict().items()},
                  str(path))
        local = functools.partial(pretrained.timm_weights,
                                  pretrained_cfg_overlay={"file": str(path)})
        with mock.patch.object(pretrained, "timm_weights", local), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the classifier of another width, reported
            t0 = time.perf_counter()
            create_model(cfg, PKU_CLASSES, ["image", "audio", "text"])
            return time.perf_counter() - t0


def _write(out: dict, path: str | None) -> None:
    """Write what was measured so far (a later failure keeps it)."""
    if path:
        Path(path).write_text(json.dumps(out, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--img-size", type=int, default=448)
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                    help="DataLoader workers of the real loop")
    ap.add_argument("--loop-classes", type=int, default=16)
    ap.add_argument("--loop-per-class", type=int, default=10)
    ap.add_argument("--json", help="write the figures as JSON (after each measurement)")
    args = ap.parse_args()
    device = torch.device(args.device)
    sizes = [f"img_size={args.img_size}", f"resize={max(args.img_size, round(args.img_size * 510 / 448))}"]
    cfg = load_config("paper", [*sizes, "pretrained=null"])  # the timing needs no weights
    configure_backends(cfg, device)  # cudnn.benchmark on CUDA, as dcinet train
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    dtype = amp_dtype(cfg, device)
    out: dict = {"device": name, "img_size": cfg.img_size,
                 "batch": f"{cfg.batch_per_modality} x 3 modalities",
                 "amp_dtype_auto": str(dtype).replace("torch.", "") if dtype else "float32"}
    steps_per_epoch = math.ceil(max(PKU_TRAIN.values()) / cfg.batch_per_modality)
    out["steps_per_epoch"] = steps_per_epoch

    step = train_step_times(cfg, device, args.steps, args.warmup)["median_step_s"]
    out.update(median_step_s=step, samples_per_s=3 * cfg.batch_per_modality / step)
    _write(out, args.json)
    plain = train_step_times(replace(cfg, interaction="none"), device, args.steps, args.warmup)
    out.update(plain_median_step_s=plain["median_step_s"],
               dcinet_over_plain=step / plain["median_step_s"])
    _write(out, args.json)
    if device.type == "cuda":
        for key in ("bf16", "fp16"):
            if key == "bf16" and not torch.cuda.is_bf16_supported():
                continue
            timed = train_step_times(replace(cfg, amp_dtype=key), device, args.steps, args.warmup)
            out[f"{key}_median_step_s"] = timed["median_step_s"]
            _write(out, args.json)
        if "bf16_median_step_s" in out:
            out["bf16_over_fp16"] = out["bf16_median_step_s"] / out["fp16_median_step_s"]
        compiled = train_step_times(replace(cfg, compile=True), device, args.steps, args.warmup)
        out.update(compile_median_step_s=compiled["median_step_s"],
                   compile_first_step_s=compiled["first_step_s"],
                   compile_over_eager=compiled["median_step_s"] / step)
        _write(out, args.json)

    loop = loop_epoch_seconds(cfg, device, args.loop_classes, args.loop_per_class, args.workers)
    loop_step = loop["loop_epoch_s"] / loop["loop_steps"]
    out.update(loop, loop_workers=args.workers, loop_step_s=loop_step,
               loop_over_model=step / loop_step)
    epoch_s = loop_step * steps_per_epoch  # the real loop's rate
    out.update(epoch_min=epoch_s / 60, projected_150_epochs_h=epoch_s * cfg.epochs / 3600)
    _write(out, args.json)
    out["eval_encode_s"] = eval_seconds(cfg, device)
    out["pretrained_load_s"] = pretrained_load_seconds(load_config("paper", sizes))
    if device.type == "cuda":
        out["peak_gpu_mem_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    _write(out, args.json)
    for k, v in out.items():
        print(f"{k:>24}: {v:.3f}" if isinstance(v, float) else f"{k:>24}: {v}")


if __name__ == "__main__":
    main()
