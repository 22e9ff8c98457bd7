"""Retrieval of species the run never saw: cub100's class-disjoint split, as the deep-metric-learning
literature evaluates CUB (train on the first half of the classes, retrieve among the other half).

* ``seen``: cub100's first 50 classes (by class id), its own train / test photos;
* ``unseen``: every photo (train and test) of the other 50 classes, all in the test split.

Each seed trains ``--config`` (default ``cpu-pretrained``, as a user would run it) on ``seen``'s
training photos, then ranks image->image (the query left out of its own gallery):

* with the trained run's ``embedding`` (pooled pre-logits), ``logits``, ``softmax`` (the paper's
  feature) and mixes ``softmax+<w>emb`` (the unit softmax beside ``w`` times the unit embedding:
  the softmax ranking with ties broken by the embedding for a small ``w``), and the **frozen**
  ImageNet features of the same backbone with no training (the pooled pre-logits of the preset's
  pretrained weights: the zero-shot baseline a user already has);
* on ``unseen`` (classes the run never saw) and on ``seen``'s test photos (the trained classes),
  to see which feature ranks better for each.

Metrics: R@1 and mAP@R (pytorch-metric-learning's definitions, as DML papers report for CUB) and
mAP, each with its 95 % query-bootstrap interval; over the seeds their mean +- sd, and the paired
difference of a feature against the frozen baseline with a two-level (seeds x queries) bootstrap
interval (:func:`dcinet.retrieval.bootstrap.paired_difference`).

A run that already finished in its folder is reused, so a second call costs the evaluations only.

Run: ``python bench/unseen_classes.py OUT [--seeds 3] [--config cpu-pretrained] [--json F]
[--md F] [key=value ...]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from bench_concurrent import cpu_model

from dcinet.app.cli import configure_threads

configure_threads(os.environ)  # as the dcinet command does, before torch loads its OpenMP runtime

import numpy as np  # noqa: E402

from dcinet.config import load_config, parse_overrides  # noqa: E402
from dcinet.data.readers import read_collection  # noqa: E402
from dcinet.data.records import Sample  # noqa: E402
from dcinet.retrieval.bootstrap import QueryBootstrap, paired_difference  # noqa: E402
from dcinet.retrieval.directions import evaluate_directions  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cub100"
SEEN_CLASSES = 50
METRICS = ("R@1", "mAP@R", "mAP")
MIX_WEIGHTS = (0.1, 0.5, 1.0)
"""Weights w of the embedding beside the softmax in the mixed features ``softmax+<w>emb``."""
DIRECTION = "i2i"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="folder for the split datasets, runs and results")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="cub100 (CUB layout)")
    p.add_argument("--cub-train-flag", type=int, default=0,
                   help="split flag that marks train photos (cub100: 0, official CUB: 1)")
    p.add_argument("--config", default="cpu-pretrained")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--json", type=Path, help="write every figure here")
    p.add_argument("--md", type=Path, help="write the markdown tables here")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    return p.parse_intermixed_args(argv)


def _link(sample: Sample, root: Path, split: str) -> None:
    """``root/image/<split>/<class>/<file>`` -> the cub100 photo (a symlink)."""
    target = root / "image" / split / sample.class_name / sample.path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.is_symlink():
        target.symlink_to(sample.path.resolve())


def write_splits(data: Path, out: Path, train_flag: int) -> tuple[Path, Path, dict]:
    """The ``seen`` and ``unseen`` folder datasets (symlinks to the photos) and their counts."""
    collection = read_collection(data, "cub", train_flag=train_flag)
    if collection.num_classes < 2 * SEEN_CLASSES:
        raise SystemExit(f"{data} has {collection.num_classes} classes; need {2 * SEEN_CLASSES}")
    seen, unseen = out / "seen", out / "unseen"
    counts = {"seen_train": 0, "seen_test": 0, "unseen": 0}
    for sample in collection.samples:
        if sample.label < SEEN_CLASSES:
            _link(sample, seen, sample.split)
            counts[f"seen_{sample.split}"] += 1
        elif sample.label < 2 * SEEN_CLASSES:
            _link(sample, unseen, "test")
            counts["unseen"] += 1
    return seen, unseen, counts


def image_features(trained, root: Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The candidate features (:func:`~dcinet.retrieval.mixed.candidate_features`) of the test
    photos of ``root`` (``(N, D)`` each) and their ``(N,)`` labels."""
    from dcinet.retrieval.embed import gallery_samples
    from dcinet.retrieval.features import extract_features
    from dcinet.retrieval.mixed import candidate_features

    samples = gallery_samples(trained, root, split="test").samples
    embedding = extract_features(trained, samples, "embedding")["image"]
    logits = extract_features(trained, samples, "logits")["image"].features
    return candidate_features(embedding.features, logits, MIX_WEIGHTS), embedding.labels


def frozen_model(cfg, num_classes: int):
    """The preset's backbone with its pretrained weights and an untrained classifier, as a
    :class:`~dcinet.models.factory.TrainedModel` (only its ``embedding`` feature means anything)."""
    from dcinet.models.factory import TrainedModel, create_model

    model = create_model(cfg, num_classes, ["image"]).eval()
    return TrainedModel(model, cfg, [str(i) for i in range(num_classes)], ["image"], None, None, {})


