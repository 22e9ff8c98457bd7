"""Reference average precision: rank every query's gallery and scan it, one item at a time.

The style of the reference evaluations (sort, then a Python loop over the ranking that compares
labels one item at a time): slow and obviously right.
Tests and the benchmark compare :mod:`dcinet.retrieval.metrics` against it; it shares only the
score computation (:func:`~dcinet.retrieval.scores.l2_normalize`,
:func:`~dcinet.retrieval.scores.normalized_scores`), so both rank exactly the same float scores.
"""

from __future__ import annotations

import numpy as np
import torch

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


def average_precision_naive(query_feats: np.ndarray | torch.Tensor,
                            query_labels: np.ndarray | torch.Tensor,
                            gallery_feats: np.ndarray | torch.Tensor,
                            gallery_labels: np.ndarray | torch.Tensor) -> np.ndarray:
    """Per query: stable argsort of ``-score`` (ties by gallery index), then the double loop of
    :func:`ranked_average_precision`.

    Args and result as :func:`dcinet.retrieval.metrics.average_precision`: (Nq, D), (Nq,),
    (Ng, D), (Ng,) in; (Nq,) float64 AP out.
    """
    query, gallery = l2_normalize(query_feats), l2_normalize(gallery_feats)
    q_labels, g_labels = np.asarray(query_labels), np.asarray(gallery_labels)
    ap = np.zeros(len(q_labels), dtype=np.float64)
    for start in range(0, len(q_labels), _BLOCK):
        scores = normalized_scores(query[start: start + _BLOCK], gallery).numpy()
        for i, row in enumerate(scores, start=start):
            order = np.argsort(-row, kind="stable")
            ap[i] = ranked_average_precision(order, g_labels, q_labels[i])
    return ap
