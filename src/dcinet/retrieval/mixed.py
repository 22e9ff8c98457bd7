"""The softmax beside the embedding: one vector whose cosine ranks by the class probabilities and
breaks their ties by the pooled embedding.

Softmax probabilities rank the classes a run was trained on best across modalities (the paper's
feature), but a confident model saturates them: many items score 1.0 against a query, and a class
the run never saw gets the probabilities of the known classes it resembles. The pooled embedding
never saturates and ranks unseen classes, but across modalities it ranks worse. With both rows
unit-normalised and the embedding scaled by ``w``, the concatenation ``[s, w e]`` has norm
``sqrt(1 + w^2)`` and the cosine of two such vectors is

    (cos(s, s') + w^2 cos(e, e')) / (1 + w^2),

so a small ``w`` keeps the softmax's order and orders its ties by the embedding.
"""

from __future__ import annotations

import numpy as np

MIX_WEIGHT = 0.1
"""``w`` of the feature ``softmax+embedding`` (:data:`dcinet.config.MIXED_FEATURE`): the embedding's cosine counts ``w^2 = 1 %`` beside the softmax's, which
orders the softmax's ties (``bench/unseen_classes.py``, ``bench/search_feature.py``)."""


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows of a float ``(N, D)`` array scaled to unit L2 norm (zero rows stay zero), float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1)


def softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of float ``(N, K)`` logits (float32)."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)


def mixed(softmax: np.ndarray, embedding: np.ndarray, weight: float) -> np.ndarray:
    """``[unit(softmax), weight * unit(embedding)]``: float32 ``(N, K + D)`` from ``(N, K)``
    probabilities and ``(N, D)`` embeddings of the same items (see the module for its cosine)."""
    if len(softmax) != len(embedding):
        raise ValueError(f"{len(softmax)} softmax rows but {len(embedding)} embedding rows")
    return np.concatenate([unit_rows(softmax), weight * unit_rows(embedding)], axis=1)


def candidate_features(embedding: np.ndarray, logits: np.ndarray,
                       weights: tuple[float, ...]) -> dict[str, np.ndarray]:
    """The features a gallery could hold, from the ``(N, D)`` embeddings and ``(N, K)`` logits of
    items of one view each (the softmax of the logits is then ``encode_views``' exactly):
    ``embedding``, ``logits``, ``softmax`` and ``softmax+<w>emb`` (:func:`mixed`) for each weight.
    What ``bench/unseen_classes.py`` and ``bench/search_feature.py`` compare."""
    softmax = softmax_rows(logits)
    out = {"embedding": np.asarray(embedding, np.float32), "logits": np.asarray(logits, np.float32),
           "softmax": softmax}
    out.update({f"softmax+{w}emb": mixed(softmax, embedding, w) for w in weights})
    return out
