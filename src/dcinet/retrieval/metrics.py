"""Retrieval metrics over the whole ranked gallery, exact and fast.

Protocol (FGCrossNet's, which the paper's numbers follow):

* similarity = cosine: rows are L2-normalised, the score is their dot product (float32,
  :mod:`dcinet.retrieval.scores`);
* ranking = descending score, exact ties broken by gallery index (lower first), i.e. a stable sort
  of ``-score``; every metric below reads this one ranking;
* relevant = same label; ``R`` = the number of relevant items of the query in its gallery.

Per query (each metric is the float64 mean over *all* queries of its per-query value):

* ``mAP``: AP = mean of precision@rank over the ranks of the R relevant items (denominator R);
* ``mAP@R`` (pytorch-metric-learning's MAP@R): (1 / R) * sum over the ranks i <= R holding a
  relevant item of precision@i; 1 only when the first R items are all relevant;
* ``R@K``, Recall@K as cross-modal retrieval papers use it: 1 if at least one relevant item is
  among the first K, else 0 (so R@K is the *fraction of queries* with a hit in the top K, not the
  fraction of relevant items found);
* ``P@K``: relevant items among the first K, divided by K (by the gallery size when the gallery
  is smaller than K).

A query without relevant items (its label absent from the gallery, or, with the query removed,
no other item of its class) scores 0 on every metric and stays in the denominator of the mean.
Where the query is one of its own gallery items (X->all) it counts as a relevant item, usually at
rank 1, like any other; with ``exclude_self`` (X->X) it is removed from the gallery before
ranking: it is neither a relevant item nor counted in any rank, R or gallery size.

Score rows are never sorted: the compiled kernel of :mod:`dcinet.retrieval.rank_counts` counts, for
each relevant item, the items ranked above it. Queries are scored in chunks (memory O(chunk x
gallery)), and the gallery may be split into parts (modalities): one pass gives the metrics over
the whole gallery and over each part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from dcinet.errors import DcinetError
from dcinet.retrieval.rank_counts import (
    AP,
    AP_AT_R,
    FIRST_RANK,
    HITS_AT,
    N_RELEVANT,
    block_rank_stats,
    n_buckets_for,
)
from dcinet.retrieval.scores import SCORE_BLOCK, l2_normalize, score_blocks

# Default scores per chunk: 32 MB of float32.
_CHUNK_SCORES = 1 << 23

KS = (1, 5, 10)
"""The cut-offs K of Recall@K and precision@K."""


def metric_names(ks: Sequence[int] = KS) -> list[str]:
    """The metrics in report order: ``mAP``, ``mAP@R``, ``R@K`` for each K, ``P@K`` for each K."""
    return ["mAP", "mAP@R", *(f"R@{k}" for k in ks), *(f"P@{k}" for k in ks)]


def definitions(names: Sequence[str]) -> dict[str, str]:
    """Metric name (``mAP``, ``mAP@R``, ``R@K``, ``P@K``) -> its definition in one sentence."""
    texts = {
        "mAP": "mean over queries of AP = mean precision at the ranks of the R relevant items",
        "mAP@R": "mean over queries of (1/R) * sum of precision@i over the ranks i <= R holding "
                 "a relevant item (pytorch-metric-learning's MAP@R)",
        "R": "fraction of queries with at least one relevant item among the first {k}",
        "P": "mean over queries of (relevant items among the first {k}) / {k} (/ the gallery "
             "size if smaller)",
    }
    out = {}
    for name in names:
        kind, _, k = name.partition("@")
        out[name] = texts[name] if name in texts else texts[kind].format(k=k)
    suffix = "; a query without relevant items scores 0 and counts in the mean"
    return {name: text + suffix for name, text in out.items()}


@dataclass
class RankStats:
    """Where the relevant items of each query rank, and the metrics that follow from it.

    Attributes:
        ap, ap_at_r: (Nq,) float64 per-query AP and MAP@R term (0 without relevant items).
        first_rank: (Nq,) int64 rank (1-based) of the first relevant item, 0 if none.
        n_relevant: (Nq,) int64 R, the relevant items in the query's gallery.
        hits_at: (Nq, len(ks)) int64 relevant items among the first K.
        gallery: (Nq,) int64 items in the query's gallery (without the query where removed).
        ks: the cut-offs K.
    """

    ap: np.ndarray
    ap_at_r: np.ndarray
    first_rank: np.ndarray
    n_relevant: np.ndarray
    hits_at: np.ndarray
    gallery: np.ndarray
    ks: tuple[int, ...]

    def per_query(self) -> dict[str, np.ndarray]:
        """Metric name (:func:`metric_names`) -> (Nq,) float64 per-query value, whose mean over
        the queries is the metric."""
        found = self.first_rank > 0
        values = {"mAP": self.ap, "mAP@R": self.ap_at_r}
        values.update({f"R@{k}": (found & (self.first_rank <= k)).astype(np.float64)
                       for k in self.ks})
        for i, k in enumerate(self.ks):
            shown = np.minimum(k, self.gallery)
            values[f"P@{k}"] = self.hits_at[:, i] / np.maximum(shown, 1)
        return values


def _as_labels(labels: np.ndarray | torch.Tensor, n: int, what: str) -> np.ndarray:
    out = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if out.shape != (n,):
        raise DcinetError(f"{what} labels must have shape ({n},), got {out.shape}")
    return out


def _class_members(query_labels: np.ndarray, gallery_labels: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The relevant items of every query, O(Nq + Ng) memory.

    Returns:
        query_class (Nq,) int64 (index of the query's class among the gallery's, -1 if absent);
        members (Ng,) int64 gallery indices grouped by class, ascending within a class; starts
        (C + 1,) int64: class ``c`` holds ``members[starts[c]:starts[c + 1]]``.
    """
    classes, gallery_class = np.unique(gallery_labels, return_inverse=True)
    members = np.argsort(gallery_class.reshape(-1), kind="stable").astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(np.bincount(gallery_class.reshape(-1),
                                                        minlength=len(classes)))])
    found = np.searchsorted(classes, query_labels)
    known = found < len(classes)
    known[known] = classes[found[known]] == query_labels[known]
    return np.where(known, found, -1).astype(np.int64), members, starts.astype(np.int64)