def per_query(features: np.ndarray, labels: np.ndarray, resamples: int) -> tuple[dict, dict]:
    """Per-query values of :data:`METRICS` (image->image, the query left out) and the figures
    with their intervals."""
    result = evaluate_directions({"image": features}, {"image": labels}, resamples=resamples)
    values = {m: result.per_query[DIRECTION][m] for m in METRICS}
    intervals = result.intervals if resamples else {}
    figures = {m: {"value": float(values[m].mean()),
                   "interval": [float(x) for x in intervals.get(DIRECTION, {}).get(m, (np.nan,) * 2)]}
               for m in METRICS}
    return values, figures


def run(args: argparse.Namespace) -> int:
    from dcinet.models.factory import load_trained
    from dcinet.train.loop import train_or_resume

    out = args.out.resolve()
    seen, unseen, counts = write_splits(args.data, out / "data", args.cub_train_flag)
    print(f"seen: {counts['seen_train']} train / {counts['seen_test']} test photos of "
          f"{SEEN_CLASSES} classes; unseen: {counts['unseen']} photos of {SEEN_CLASSES} classes",
          flush=True)
    overrides = parse_overrides(args.overrides)
    cfg0 = load_config(args.config, {**overrides, "modalities": ["image"]})
    rows: dict[str, list[dict]] = {}  # "<set>/<feature>" -> per seed {metric: per-query values}
    figures: dict[str, list[dict]] = {}
    frozen = frozen_model(cfg0, SEEN_CLASSES)
    for name, root in (("unseen", unseen), ("seen", seen)):
        frozen_features, labels = image_features(frozen, root)
        values, figs = per_query(frozen_features["embedding"], labels, args.resamples)
        rows[f"{name}/frozen"] = [values] * args.seeds
        figures[f"{name}/frozen"] = [figs]
    minutes = []
    for seed in range(args.seeds):
        cfg = replace(cfg0, seed=seed).validate()
        run_dir = out / "runs" / f"seed{seed}"
        start = time.perf_counter()
        train_or_resume(cfg, seen, run_dir, progress=False, device="cpu")
        minutes.append((time.perf_counter() - start) / 60)
        trained = load_trained(run_dir)
        for name, root in (("unseen", unseen), ("seen", seen)):
            features, labels = image_features(trained, root)
            for feature, array in features.items():
                values, figs = per_query(array, labels, args.resamples)
                rows.setdefault(f"{name}/{feature}", []).append(values)
                figures.setdefault(f"{name}/{feature}", []).append(figs)
        print(f"seed {seed}: {minutes[-1]:.1f} min; unseen R@1 embedding "
              f"{figures['unseen/embedding'][-1]['R@1']['value']:.3f}, frozen "
              f"{figures['unseen/frozen'][0]['R@1']['value']:.3f}", flush=True)
    summary = summarise(rows, figures, args)
    summary.update(counts=counts, config=args.config, overrides=args.overrides,
                   train_minutes=minutes, cpu=cpu_model(), threads=os.environ.get("OMP_NUM_THREADS"))
    emit(summary, markdown(summary), args.json, args.md)
    return 0


def emit(summary: dict, text: str, json_path: Path | None, md_path: Path | None) -> None:
    """Print the tables; write every figure to ``json_path`` and the tables to ``md_path``."""
    print(text)
    if json_path:
        json_path.write_text(json.dumps(summary, indent=1) + "\n")
    if md_path:
        md_path.write_text(text + "\n")


def summarise(rows: dict, figures: dict, args: argparse.Namespace) -> dict:
    """Mean +- sd over the seeds of every row and metric, and each trained feature's paired
    difference from the frozen features of the same set."""
    boot = QueryBootstrap(args.resamples or 1000, seed=0)
    table = {}
    for key, per_seed in rows.items():
        entry = {}
        for metric in METRICS:
            means = np.array([v[metric].mean() for v in per_seed])
            entry[metric] = {"mean": float(means.mean()), "sd": float(means.std(ddof=1))
                             if len(means) > 1 and not key.endswith("frozen") else 0.0,
                             "per_seed": [float(x) for x in means]}
            base = f"{key.split('/')[0]}/frozen"
            if key != base:
                diff = paired_difference([{DIRECTION: v[metric]} for v in rows[base]],
                                         [{DIRECTION: v[metric]} for v in per_seed],
                                         {DIRECTION: "image"}, boot)
                entry[metric]["vs_frozen"] = [float(x) for x in diff]
        table[key] = entry
    return {"table": table, "per_seed_figures": figures, "seeds": args.seeds}


def markdown(summary: dict) -> str:
    """One table per set: rows = features, cells = mean +- sd and the paired difference."""
    lines = []
    for name in ("unseen", "seen"):
        lines += [f"**{name} classes** (image->image, query left out; {summary['seeds']} seeds)", "",
                  "| feature | " + " | ".join(METRICS) + " | R@1 - frozen [95 % CI] |",
                  "|---|" + "---|" * (len(METRICS) + 1)]
        for key, entry in summary["table"].items():
            if not key.startswith(name + "/"):
                continue
            cells = [f"{entry[m]['mean']:.3f} ± {entry[m]['sd']:.3f}" for m in METRICS]
            diff = entry["R@1"].get("vs_frozen")
            cells.append("" if diff is None or key.endswith("frozen") else
                         f"{diff[0]:+.3f} [{diff[1]:+.3f}, {diff[2]:+.3f}]")
            lines.append(f"| {key.split('/')[1]} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(run(parse_args()))
