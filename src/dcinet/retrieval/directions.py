"""Retrieval directions of the paper's Tables 1 and 2, evaluated together, and their reports.

Bimodal directions are every ordered pair of distinct modalities present (i2t, i2a, t2i, t2a,
a2i, a2t; with video the 12 of FGCrossNet); multimodal ones are X->all, whose gallery is every
modality's test items concatenated in table order (image, text, audio, video) *including the
query itself*, as the reference evaluation does. Each query modality is evaluated in one pass
(:func:`~dcinet.retrieval.metrics.average_precision_parts`): X->all and every X->Y come from the
same scores.

A dataset with a single modality X (e.g. CUB photos) has no bimodal direction; it gets the
*unimodal* direction X2X (``i2i``) besides X->all: every test item queries all the *other* test
items, the query removed from its own gallery
(:func:`~dcinet.retrieval.metrics.average_precision_without_self`), the usual
metric of single-modality retrieval benchmarks. Its X->all keeps the query in the gallery, so the
self-match (rank 1 for any non-degenerate feature) inflates it.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dcinet.data.records import MODALITIES
from dcinet.errors import DcinetError
from dcinet.retrieval.metrics import average_precision_parts, average_precision_without_self

ABBREVIATIONS = {"image": "i", "text": "t", "audio": "a", "video": "v"}
TABLE_ORDER = ("image", "text", "audio", "video")  # the paper's column order


def bimodal_directions(modalities: list[str]) -> list[tuple[str, str]]:
    """Ordered (query, gallery) pairs of distinct modalities, in table order."""
    present = [m for m in TABLE_ORDER if m in modalities]
    return [(q, g) for q in present for g in present if q != g]


def direction_name(query: str, gallery: str | None) -> str:
    """``i2t`` for (image, text); ``i2i`` for (image, image), the unimodal direction; ``i2all``
    for (image, None), the multimodal direction."""
    return f"{ABBREVIATIONS[query]}2{ABBREVIATIONS[gallery] if gallery else 'all'}"


@dataclass
class RetrievalResult:
    """mAP of every direction plus the paper's averages.

    ``directions`` maps a direction name (``i2i``, ``i2t``, ``i2all``, ...) to its mAP in table
    order: unimodal (only with a single modality; query removed from its gallery), then bimodal,
    then multimodal; ``average_bimodal`` / ``average_multimodal`` are plain means of those columns
    (None when there is no such direction); ``counts`` is the number of test items per modality;
    ``queries`` / ``galleries`` give each direction's query and gallery sizes.
    """

    directions: dict[str, float]
    bimodal: list[str]
    multimodal: list[str]
    counts: dict[str, int]
    queries: dict[str, int] = field(default_factory=dict)
    galleries: dict[str, int] = field(default_factory=dict)
    unimodal: list[str] = field(default_factory=list)

    @property
    def average_bimodal(self) -> float | None:
        """Plain mean of the bimodal columns (Table 1's "Average")."""
        return _mean([self.directions[d] for d in self.bimodal])

    @property
    def average_multimodal(self) -> float | None:
        """Plain mean of the X->all columns (Table 2's "Average")."""
        return _mean([self.directions[d] for d in self.multimodal])

    def to_dict(self) -> dict:
        """JSON-ready: directions, the two averages, counts and the protocol in words."""
        return {
            "directions": dict(self.directions),
            "average_bimodal": self.average_bimodal,
            "average_multimodal": self.average_multimodal,
            "unimodal": list(self.unimodal),
            "bimodal": list(self.bimodal),
            "multimodal": list(self.multimodal),
            "counts": dict(self.counts),
            "queries": dict(self.queries),
            "galleries": dict(self.galleries),
            "protocol": ("cosine similarity; AP over the whole ranked gallery (ties by gallery "
                         "index); X2all gallery = all modalities' test items, query included; "
                         "X2X (one modality only) gallery = the other test items, query removed"),
        }

    def to_markdown(self, model: str = "this run") -> str:
        """The paper's Tables 1 (bimodal) and 2 (multimodal) as Markdown, 3 decimals; with a
        single modality, first the unimodal table (query removed from its gallery)."""
        tables = []
        for title, names, average in (
            ("Unimodal retrieval (mAP, query removed from its gallery)", self.unimodal, None),
            ("Bimodal retrieval (mAP, cf. Table 1)", self.bimodal, self.average_bimodal),
            ("Multimodal retrieval (mAP, cf. Table 2)", self.multimodal, self.average_multimodal),
        ):
            if not names:
                continue
            header = ["Models", *names] + (["Average"] if average is not None else [])
            cells = [model, *(f"{self.directions[n]:.3f}" for n in names)]
            cells += [f"{average:.3f}"] if average is not None else []
            tables.append("\n".join([
                f"**{title}**", "",
                "| " + " | ".join(header) + " |",
                "|" + "---|" * len(header),
                "| " + " | ".join(cells) + " |",
            ]))
        counts = ", ".join(f"{m} {n}" for m, n in self.counts.items())
        tables.append(f"Test items: {counts}.")
        return "\n\n".join(tables) + "\n"

    def to_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON; returns the path."""
        path = _writable(path)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def to_csv(self, path: str | Path) -> Path:
        """One row per direction (then the averages): direction, kind, sizes, mAP."""
        path = _writable(path)
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["direction", "kind", "queries", "gallery", "map"])
            for kind, names in (("unimodal", self.unimodal), ("bimodal", self.bimodal),
                                ("multimodal", self.multimodal)):
                for name in names:
                    writer.writerow([name, kind, self.queries.get(name, ""),
                                     self.galleries.get(name, ""), repr(self.directions[name])])
            for name, value in (("average_bimodal", self.average_bimodal),
                                ("average_multimodal", self.average_multimodal)):
                if value is not None:
                    writer.writerow([name, "average", "", "", repr(value)])
        return path


def evaluate_directions(features: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                        chunk_size: int | None = None) -> RetrievalResult:
    """mAP of every bimodal and X->all direction; with a single modality X, of X2X and X->all.

    Args:
        features: modality -> (N_m, D) test features (all modalities the same D).
        labels: modality -> (N_m,) class ids, same keys as ``features``.
        chunk_size: queries scored at once (:func:`~dcinet.retrieval.metrics.average_precision_parts`,
            :func:`~dcinet.retrieval.metrics.average_precision_without_self`); the result does not
            depend on it.

    Raises:
        DcinetError: unknown modality, missing labels, no items, or mismatched shapes.
    """
    present = _check(features, labels)
    parts = [(features[m], labels[m]) for m in present]
    n_all = sum(len(labels[m]) for m in present)
    bimodal = [direction_name(q, g) for q, g in bimodal_directions(present)]
    multimodal = [direction_name(m, None) for m in present]
    unimodal = [direction_name(m, m) for m in present] if len(present) == 1 else []
    maps, queries, galleries = {}, {}, {}
    for modality in present[:len(unimodal)]:
        ap = average_precision_without_self(features[modality], labels[modality], chunk_size)
        name = direction_name(modality, modality)
        maps[name], queries[name], galleries[name] = float(ap.mean()), len(ap), len(ap) - 1
    for query in present:
        whole, per_part = average_precision_parts(features[query], labels[query], parts,
                                                  chunk_size)
        name = direction_name(query, None)
        maps[name], queries[name], galleries[name] = float(whole.mean()), len(whole), n_all
        for gallery, ap in zip(present, per_part, strict=True):
            if gallery != query:
                name = direction_name(query, gallery)
                maps[name], queries[name] = float(ap.mean()), len(ap)
                galleries[name] = len(labels[gallery])
    order = unimodal + bimodal + multimodal
    return RetrievalResult(
        directions={n: maps[n] for n in order}, bimodal=bimodal, multimodal=multimodal,
        counts={m: len(labels[m]) for m in present},
        queries={n: queries[n] for n in order}, galleries={n: galleries[n] for n in order},
        unimodal=unimodal,
    )


def _check(features: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> list[str]:
    """The modalities present, in table order, after checking shapes."""
    unknown = sorted(set(features) - set(MODALITIES))
    if unknown:
        raise DcinetError(f"unknown modality {unknown[0]!r}; expected one of {MODALITIES}")
    if set(features) != set(labels):
        raise DcinetError(f"features and labels name different modalities: "
                          f"{sorted(features)} vs {sorted(labels)}")
    if not features:
        raise DcinetError("no modality to evaluate")
    present = [m for m in TABLE_ORDER if m in features]
    dims = set()
    for m in present:
        shape = np.shape(features[m])
        if len(shape) != 2 or shape[0] == 0:
            raise DcinetError(f"{m}: features must be a non-empty (N, D) array, got {shape}")
        if np.shape(labels[m]) != (shape[0],):
            raise DcinetError(f"{m}: {shape[0]} feature rows but labels of shape "
                              f"{np.shape(labels[m])}")
        dims.add(shape[1])
    if len(dims) > 1:
        raise DcinetError(f"modalities have different feature sizes: {sorted(dims)}")
    return present


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _writable(path: str | Path) -> Path:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DcinetError(f"cannot create {path.parent}: {e}") from e
    return path
