"""How hard is the built-in dataset? Raw-feature retrieval per modality, no learning.

For each modality, every test item queries the other test items of that modality by cosine
similarity of a raw feature; mAP over all queries (a positive = same class). Also: mAP at family
level and the accuracy of a nearest-class-mean probe (cosine to each class's mean train feature).
Raw features:

- image: 16 x 16 RGB thumbnail (768 values), each feature standardised;
- audio: dB spectrogram (n_fft 256, hop 128), average-pooled to 32 frequency x 16 time bins;
- text: character-trigram counts, tf-idf weighted.

The numbers should sit well above chance and far below 1.0 for every modality.
Run: ``python bench/synth_difficulty.py [--data DIR] [--classes 20 --per-class 40 --seed 0]``
(without ``--data`` the dataset is generated in a temporary folder, and the generation time printed).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import StandardScaler

from dcinet.data.audio import read_audio, spectrogram_db
from dcinet.data.readers import read_folder
from dcinet.sources.synth import MANIFEST, synthesize


def mean_average_precision(features: np.ndarray, labels: np.ndarray) -> float:
    """mAP of leave-one-out cosine retrieval: ``features (n, d)``, ``labels (n,)``; the query itself
    is excluded from its gallery; queries without another positive are skipped."""
    x = features / (np.linalg.norm(features, axis=1, keepdims=True) + 1e-12)
    scores = x @ x.T
    np.fill_diagonal(scores, -np.inf)
    aps = []
    for i in range(len(labels)):
        order = np.argsort(-scores[i], kind="stable")[:-1]
        hits = labels[order] == labels[i]
        if hits.any():
            ranks = np.flatnonzero(hits) + 1
            aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
    return float(np.mean(aps))


def centroid_accuracy(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray,
                      test_y: np.ndarray) -> float:
    """Accuracy of assigning each test feature ``(n, d)`` to the class whose mean train feature is
    the most cosine-similar; labels are 0-based ints."""
    classes = np.unique(train_y)
    means = np.stack([train_x[train_y == c].mean(axis=0) for c in classes])
    means /= np.linalg.norm(means, axis=1, keepdims=True) + 1e-12
    unit = test_x / (np.linalg.norm(test_x, axis=1, keepdims=True) + 1e-12)
    return float(np.mean(classes[np.argmax(unit @ means.T, axis=1)] == test_y))


def image_features(paths: list[Path]) -> np.ndarray:
    thumbs = [np.asarray(Image.open(p).convert("RGB").resize((16, 16), Image.BOX), np.float32) for p in paths]
    return np.stack(thumbs).reshape(len(paths), -1)


def audio_features(paths: list[Path]) -> np.ndarray:
    feats = []
    for p in paths:
        wave, rate = read_audio(p)
        db = torch.from_numpy(spectrogram_db(wave, rate, 16000, 256, 128))[None, None]
        feats.append(F.adaptive_avg_pool2d(db, (32, 16)).flatten().numpy())
    return np.stack(feats)


def _features(split_paths: dict[str, list[Path]], modality: str) -> tuple[np.ndarray, np.ndarray]:
    """``(train, test)`` raw features of one modality, scaled on the train split."""
    if modality == "text":
        vec = TfidfVectorizer(analyzer="char", ngram_range=(3, 3), lowercase=True)
        train = vec.fit_transform(p.read_text(encoding="utf-8") for p in split_paths["train"]).toarray()
        return train, vec.transform(p.read_text(encoding="utf-8") for p in split_paths["test"]).toarray()
    extract = image_features if modality == "image" else audio_features
    train, test = extract(split_paths["train"]), extract(split_paths["test"])
    scaler = StandardScaler().fit(train)
    return scaler.transform(train), scaler.transform(test)


def measure(root: Path) -> dict[str, dict[str, float]]:
    """Per modality: ``map`` (species), ``family_map``, ``probe_acc`` and ``chance_map``."""
    collection = read_folder(root)
    family = {c["name"]: c["family"] for c in json.loads((root / MANIFEST).read_text())["classes"]}
    results = {}
    for modality in collection.modalities:
        samples = {split: collection.select(split, modality) for split in ("train", "test")}
        train_x, test_x = _features({k: [s.path for s in v] for k, v in samples.items()}, modality)
        train_y = np.array([s.label for s in samples["train"]])
        test_y = np.array([s.label for s in samples["test"]])
        fam_names = sorted(set(family.values()))
        test_fam = np.array([fam_names.index(family[s.class_name]) for s in samples["test"]])
        counts = Counter(test_y.tolist())
        chance = float(np.mean([(counts[y] - 1) / (len(test_y) - 1) for y in test_y]))
        results[modality] = {"map": mean_average_precision(test_x, test_y),
                             "family_map": mean_average_precision(test_x, test_fam),
                             "probe_acc": centroid_accuracy(train_x, train_y, test_x, test_y), "chance_map": chance}
    return results


def main() -> None:
    torch.set_num_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=None, help="existing synthetic dataset (default: generate one)")
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.data
        if root is None:
            root = Path(tmp) / "synth"
            started = time.perf_counter()
            synthesize(root, classes=args.classes, per_class=args.per_class, seed=args.seed, progress=False)
            print(f"generated {args.classes} classes x {args.per_class} per modality in "
                  f"{time.perf_counter() - started:.1f} s")
        results = measure(root)
    print(f"{'modality':<9}{'NN mAP':>8}{'family mAP':>12}{'probe acc':>11}{'chance mAP':>12}")
    for modality, r in results.items():
        print(f"{modality:<9}{r['map']:>8.3f}{r['family_map']:>12.3f}{r['probe_acc']:>11.3f}{r['chance_map']:>12.3f}")


if __name__ == "__main__":
    main()
