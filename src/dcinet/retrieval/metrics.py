"""Retrieval metric: average precision over the whole ranked gallery, exact and fast.

Protocol (FGCrossNet's, which the paper's numbers follow):

* similarity = cosine: rows are L2-normalised, the score is their dot product (float32,
  :mod:`dcinet.retrieval.scores`);
* ranking = descending score, exact ties broken by gallery index (lower first), i.e. a stable sort
  of ``-score``;
* relevant = same label; AP of a query = mean of precision@rank over the ranks of its relevant
  items (denominator = number of relevant items in the gallery); a query with no relevant item
  scores 0; mAP = mean of AP over queries, accumulated in float64.

Score rows are never sorted: the compiled kernel of :mod:`dcinet.retrieval.rank_counts` counts, for
each relevant item, the items ranked above it. Queries are scored in chunks (memory O(chunk x
gallery)), and the gallery may be split into parts (modalities): one pass gives the AP over the
whole gallery and over each part.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from dcinet.errors import DcinetError
from dcinet.retrieval.rank_counts import block_average_precision, n_buckets_for
from dcinet.retrieval.scores import SCORE_BLOCK, l2_normalize, score_blocks

# Default scores per chunk: 32 MB of float32.
_CHUNK_SCORES = 1 << 23


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


def average_precision_parts(query_feats: np.ndarray | torch.Tensor,
                            query_labels: np.ndarray | torch.Tensor,
                            gallery_parts: Sequence[tuple[np.ndarray | torch.Tensor,
                                                          np.ndarray | torch.Tensor]],
                            chunk_size: int | None = None,
                            exclude_self: bool = False) -> tuple[np.ndarray, list[np.ndarray]]:
    """AP of every query over a gallery made of parts, and over each part alone, in one pass.

    The whole gallery is the parts concatenated in order (ties resolve by that index); each part
    alone is ranked with its own items only. Same numbers as :func:`average_precision` called once
    on the concatenation and once per part, for the work of the first call.

    Args:
        query_feats: (Nq, D) features; query_labels: (Nq,) class ids (any comparable dtype).
        gallery_parts: one ((Ng_m, D) features, (Ng_m,) class ids) pair per part (at least one).
        chunk_size: queries scored at once, rounded up to a multiple of :data:`SCORE_BLOCK`;
            None = about 8M scores per chunk. Memory is O(chunk_size * Ng); the result does not
            depend on it.
        exclude_self: query ``i`` is gallery item ``i`` (the queries are the first Nq gallery
            items, same labels) and is removed from its own gallery: the usual single-modality
            retrieval metric. Its precision counts neither the query nor its self-match.

    Returns:
        ((Nq,) float64 AP over the whole gallery, [(Nq,) float64 AP over part m, ...]); a query
        whose label is absent from a gallery scores 0 there.
    """
    if not gallery_parts:
        raise DcinetError("the gallery needs at least one part")
    if chunk_size is not None and chunk_size < 1:
        raise DcinetError(f"chunk_size must be >= 1, got {chunk_size}")
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

    ap = np.zeros((q.shape[0], 1 + len(sizes)), dtype=np.float64)
    scores_buf = torch.empty(min(rows, -(-q.shape[0] // SCORE_BLOCK) * SCORE_BLOCK)
                             * n_gallery)  # reused by every chunk
    query_class, members, starts = _class_members(q_labels, g_labels)
    for start in range(0, q.shape[0], rows):
        stop = min(start + rows, q.shape[0])
        if (query_class[start:stop] < 0).all():  # no query here has a relevant item: AP stays 0
            continue
        scores = score_blocks(q[start:stop], g, out=scores_buf)[: stop - start]
        self_col = (np.arange(start, stop) if exclude_self
                    else np.full(stop - start, -1)).astype(np.int64)
        block_average_precision(scores.numpy().view(np.int32), query_class[start:stop], members,
                                starts, self_col, part_of, len(sizes), n_buckets, ap[start:stop])
    return ap[:, 0], [ap[:, 1 + m] for m in range(len(sizes))]


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
