"""Which classes a direction confuses: the share of each query's top-R window taken by each class.

Definition. A query with R relevant items (same label) in its gallery would, ranked perfectly, fill
its first R ranks with them: that window is where its errors show. The items of other classes that
rank inside it are the *intruders*. For query class c and gallery class c',

    share[c, c'] = mean over the queries of class c (with R >= 1) of
                   (items of class c' among the query's first R) / R,

so a row sums to 1, ``share[c, c]`` is the class's mean R-precision and ``1 - share[c, c]`` is
spread over the classes that rank above its relevant items. The most confused pair of c is the c'
!= c with the largest share. Queries without relevant items have no window and are left out (a
class whose queries all lack them has no row).

The ranking is the metrics' (:mod:`dcinet.retrieval.metrics`): the same float32 cosine scores
(:mod:`dcinet.retrieval.scores`), descending, exact ties broken by gallery index; in X->all the
query is one of its own gallery items (usually its first rank, as in the metrics), with
``exclude_self`` (X->X) it is removed from its gallery and from R.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dcinet.errors import DcinetError
from dcinet.retrieval.directions import TABLE_ORDER, bimodal_directions, direction_name
from dcinet.retrieval.scores import SCORE_BLOCK, l2_normalize, score_blocks


@dataclass
class Confusion:
    """Top-R window shares of one direction.

    Attributes:
        query_classes: (Cq,) labels of the query classes with a row (queries with R >= 1).
        gallery_classes: (Cg,) labels of the gallery's classes.
        share: (Cq, Cg) float64, ``share[i, j]`` = mean share of class ``gallery_classes[j]`` in
            the top-R windows of the queries of class ``query_classes[i]``.
        queries: (Cq,) int64 queries behind each row.
    """

    query_classes: np.ndarray
    gallery_classes: np.ndarray
    share: np.ndarray
    queries: np.ndarray

    def pairs(self, top: int | None = None) -> list[tuple[object, object, float]]:
        """(query class, intruding class, share) of the off-diagonal entries, largest first
        (ties by query class, then gallery class); ``top`` of them (None: all non-zero)."""
        out = [(c, g, float(v)) for i, c in enumerate(self.query_classes)
               for j, g in enumerate(self.gallery_classes) if g != c and (v := self.share[i, j]) > 0]
        out.sort(key=lambda p: -p[2])  # stable: row-major order among equal shares
        return out[:top] if top is not None else out


def top_r_confusion(query_feats: np.ndarray | torch.Tensor, query_labels: np.ndarray,
                    gallery_feats: np.ndarray | torch.Tensor, gallery_labels: np.ndarray,
                    exclude_self: bool = False) -> Confusion:
    """The top-R window shares of queries over a gallery.

    Args:
        query_feats: (Nq, D) features; query_labels: (Nq,) class ids.
        gallery_feats: (Ng, D) features; gallery_labels: (Ng,) class ids.
        exclude_self: query ``i`` is gallery item ``i`` and is removed from its own gallery.

    Returns:
        The :class:`Confusion` (rows in label order).
    """
    q_labels, g_labels = np.asarray(query_labels), np.asarray(gallery_labels)
    q, g = l2_normalize(query_feats), l2_normalize(gallery_feats)
    if exclude_self and (len(q_labels) > len(g_labels)
                         or not np.array_equal(q_labels, g_labels[:len(q_labels)])):
        raise DcinetError("exclude_self needs the queries to be the first gallery items")
    g_classes, g_class = np.unique(g_labels, return_inverse=True)
    g_class = g_class.reshape(-1)
    found = np.searchsorted(g_classes, q_labels).clip(max=len(g_classes) - 1)
    known = g_classes[found] == q_labels
    windows = np.where(known, np.bincount(g_class, minlength=len(g_classes))[found], 0)
    windows = windows - (exclude_self & known)
    sums = np.zeros((len(q_labels), len(g_classes)))
    for start in range(0, len(q_labels), SCORE_BLOCK):
        stop = min(start + SCORE_BLOCK, len(q_labels))
        if windows[start:stop].max() == 0:
            continue
        r = torch.from_numpy(windows[start:stop])
        scores = score_blocks(q[start:stop], g)[: stop - start]
        if exclude_self:
            scores[torch.arange(stop - start), torch.arange(start, stop)] = -torch.inf
        inside = _top_r(scores, r)
        rows, cols = inside.nonzero(as_tuple=True)
        np.add.at(sums, (rows.numpy() + start, g_class[cols.numpy()]), 1.0)
    has_window = windows > 0
    q_classes, q_class = np.unique(q_labels[has_window], return_inverse=True)
    per_query = sums[has_window] / windows[has_window, None]
    share = np.zeros((len(q_classes), len(g_classes)))
    np.add.at(share, q_class.reshape(-1), per_query)
    queries = np.bincount(q_class.reshape(-1), minlength=len(q_classes))
    return Confusion(q_classes, g_classes, share / np.maximum(queries, 1)[:, None],
                     queries.astype(np.int64))


def _top_r(scores: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """(n, Ng) bool: the first ``r[i]`` items of row ``i`` by descending score, exact ties by
    column index (none where ``r[i] == 0``)."""
    k = int(r.max())
    kth = torch.topk(scores, k, dim=1).values.gather(1, (r.clamp(min=1) - 1)[:, None])
    above = scores > kth
    tied = scores == kth
    room = r[:, None] - above.sum(dim=1, keepdim=True)  # tied items that still fit, by index
    return (above | (tied & (tied.cumsum(dim=1) <= room))) & (r[:, None] > 0)


def direction_confusions(features: dict[str, np.ndarray], labels: dict[str, np.ndarray]
                         ) -> dict[str, Confusion]:
    """:func:`top_r_confusion` of the directions :func:`~dcinet.retrieval.directions.
    evaluate_directions` evaluates, under the same names: X2X with a single modality, the bimodal
    ones, X->all (gallery: every modality in table order, the query included)."""
    present = [m for m in TABLE_ORDER if m in features]
    union = (np.concatenate([features[m] for m in present]),
             np.concatenate([labels[m] for m in present]))
    out = {}
    if len(present) == 1:
        m = present[0]
        out[direction_name(m, m)] = top_r_confusion(features[m], labels[m], features[m],
                                                    labels[m], exclude_self=True)
    for q, g in bimodal_directions(present):
        out[direction_name(q, g)] = top_r_confusion(features[q], labels[q], features[g], labels[g])
    for m in present:
        out[direction_name(m, None)] = top_r_confusion(features[m], labels[m], *union)
    return out
