"""How often CMSI and CMCI change a map, and CMSI's lambda, without training a network.

Both depend on the batch's labels and the RNG only, never on the maps' values, so the real
sampler (:class:`~dcinet.data.sampler.MultiModalBatchSampler`) draws the batches of one epoch of a
dataset of ``--classes`` x ``--per-class`` training items per modality (image, audio, text), and
the real :func:`~dcinet.models.interaction.cmsi` / :func:`~dcinet.models.interaction.cmci` run on
placeholder maps of ``--side`` x ``--side``; the counts are :meth:`DCINet.dual_loss`'s
(:func:`~dcinet.models.dcinet.count_by_modality`). Prints two Markdown tables: the fraction of
maps CMCI changed per modality, for each sampler and ``cmci_mode``; CMSI's lambda (distinct
values, min, mean, max) for each box setting. Defaults: the built-in dataset's training split
(20 classes x 30), b = 8, class-aware K = 2, 14 x 14 maps (layer4 at 448 px).
Run: ``python bench/bench_fired.py [--classes 20] [--per-class 30] [--b 8] [--side 14] [--json F]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import torch

from dcinet.data.records import Sample
from dcinet.data.sampler import MultiModalBatchSampler
from dcinet.models.dcinet import count_by_modality
from dcinet.models.interaction import MixupSettings, cmci, cmsi
from dcinet.models.shared import modality_ids
from dcinet.train.fired import add_counts, fired_record

MODALITIES = ["image", "audio", "text"]
BOXES = {"minmax [0.5, 0.6] (paper)": MixupSettings(),
         "minmax [0.3, 0.8]": MixupSettings(cutmix_minmax=(0.3, 0.8)),
         "beta (cutmix_alpha 1)": MixupSettings(box="beta")}


def _samples(classes: int, per_class: int) -> list[Sample]:
    return [Sample(m, "train", c, f"c{c}", Path(f"{m}/{c}/{i}"))
            for m in MODALITIES for c in range(classes) for i in range(per_class)]


def one_epoch(samples: list[Sample], b: int, class_aware: bool, k: int, mode: str, side: int,
              seed: int) -> tuple[dict, list[float]]:
    """CMSI -> CMCI on every step of epoch 0: the fired record and CMSI's lambdas."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    sampler = MultiModalBatchSampler(samples, b, seed=seed, class_aware=class_aware, samples_per_class=k)
    total: dict = {}
    lams = []
    labels_of = torch.tensor([s.label for s in samples])
    for step in sampler:
        y = labels_of[step]  # modality-major: b images, b audio, b texts
        ids = modality_ids([b] * len(MODALITIES), torch.device("cpu"))
        maps = torch.zeros(len(step), 3, side, side)
        _, soft, perm, lam, _ = cmsi(maps, y, int(labels_of.max()) + 1)
        lams.append(lam)
        changed = torch.full(ids.shape, lam < 1.0)
        fired = {"cmsi": count_by_modality(MODALITIES, ids[perm], changed=changed)}
        _, _, changed = cmci(maps, soft, y[perm], ids[perm], mode)
        fired["cmci"] = count_by_modality(MODALITIES, ids[perm], changed=changed)
        add_counts(total, fired)
    return fired_record(total, 1), lams


def lambdas(side: int, settings: MixupSettings, steps: int, seed: int) -> list[float]:
    torch.manual_seed(seed)
    np.random.seed(seed)
    maps, labels = torch.zeros(24, 3, side, side), torch.arange(24)
    return [cmsi(maps, labels, 24, settings)[3] for _ in range(steps)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--per-class", type=int, default=30)
    ap.add_argument("--b", type=int, default=8, help="samples per modality per step")
    ap.add_argument("--k", type=int, default=2, help="class-aware samples per class")
    ap.add_argument("--side", type=int, default=14, help="map side (14: layer4 at 448 px)")
    ap.add_argument("--steps", type=int, default=1000, help="CMSI draws per box setting")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    samples = _samples(args.classes, args.per_class)
    result: dict = {"cmci": {}, "lambda": {}}
    print(f"CMCI: fraction of maps changed per modality, one epoch, {args.classes} classes x "
          f"{args.per_class} per modality, b = {args.b}\n")
    print("| sampler | cmci_mode | image | audio | text | all |\n|---|---|---|---|---|---|")
    for sampler, class_aware in (("random (paper)", False), (f"class_aware K={args.k}", True)):
        for mode in ("paper", "symmetric"):
            record, _ = one_epoch(samples, args.b, class_aware, args.k, mode, args.side, args.seed)
            fractions = {m: c["changed_fraction"] for m, c in record["cmci"].items()}
            overall = (sum(c["changed"] for c in record["cmci"].values())
                       / sum(c["maps"] for c in record["cmci"].values()))
            result["cmci"][f"{sampler}/{mode}"] = {**fractions, "all": overall}
            print(f"| {sampler} | {mode} | " + " | ".join(f"{fractions[m]:.3f}" for m in MODALITIES)
                  + f" | {overall:.3f} |")
    print(f"\nCMSI: lambda (each map's own share) over {args.steps} steps on {args.side} x "
          f"{args.side} maps\n")
    print("| box | distinct values | min | mean | max |\n|---|---|---|---|---|")
    for name, settings in BOXES.items():
        lams = lambdas(args.side, settings, args.steps, args.seed)
        row = {"distinct": len(set(lams)), "min": min(lams), "mean": statistics.mean(lams),
               "max": max(lams)}
        result["lambda"][name] = row
        print(f"| {name} | {row['distinct']} | {row['min']:.3f} | {row['mean']:.3f} | {row['max']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