def rank_stats_parts(query_feats: np.ndarray | torch.Tensor,
                     query_labels: np.ndarray | torch.Tensor,
                     gallery_parts: Sequence[tuple[np.ndarray | torch.Tensor,
                                                   np.ndarray | torch.Tensor]],
                     chunk_size: int | None = None, exclude_self: bool = False,
                     ks: Sequence[int] = KS) -> tuple[RankStats, list[RankStats]]:
    """Rank statistics of every query over a gallery made of parts, and over each part alone, in
    one pass.

    The whole gallery is the parts concatenated in order (ties resolve by that index); each part
    alone is ranked with its own items only. Same numbers as one call on the concatenation and one
    per part, for the work of the first call.

    Args:
        query_feats: (Nq, D) features; query_labels: (Nq,) class ids (any comparable dtype).
        gallery_parts: one ((Ng_m, D) features, (Ng_m,) class ids) pair per part (at least one).
        chunk_size: queries scored at once, rounded up to a multiple of :data:`SCORE_BLOCK`;
            None = about 8M scores per chunk. Memory is O(chunk_size * Ng); the result does not
            depend on it.
        exclude_self: query ``i`` is gallery item ``i`` (the queries are the first Nq gallery
            items, same labels) and is removed from its own gallery: the usual single-modality
            retrieval metric (see the module's notes).
        ks: cut-offs K (positive) of Recall@K and precision@K.

    Returns:
        (statistics over the whole gallery, [statistics over part m, ...]).
    """
    if not gallery_parts:
        raise DcinetError("the gallery needs at least one part")
    if chunk_size is not None and chunk_size < 1:
        raise DcinetError(f"chunk_size must be >= 1, got {chunk_size}")
    if not ks or min(ks) < 1:
        raise DcinetError(f"the cut-offs K must be positive, got {list(ks)}")
    q = l2_normalize(query_feats)
    g = torch.cat([l2_normalize(f) for f, _ in gallery_parts])
    sizes = [len(labels) for _, labels in gallery_parts]
    g_labels = _as_labels(np.concatenate([np.asarray(lb) for _, lb in gallery_parts]),
                          g.shape[0], "gallery")
    q_labels = _as_labels(query_labels, q.shape[0], "query")
    if q.shape[1] != g.shape[1]:
        raise DcinetError(f"query and gallery features differ in dimension: {q.shape[1]} vs "
                          f"{g.shape[1]}")
    if exclude_self and (q.shape[0] > g.shape[0]
                         or not np.array_equal(q_labels, g_labels[: q.shape[0]])):
        raise DcinetError("exclude_self needs the queries to be the first gallery items")
    n_gallery = g.shape[0]
    rows = chunk_size or _CHUNK_SCORES // max(n_gallery, 1)
    rows = max(1, -(-rows // SCORE_BLOCK)) * SCORE_BLOCK  # chunks start at block boundaries
    part_of = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    n_buckets = n_buckets_for(n_gallery)
    cutoffs = np.asarray(ks, dtype=np.int64)

    stats = np.zeros((q.shape[0], 1 + len(sizes), HITS_AT + len(cutoffs)), dtype=np.float64)
    scores_buf = torch.empty(min(rows, -(-q.shape[0] // SCORE_BLOCK) * SCORE_BLOCK)
                             * n_gallery)  # reused by every chunk
    query_class, members, starts = _class_members(q_labels, g_labels)
    for start in range(0, q.shape[0], rows):
        stop = min(start + rows, q.shape[0])
        if (query_class[start:stop] < 0).all():  # no query here has a relevant item: all 0
            continue
        scores = score_blocks(q[start:stop], g, out=scores_buf)[: stop - start]
        self_col = (np.arange(start, stop) if exclude_self
                    else np.full(stop - start, -1)).astype(np.int64)
        block_rank_stats(scores.numpy().view(np.int32), query_class[start:stop], members, starts,
                         self_col, part_of, len(sizes), n_buckets, cutoffs, stats[start:stop])
    # gallery sizes per query and scope: the query itself is taken out of its own part
    own_part = part_of[: q.shape[0]] if exclude_self else np.full(q.shape[0], -1)
    galleries = [n_gallery - np.int64(exclude_self),
                 *(size - (own_part == m) for m, size in enumerate(sizes))]
    whole, *parts = (_rank_stats(stats[:, s], galleries[s], tuple(ks))
                     for s in range(1 + len(sizes)))
    return whole, parts


def _rank_stats(stats: np.ndarray, gallery: np.ndarray | int, ks: tuple[int, ...]) -> RankStats:
    """(Nq, HITS_AT + n_k) kernel output of one scope -> :class:`RankStats`."""
    return RankStats(ap=stats[:, AP].copy(), ap_at_r=stats[:, AP_AT_R].copy(),
                     first_rank=stats[:, FIRST_RANK].astype(np.int64),
                     n_relevant=stats[:, N_RELEVANT].astype(np.int64),
                     hits_at=stats[:, HITS_AT:].astype(np.int64),
                     gallery=np.broadcast_to(gallery, len(stats)).astype(np.int64), ks=ks)


def average_precision_parts(query_feats: np.ndarray | torch.Tensor,
                            query_labels: np.ndarray | torch.Tensor,
                            gallery_parts: Sequence[tuple[np.ndarray | torch.Tensor,
                                                          np.ndarray | torch.Tensor]],
                            chunk_size: int | None = None,
                            exclude_self: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
    """AP of every query over a gallery made of parts, and over each part alone, in one pass
    (:func:`rank_stats_parts`).

    Returns:
        ((Nq,) float64 AP over the whole gallery, [(Nq,) float64 AP over part m, ...]); a query
        whose label is absent from a gallery scores 0 there.
    """
    whole, parts = rank_stats_parts(query_feats, query_labels, gallery_parts, chunk_size,
                                    exclude_self)
    return whole.ap, [p.ap for p in parts]


def average_precision(query_feats: np.ndarray | torch.Tensor,
                      query_labels: np.ndarray | torch.Tensor,
                      gallery_feats: np.ndarray | torch.Tensor,
                      gallery_labels: np.ndarray | torch.Tensor,
                      chunk_size: int | None = None) -> np.ndarray:
    """Average precision of every query over the whole gallery ranked by cosine similarity.

    Args:
        query_feats: (Nq, D) features; query_labels: (Nq,) class ids (any comparable dtype).
        gallery_feats: (Ng, D) features; gallery_labels: (Ng,) class ids.
        chunk_size: queries scored at once (see :func:`average_precision_parts`).

    Returns:
        (Nq,) float64 AP in [0, 1]; 0 for a query whose label is absent from the gallery.
    """
    whole, _ = average_precision_parts(query_feats, query_labels,
                                       [(gallery_feats, gallery_labels)], chunk_size)
    return whole


def average_precision_without_self(features: np.ndarray | torch.Tensor,
                                   labels: np.ndarray | torch.Tensor,
                                   chunk_size: int | None = None) -> np.ndarray:
    """AP of every item querying all the *other* items: the query is removed from its gallery.

    Args:
        features: (N, D) real features; labels: (N,) class ids (any comparable dtype).
        chunk_size: queries scored at once (see :func:`average_precision_parts`).

    Returns:
        (N,) float64 AP in [0, 1]; 0 for an item with no other item of its class (all 0 when
        N == 1: the gallery is empty).
    """
    whole, _ = average_precision_parts(features, labels, [(features, labels)], chunk_size,
                                       exclude_self=True)
    return whole


def mean_average_precision(query_feats: np.ndarray | torch.Tensor,
                           query_labels: np.ndarray | torch.Tensor,
                           gallery_feats: np.ndarray | torch.Tensor,
                           gallery_labels: np.ndarray | torch.Tensor,
                           chunk_size: int | None = None) -> float:
    """mAP: the float64 mean of :func:`average_precision` over all queries (0.0 if none)."""
    ap = average_precision(query_feats, query_labels, gallery_feats, gallery_labels, chunk_size)
    return float(ap.mean()) if len(ap) else 0.0
