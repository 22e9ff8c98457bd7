"""Reference metrics: rank every query's gallery and scan it, one item at a time.

The style of the reference evaluations (sort, then a Python loop over the ranking that compares
labels one item at a time): slow and obviously right. The definitions are those of
:mod:`dcinet.retrieval.metrics`, written out again from the ranking itself.
Tests and the benchmark compare :mod:`dcinet.retrieval.metrics` against it; it shares only the
default cut-offs K and the score computation (:func:`~dcinet.retrieval.scores.l2_normalize`,
:func:`~dcinet.retrieval.scores.normalized_scores`), so both rank exactly the same float scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from dcinet.retrieval.metrics import KS
from dcinet.retrieval.scores import SCORE_BLOCK, l2_normalize, normalized_scores

_BLOCK = 2 * SCORE_BLOCK  # queries scored per call (bounds memory, not the result)


def ranked_average_precision(order: np.ndarray, gallery_labels: np.ndarray,
                             query_label: object) -> float:
    """AP of one ranking, walked as the reference evaluations do: a Python loop over the ranked
    gallery indices that compares one item's label with the query's at a time.

    Args:
        order: (Ng,) gallery indices, best first; gallery_labels: (Ng,) class ids;
        query_label: the query's class id.

    Returns:
        Mean of precision@rank over the ranks of the relevant items (0.0 if there is none).
    """
    hits, total = 0, 0.0
    for rank in range(len(order)):
        if gallery_labels[order[rank]] == query_label:
            hits += 1
            total += hits / (rank + 1)
    return total / hits if hits else 0.0


def ranked_metrics(order: np.ndarray, gallery_labels: np.ndarray, query_label: object,
                   ks: Sequence[int] = KS) -> dict[str, float]:
    """Every metric of one ranking, from the list of its relevant flags.

    Args:
        order: (Ng,) gallery indices, best first; gallery_labels: (Ng,) class ids;
        query_label: the query's class id; ks: the cut-offs K.

    Returns:
        ``mAP`` (the query's AP, :func:`ranked_average_precision`), ``mAP@R`` (precision at each
        relevant rank among the first R, summed, / R), ``R@K`` (1.0 if a relevant item is among
        the first K), ``P@K`` (relevant items among the first min(K, Ng), / min(K, Ng)); all 0.0
        without relevant items.
    """
    relevant = [bool(gallery_labels[j] == query_label) for j in order]
    r = sum(relevant)
    precision_at_r = 0.0
    for rank in range(1, r + 1):
        if relevant[rank - 1]:
            precision_at_r += sum(relevant[:rank]) / rank
    out = {"mAP": ranked_average_precision(order, gallery_labels, query_label),
           "mAP@R": precision_at_r / r if r else 0.0}
    out.update({f"R@{k}": float(any(relevant[:k])) for k in ks})
    out.update({f"P@{k}": sum(relevant[:k]) / min(k, len(order)) if len(order) else 0.0
                for k in ks})
    return out


def rank_metrics_naive(query_feats: np.ndarray | torch.Tensor,
                       query_labels: np.ndarray | torch.Tensor,
                       gallery_feats: np.ndarray | torch.Tensor,
                       gallery_labels: np.ndarray | torch.Tensor,
                       ks: Sequence[int] = KS) -> dict[str, np.ndarray]:
    """Per query: stable argsort of ``-score`` (ties by gallery index), then
    :func:`ranked_metrics`.

    Returns:
        metric name -> (Nq,) float64 per-query values, as
        :meth:`dcinet.retrieval.metrics.RankStats.per_query`.
    """
    rows = [ranked_metrics(np.argsort(-row, kind="stable"), np.asarray(gallery_labels), label, ks)
            for row, label in zip(_score_rows(query_feats, gallery_feats), np.asarray(query_labels),
                                  strict=True)]
    names = list(rows[0]) if rows else []
    return {name: np.array([row[name] for row in rows], dtype=np.float64) for name in names}


def _score_rows(query_feats: np.ndarray | torch.Tensor, gallery_feats: np.ndarray | torch.Tensor):
    """The (Ng,) float32 score row of each query in turn, scored :data:`_BLOCK` queries at once."""
    query, gallery = l2_normalize(query_feats), l2_normalize(gallery_feats)
    for start in range(0, query.shape[0], _BLOCK):
        yield from normalized_scores(query[start: start + _BLOCK], gallery).numpy()


def average_precision_naive(query_feats: np.ndarray | torch.Tensor,
                            query_labels: np.ndarray | torch.Tensor,
                            gallery_feats: np.ndarray | torch.Tensor,
                            gallery_labels: np.ndarray | torch.Tensor) -> np.ndarray:
    """Per query: stable argsort of ``-score`` (ties by gallery index), then the double loop of
    :func:`ranked_average_precision`.

    Args and result as :func:`dcinet.retrieval.metrics.average_precision`: (Nq, D), (Nq,),
    (Ng, D), (Ng,) in; (Nq,) float64 AP out.
    """
    q_labels, g_labels = np.asarray(query_labels), np.asarray(gallery_labels)
    ap = np.zeros(len(q_labels), dtype=np.float64)
    for i, row in enumerate(_score_rows(query_feats, gallery_feats)):
        ap[i] = ranked_average_precision(np.argsort(-row, kind="stable"), g_labels, q_labels[i])
    return ap
