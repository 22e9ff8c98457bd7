"""Training-step time of DCINet (CMSI + CMCI) against the plain shared-backbone step.

Both models are built from the paper preset with the same backbone, seed, batch (b per modality
x image/audio/text, synthetic tensors) and process; one step = forward + backward + SGD step.
Repetitions alternate between the two models (and which goes first), after warm-up steps, and
the medians are compared. The interaction step costs sub-module 2 a second time (pooling + fc
at layer4; stages k+1..4 at lower layers) plus CMSI/CMCI's copies, and the second head pass's
backward; that extra work is also timed alone (``interaction_only_s``), a figure far less
sensitive to a busy machine than the difference of two full-step medians. Run: ``python bench/bench_step.py [--backbone resnet50] [--img-size 224] [--json F]``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import numpy as np
import torch

from dcinet.config import load_config
from dcinet.data.text import VOCAB_SIZE
from dcinet.models.factory import create_model
from dcinet.train.loop import make_optimizer

MODALITIES = ["image", "audio", "text"]
NUM_CLASSES = 200


def _batch(cfg, b: int) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(0)
    inputs = {m: torch.randn(b, 3, cfg.img_size, cfg.img_size, generator=g) for m in ("image", "audio")}
    inputs["text"] = torch.randint(2, VOCAB_SIZE, (b, cfg.text_len), generator=g)
    labels = {m: torch.randint(0, NUM_CLASSES, (b,), generator=g) for m in MODALITIES}
    return inputs, labels


def _stepper(cfg):
    torch.manual_seed(cfg.seed)
    model = create_model(cfg, NUM_CLASSES, MODALITIES).train()
    optimizer, _ = make_optimizer(cfg, model)

    def step(inputs: dict, labels: dict) -> float:
        t0 = time.perf_counter()
        loss = model(inputs, labels)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - t0

    return step


def interaction_seconds(cfg, inputs: dict, labels: dict, reps: int) -> float:
    """Median time of the interaction step's extra work alone: CMSI + CMCI + sub-module 2 on the
    mixed maps, forward and backward (from fixed sub-module 1 maps)."""
    torch.manual_seed(cfg.seed)
    model = create_model(cfg, NUM_CLASSES, MODALITIES).train()
    with torch.no_grad():
        maps = model.ccrn.forward_features(torch.cat([model.to_image(inputs[m], m) for m in MODALITIES]))
    y = torch.cat([labels[m] for m in MODALITIES])
    sizes = [len(labels[m]) for m in MODALITIES]
    times = []
    for _ in range(reps):
        x = maps.clone().requires_grad_(True)
        t0 = time.perf_counter()
        model.dual_loss(x, y, sizes, MODALITIES)[0].backward()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="resnet50")
    ap.add_argument("--layer", type=int, default=4)
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=8, help="samples per modality (x 3 modalities)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    common = [f"backbone={args.backbone}", f"layer={args.layer}", f"img_size={args.img_size}",
              f"resize={max(args.img_size, 510)}", f"batch_per_modality={args.batch}",
              "pretrained=null"]  # timing only: no weights to download
    steps = {name: _stepper(load_config("paper", common + [f"interaction={name}"]))
             for name in ("cmsi+cmci", "none")}
    inputs, labels = _batch(load_config("paper", common), args.batch)
    np.random.seed(0)
    times: dict[str, list[float]] = {name: [] for name in steps}
    order = list(steps)
    for rep in range(args.warmup + args.reps):
        for name in order:
            seconds = steps[name](inputs, labels)
            if rep >= args.warmup:
                times[name].append(seconds)
        order.reverse()
    dcinet, plain = statistics.median(times["cmsi+cmci"]), statistics.median(times["none"])
    extra = interaction_seconds(load_config("paper", common), inputs, labels, args.reps)
    out = {
        "backbone": args.backbone, "layer": args.layer, "img_size": args.img_size,
        "batch": f"{args.batch} x 3 modalities", "threads": torch.get_num_threads(),
        "reps": args.reps, "dcinet_step_s": dcinet, "plain_step_s": plain, "ratio": dcinet / plain,
        "interaction_only_s": extra, "interaction_only_ratio": (plain + extra) / plain,
        "peak_rss_mb_both_models": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    for k, v in out.items():
        print(f"{k:>24}: {v:.3f}" if isinstance(v, float) else f"{k:>24}: {v}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({**out, "times": times}, fh, indent=1)


if __name__ == "__main__":
    main()
