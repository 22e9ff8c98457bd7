"""The cross-entropy losses of §3.4 (eq. 7), and the FGCrossNet baseline's center and quadruplet
ranking losses (:func:`center_loss`, :func:`quadruplet_loss`).

``L_img``, ``L_aud``, ``L_txt`` (and ``L_vid``) are :func:`modality_cross_entropy` on one
modality's logits; ``L_dual`` is :func:`soft_target_cross_entropy` on the logits of the maps after
CMSI / CMCI, whose targets are soft (mixtures of one-hot labels). Both average over the ``m``
samples given and compute in float32, so they are safe under float16 autocast (so do the
baseline losses).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def modality_cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                           label_smoothing: float = 0.0) -> torch.Tensor:
    """Eq. 7 with one-hot ``y``: ``(1/m) * sum_i -log softmax(f_i)[label_i]``.

    With ``label_smoothing`` ``s`` the target is ``(1 - s) * one_hot + s / C`` instead, i.e.
    ``(1 - s) * CE + s * (1/m) * sum_i mean_c -log softmax(f_i)[c]`` (torch's definition).

    Args:
        logits: float ``(m, C)`` class scores of one modality's ``m`` samples.
        labels: int64 ``(m,)`` class indices in ``[0, C)``.
        label_smoothing: ``s`` in ``[0, 1)``; 0 = the paper's one-hot targets.
    Returns:
        float32 scalar (nats).
    """
    return F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)


def soft_target_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Eq. 7 with soft ``y``: ``(1/m) * sum_i -y_i^T log softmax(f_i)``.

    Args:
        logits: float ``(m, C)`` class scores.
        targets: float ``(m, C)`` target distributions (each row non-negative, summing to 1).
    Returns:
        float32 scalar (nats).
    """
    log_p = F.log_softmax(logits.float(), dim=1)
    return -(targets.float() * log_p).sum(dim=1).mean()


def center_loss(features: torch.Tensor, labels: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """FGCrossNet's center loss: ``(1/N) * sum_i 1/2 * ||f_i - c_{y_i}||^2``.

    Args:
        features: float ``(N, D)`` embeddings of the batch (any modality).
        labels: int64 ``(N,)`` class indices in ``[0, K)``.
        centres: float ``(K, D)`` class centres, one per class, shared by all modalities.
    Returns:
        float32 scalar (squared feature units). Its gradient reaches ``features`` and the rows of
        ``centres`` whose class is in the batch: ``d/dc_k = -(1/N) * sum_{i: y_i = k} (f_i - c_k)``.
    """
    diff = features.float() - centres.float()[labels]
    return 0.5 * diff.pow(2).sum(dim=1).mean()


def pairwise_sq_distances(features: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances ``d(i, j) = ||f_i - f_j||^2``: float ``(N, D)`` -> float32
    ``(N, N)``, from explicit differences (exact zeros on the diagonal, smooth gradients)."""
    x = features.float()
    return (x[:, None, :] - x[None, :, :]).pow(2).sum(dim=2)


def quadruplet_loss(features: torch.Tensor, labels: torch.Tensor,
                    modality_ids: torch.Tensor | None = None, margin1: float = 1.0,
                    margin2: float = 0.5) -> torch.Tensor:
    """FGCrossNet's quadruplet ranking loss over every valid quadruplet of the batch.

    A quadruplet ``(i, j, k, l)`` is valid when ``y_j = y_i`` with ``j != i`` (and, when
    ``modality_ids`` is given, ``j`` from another modality than ``i``: cross-modal positives),
    ``y_k != y_i``, ``y_l != y_i`` and ``y_k != y_l`` (negatives of any modality). With squared
    Euclidean ``d``, each contributes
    ``max(0, d(i,j) - d(i,k) + margin1) + max(0, d(i,j) - d(l,k) + margin2)``
    and the loss is the mean over all valid quadruplets (0, still attached to the graph, when
    the batch has none). Deterministic given the batch; memory ``O(P * N^2)`` for ``P``
    positive pairs.

    Args:
        features: float ``(N, D)`` embeddings.
        labels: int64 ``(N,)`` class indices.
        modality_ids: optional int ``(N,)`` modality of each sample.
        margin1, margin2: ``alpha_1``, ``alpha_2`` (squared feature units).
    Returns:
        float32 scalar.
    """
    dist = pairwise_sq_distances(features)
    n = labels.shape[0]
    same = labels[:, None] == labels[None, :]
    positive = same & ~torch.eye(n, dtype=torch.bool, device=labels.device)
    if modality_ids is not None:
        positive &= modality_ids[:, None] != modality_ids[None, :]
    anchor, pos = positive.nonzero(as_tuple=True)  # (P,) each
    d_ap = dist[anchor, pos]  # (P,)
    negative = ~same[anchor]  # (P, N): y_k != y_i
    valid = negative[:, :, None] & negative[:, None, :] & ~same[None]  # (P, N_k, N_l)
    term1 = torch.relu(d_ap[:, None] - dist[anchor] + margin1)  # (P, N_k): d(i,j) - d(i,k)
    term2 = torch.relu(d_ap[:, None, None] - dist.T[None] + margin2)  # (P, N_k, N_l): d(i,j) - d(l,k)
    total = ((term1[:, :, None] + term2) * valid).sum()
    return total / valid.sum().clamp(min=1)
