"""Retrieval directions of the paper's Tables 1 and 2, evaluated together (the numbers and their
reports: :mod:`dcinet.retrieval.result`).

Bimodal directions are every ordered pair of distinct modalities present (i2t, i2a, t2i, t2a,
a2i, a2t; with video the 12 of FGCrossNet); multimodal ones are X->all, whose gallery is every
modality's test items concatenated in table order (image, text, audio, video) *including the
query itself*, as the reference evaluation does. Each query modality is evaluated in one pass
(:func:`~dcinet.retrieval.metrics.rank_stats_parts`): X->all and every X->Y, and every metric of
them, come from the same scores.

A dataset with a single modality X (e.g. CUB photos) has no bimodal direction; it gets the
*unimodal* direction X2X (``i2i``) besides X->all: every test item queries all the *other* test
items, the query removed from its own gallery (``exclude_self``), the usual metric of
single-modality retrieval benchmarks. Its X->all keeps the query in the gallery, so the self-match
(rank 1 for any non-degenerate feature) inflates it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dcinet.data.records import MODALITIES
from dcinet.errors import DcinetError
from dcinet.retrieval.bootstrap import RESAMPLES, check_resamples
from dcinet.retrieval.metrics import KS, rank_stats_parts
from dcinet.retrieval.result import RetrievalResult

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


def evaluate_directions(features: dict[str, np.ndarray], labels: dict[str, np.ndarray],
                        chunk_size: int | None = None, ks: Sequence[int] = KS,
                        resamples: int = RESAMPLES, seed: int = 0,
                        class_names: list[str] | None = None) -> RetrievalResult:
    """Every metric of every bimodal and X->all direction; with a single modality X, of X2X and
    X->all.

    Args:
        features: modality -> (N_m, D) test features (all modalities the same D).
        labels: modality -> (N_m,) class ids, same keys as ``features``.
        chunk_size: queries scored at once (:func:`~dcinet.retrieval.metrics.rank_stats_parts`);
            the result does not depend on it.
        ks: the cut-offs of Recall@K and precision@K.
        resamples, seed: the bootstrap intervals (:mod:`dcinet.retrieval.bootstrap`); 0 = none.
        class_names: ``class_names[label]`` names the classes of the per-class AP (integer
            labels); None = the labels themselves.

    Raises:
        DcinetError: unknown modality, missing labels, no items, or mismatched shapes.
    """
    present = _check(features, labels)
    check_resamples(resamples)
    parts = [(features[m], labels[m]) for m in present]
    n_all = sum(len(labels[m]) for m in present)
    bimodal = [direction_name(q, g) for q, g in bimodal_directions(present)]
    multimodal = [direction_name(m, None) for m in present]
    unimodal = [direction_name(m, m) for m in present] if len(present) == 1 else []
    stats, galleries, query_of = {}, {}, {}
    for modality in present[:len(unimodal)]:
        name = direction_name(modality, modality)
        stats[name], _ = rank_stats_parts(features[modality], labels[modality],
                                          [(features[modality], labels[modality])], chunk_size,
                                          exclude_self=True, ks=ks)
        galleries[name], query_of[name] = len(labels[modality]) - 1, modality
    for query in present:
        whole, per_part = rank_stats_parts(features[query], labels[query], parts, chunk_size,
                                           ks=ks)
        name = direction_name(query, None)
        stats[name], galleries[name], query_of[name] = whole, n_all, query
        for gallery, part in zip(present, per_part, strict=True):
            if gallery != query:
                name = direction_name(query, gallery)
                stats[name], galleries[name], query_of[name] = part, len(labels[gallery]), query
    order = unimodal + bimodal + multimodal
    return RetrievalResult(
        per_query={n: stats[n].per_query() for n in order},
        query_of={n: query_of[n] for n in order},
        query_labels={m: np.asarray(labels[m]) for m in present},
        bimodal=bimodal, multimodal=multimodal, counts={m: len(labels[m]) for m in present},
        queries={n: len(stats[n].ap) for n in order}, galleries={n: galleries[n] for n in order},
        unimodal=unimodal, class_names=class_names, resamples=resamples, seed=seed,
        unmatched={n: int(k) for n in order if (k := (stats[n].n_relevant == 0).sum())},
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
