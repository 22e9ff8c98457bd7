"""The main job on the built-in dataset: generate, train ``cpu-tiny``, evaluate, show queries."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dcinet.app.cli import usable_cores
from dcinet.config import load_config
from dcinet.sources.synth import synthesize

if TYPE_CHECKING:
    from dcinet.retrieval.features import ModalityFeatures

DEMO_CLASSES = 20
DEMO_PER_CLASS = 40


def _say(msg: str) -> None:
    print(msg, flush=True)


def example_queries(features: dict[str, ModalityFeatures], k: int = 5) -> str:
    """For the first test item of each modality, its top-k results over all modalities.

    Returns a text block: query (modality, class, source), then rank, score, modality, class and
    a ✓ when the class matches. The query itself is left out of its own results.
    """
    from dcinet.retrieval.scores import cosine_scores

    modalities = list(features)
    gallery = np.concatenate([features[m].features for m in modalities])
    samples = [s for m in modalities for s in features[m].samples]
    lines = []
    offset = 0
    for m in modalities:
        query = features[m].samples[0]
        scores = np.asarray(cosine_scores(features[m].features[:1], gallery))[0].astype(np.float64)
        scores[offset] = -np.inf  # not the query itself
        order = np.argsort(-scores, kind="stable")[:k]
        lines.append(f"query [{m}] {query.class_name}: {_source(query)}")
        for rank, j in enumerate(order, 1):
            hit = samples[j]
            mark = "✓" if hit.label == query.label else " "
            lines.append(f"  {rank}. {mark} {scores[j]:.3f} [{hit.modality}] {hit.class_name}: "
                         f"{_source(hit)}")
        offset += len(features[m].samples)
    return "\n".join(lines)


def _source(sample) -> str:
    if sample.modality == "text" and sample.path is not None:
        text = sample.path.read_text(encoding="utf-8").strip().replace("\n", " ")
        return f'"{text[:70]}{"…" if len(text) > 70 else ""}"'
    return str(sample.path.name if sample.path is not None else sample.text)


def run_demo(data: Path, out: Path, overrides: list[str] | None = None, seed: int = 0,
             classes: int = DEMO_CLASSES, per_class: int = DEMO_PER_CLASS) -> dict:
    """Generate (or reuse) the built-in dataset (``classes`` x ``per_class`` items per modality)
    in ``data``, train ``cpu-tiny`` with ``overrides`` into ``out/run``, evaluate on the test split
    (``out/results.json``) and print example queries; returns the results (``to_dict``)."""
    started = time.perf_counter()
    cfg = load_config("cpu-tiny", overrides)  # a bad override is refused before any work
    _say(f"[1/4] built-in dataset ({classes} classes x {per_class} per modality) in {data}")
    with ThreadPoolExecutor(1) as pool:
        # the spawned synthesis processes write the dataset while this one loads torch and timm
        dataset = pool.submit(synthesize, data, classes=classes, per_class=per_class, seed=seed,
                              workers=usable_cores())
        from dcinet.models.factory import load_trained
        from dcinet.retrieval.directions import evaluate_directions
        from dcinet.retrieval.embed import GALLERY_FEATURE
        from dcinet.retrieval.evaluate import split_samples
        from dcinet.retrieval.features import extract_features
        from dcinet.train.loop import train_or_resume

        dataset.result()
    run_dir = out / "run"
    _say(f"[2/4] training DCINet ({cfg.backbone}, {cfg.img_size}px, {cfg.interaction} after "
         f"layer{cfg.layer}, {cfg.epochs} epochs) into {run_dir}")
    train_or_resume(cfg, data, run_dir)
    _say("[3/4] evaluating on the test split (CCRN only, softmax features, cosine, whole-gallery mAP)")
    trained = load_trained(run_dir)
    samples = split_samples(trained, data, None)
    features = extract_features(trained, samples, progress=True)
    result = evaluate_directions({m: f.features for m, f in features.items()},
                                 {m: f.labels for m, f in features.items()})
    result.to_json(out / "results.json")
    _say(result.to_markdown())
    _say(f"[4/4] example queries (top 5 over the test items of every modality, by the "
         f"{GALLERY_FEATURE} that dcinet embed / search use: softmax scores saturate)")
    _say(example_queries(extract_features(trained, samples, GALLERY_FEATURE)))
    _say(f"done in {time.perf_counter() - started:.0f}s; run: {run_dir}, results: {out / 'results.json'}")
    return result.to_dict()
