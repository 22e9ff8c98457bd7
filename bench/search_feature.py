"""Which vectors should a gallery hold for cross-modal search of the classes a run was trained on?

``bench/unseen_classes.py`` compares the candidate features on real photos (image->image, seen and
unseen classes). This one compares them where the product's main use is, cross-modal retrieval
(image -> audio, text -> image, ...), on the built-in tri-modal dataset: for each seed, ``dcinet
demo``'s run (``cpu-tiny``, 20 classes x 40 items per modality, 8 epochs), evaluated on its test
split with the paper's protocol (average bimodal mAP, and R@1 and mAP@R) for each candidate of
:func:`~dcinet.retrieval.mixed.candidate_features`: ``embedding``, ``logits``, ``softmax`` and the softmax beside the embedding at
the weights of ``MIX_WEIGHTS`` (the unit softmax and ``w`` x the unit embedding, concatenated).

A run that already finished in its folder is reused.

Run: ``python bench/search_feature.py OUT [--seeds 3] [--json F] [--md F]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from bench_concurrent import cpu_model
from unseen_classes import emit

from dcinet.app.cli import configure_threads

configure_threads(os.environ)  # as the dcinet command does, before torch loads its OpenMP runtime

import numpy as np  # noqa: E402

MIX_WEIGHTS = (0.1, 0.5, 1.0)
METRICS = ("mAP", "mAP@R", "R@1")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--classes", type=int, default=20)
    p.add_argument("--per-class", type=int, default=40)
    p.add_argument("--json", type=Path)
    p.add_argument("--md", type=Path)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="cpu-tiny overrides")
    return p.parse_intermixed_args(argv)


def run(args: argparse.Namespace) -> int:
    from dcinet.config import load_config
    from dcinet.models.factory import load_trained
    from dcinet.retrieval.directions import evaluate_directions
    from dcinet.retrieval.evaluate import split_samples
    from dcinet.retrieval.features import extract_features
    from dcinet.retrieval.mixed import candidate_features
    from dcinet.sources.synth import synthesize
    from dcinet.train.loop import train_or_resume

    table: dict[str, dict[str, list[float]]] = {}
    minutes = []
    for seed in range(args.seeds):
        data = args.out / f"data-seed{seed}"
        if not (data / "synth.json").exists():
            synthesize(data, classes=args.classes, per_class=args.per_class, seed=seed,
                       progress=False)
        cfg = load_config("cpu-tiny", [*args.overrides, f"seed={seed}"])
        started = time.perf_counter()
        train_or_resume(cfg, data, args.out / f"run-seed{seed}", progress=False, device="cpu")
        minutes.append((time.perf_counter() - started) / 60)
        trained = load_trained(args.out / f"run-seed{seed}")
        samples = split_samples(trained, data, None)
        embedding = extract_features(trained, samples, "embedding")
        logits = extract_features(trained, samples, "logits")
        per_modality = {m: candidate_features(embedding[m].features, logits[m].features,
                                              MIX_WEIGHTS) for m in embedding}
        labels = {m: f.labels for m, f in embedding.items()}
        for name in per_modality[next(iter(per_modality))]:
            result = evaluate_directions({m: c[name] for m, c in per_modality.items()}, labels,
                                         resamples=0)
            row = table.setdefault(name, {m: [] for m in METRICS})
            for metric in METRICS:
                row[metric].append(float(np.mean([result.per_query[d][metric].mean()
                                                  for d in result.bimodal])))
        print(f"seed {seed}: {minutes[-1]:.1f} min; average bimodal mAP: " + ", ".join(
            f"{n} {r['mAP'][-1]:.3f}" for n, r in table.items()), flush=True)
    summary = {"table": table, "seeds": args.seeds, "train_minutes": minutes,
               "overrides": args.overrides, "cpu": cpu_model()}
    emit(summary, markdown(summary), args.json, args.md)
    return 0


def markdown(summary: dict) -> str:
    lines = [f"Average over the 6 bimodal directions, built-in dataset test split, "
             f"{summary['seeds']} seeds (mean ± sd)", "",
             "| feature | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for name, row in summary["table"].items():
        cells = [f"{np.mean(v):.3f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.3f}"
                 for v in (row[m] for m in METRICS)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(run(parse_args()))
