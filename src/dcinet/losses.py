"""The cross-entropy losses of §3.4 (eq. 7).

``L_img``, ``L_aud``, ``L_txt`` (and ``L_vid``) are :func:`modality_cross_entropy` on one
modality's logits; ``L_dual`` is :func:`soft_target_cross_entropy` on the logits of the maps after
CMSI / CMCI, whose targets are soft (mixtures of one-hot labels). Both average over the ``m``
samples given and compute in float32, so they are safe under float16 autocast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def modality_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. 7 with one-hot ``y``: ``(1/m) * sum_i -log softmax(f_i)[label_i]``.

    Args:
        logits: float ``(m, C)`` class scores of one modality's ``m`` samples.
        labels: int64 ``(m,)`` class indices in ``[0, C)``.
    Returns:
        float32 scalar (nats).
    """
    return F.cross_entropy(logits.float(), labels)


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
