"""Paper-preset throughput on a CUDA GPU: training steps/s and evaluation time, and the projected
time of the paper's 150 epochs on PKU FG-XMedia.

DCINet's step is timed against the plain shared network's (``interaction=none``: no CMSI / CMCI
and no second pass through sub-module 2). Synthetic tensors of the paper's shapes (the preset's ResNet-50, BiT ResNetV2-50x1, 448 px, b = 8
per modality x image/audio/text, AMP, channels_last) feed the real model and optimizer, so no
dataset is needed. Epoch length is that of PKU FG-XMedia with our sampler: ceil(6,000 / 8) = 750
steps (the largest modality, audio). Also timed: building the model with the preset's timm
weights read by timm from a local file (no network). Run with ``bash bench/gpu.sh``;
``--device cpu --steps 3 --img-size 224`` smoke-tests it anywhere.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
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
from dcinet.models import pretrained
from dcinet.models.factory import create_model
from dcinet.train.loop import make_optimizer

PKU_TRAIN = {"image": 5994, "audio": 6000, "text": 4000}
PKU_TEST = {"image": 5794, "audio": 6000, "text": 4000}
PKU_CLASSES = 200


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _batch(cfg, device, b: int):
    inputs = {m: torch.randn(b, 3, cfg.img_size, cfg.img_size, device=device)
              for m in ("image", "audio")}
    inputs["text"] = torch.randint(2, VOCAB_SIZE, (b, cfg.text_len), device=device)
    if cfg.channels_last and device.type == "cuda":
        inputs = {m: x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
                  for m, x in inputs.items()}
    labels = {m: torch.arange(b, device=device) % PKU_CLASSES for m in inputs}
    return inputs, labels


def train_step_times(cfg, device: torch.device, steps: int, warmup: int) -> list[float]:
    model = create_model(cfg, PKU_CLASSES, ["image", "audio", "text"]).to(device)
    if cfg.channels_last and device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    optimizer, _ = make_optimizer(cfg, model)
    use_amp = cfg.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    inputs, labels = _batch(cfg, device, cfg.batch_per_modality)
    times = []
    for i in range(warmup + steps):
        _sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            loss = model(inputs, labels)["loss"]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


@torch.no_grad()
def eval_seconds(cfg, device: torch.device, batch: int = 64) -> float:
    """Time to encode every PKU FG-XMedia test item (CCRN only)."""
    model = create_model(cfg, PKU_CLASSES, ["image", "audio", "text"]).to(device).eval()
    use_amp = cfg.amp and device.type == "cuda"
    inputs, _ = _batch(cfg, device, batch)
    total = 0.0
    for modality, n in PKU_TEST.items():
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--img-size", type=int, default=448)
    ap.add_argument("--json", help="write the figures as JSON")
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    sizes = [f"img_size={args.img_size}", f"resize={max(args.img_size, 510)}"]
    load_s = pretrained_load_seconds(load_config("paper", sizes))
    cfg = load_config("paper", [*sizes, "pretrained=null"])  # the timing needs no weights
    times = train_step_times(cfg, device, args.steps, args.warmup)
    step = statistics.median(times)
    plain = replace(cfg, interaction="none")  # the shared network alone: no CMSI / CMCI pass
    plain_step = statistics.median(train_step_times(plain, device, args.steps, args.warmup))
    steps_per_epoch = math.ceil(max(PKU_TRAIN.values()) / cfg.batch_per_modality)
    epoch_s = step * steps_per_epoch
    evaluation = eval_seconds(cfg, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    out = {
        "device": name, "img_size": cfg.img_size, "batch": f"{cfg.batch_per_modality} x 3 modalities",
        "amp": cfg.amp and device.type == "cuda", "median_step_s": step,
        "plain_median_step_s": plain_step, "dcinet_over_plain": step / plain_step,
        "samples_per_s": 3 * cfg.batch_per_modality / step, "steps_per_epoch": steps_per_epoch,
        "epoch_min": epoch_s / 60, "projected_150_epochs_h": epoch_s * cfg.epochs / 3600,
        "eval_encode_s": evaluation, "pretrained_load_s": load_s,
        "peak_gpu_mem_gb": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
    }
    for k, v in out.items():
        print(f"{k:>24}: {v:.3f}" if isinstance(v, float) else f"{k:>24}: {v}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
