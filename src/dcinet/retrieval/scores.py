"""Cosine scores of feature rows, computed so that every caller sees the same float bits.

The metric (:mod:`dcinet.retrieval.metrics`), its naive reference and the demo's example queries
all rank these scores: rows are L2-normalised in float64 and stored as float32, and the products are
taken in fixed blocks of :data:`SCORE_BLOCK` queries, so a query's scores do not depend on how the
caller batches the queries (the BLAS picks its kernel, and so the rounding, by matrix shape).
"""

from __future__ import annotations

import numpy as np
import torch

from dcinet.errors import DcinetError

# Queries per matrix product. The BLAS picks its kernel, and so the float rounding, by matrix
# shape, so scores are always computed in blocks of exactly this many queries, aligned at query 0:
# every query's scores are then bit-identical however the caller batches the queries.
SCORE_BLOCK = 128


def l2_normalize(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm (all-zero rows stay zero), -0.0 turned into +0.0.

    Args:
        x: (N, D) real features, numpy or torch (CPU).

    Returns:
        (N, D) float32 tensor. The norm is computed in float64, row by row.
    """
    x64 = torch.as_tensor(x).detach().to("cpu", torch.float64)
    if x64.ndim != 2:
        raise DcinetError(f"features must be a 2-D (N, D) array, got shape {tuple(x64.shape)}")
    if not torch.isfinite(x64).all():
        raise DcinetError("features contain NaN or infinite values")
    norms = x64.norm(dim=1, keepdim=True)
    unit = torch.where(norms > 0, x64 / norms.clamp_min(1e-300), x64).to(torch.float32)
    return unit + 0.0  # -0.0 + 0.0 == +0.0


def score_blocks(query: torch.Tensor, gallery: torch.Tensor,
                 out: torch.Tensor | None = None) -> torch.Tensor:
    """Dot products of normalised rows, computed in blocks of :data:`SCORE_BLOCK` queries.

    Args:
        query: (Nq, D) float32; gallery: (Ng, D) float32, both from :func:`l2_normalize`.
        out: optional float32 buffer with at least nb * SCORE_BLOCK * Ng elements, reused.

    Returns:
        (nb * SCORE_BLOCK, Ng) float32, nb = ceil(Nq / SCORE_BLOCK): row ``i`` holds the scores of
        query ``i`` with every gallery item (rows past Nq score 0).
    """
    n, dim = query.shape
    n_gallery = gallery.shape[0]
    if dim != gallery.shape[1]:
        raise DcinetError(f"query and gallery features differ in dimension: {dim} vs "
                          f"{gallery.shape[1]}")
    if n_gallery == 1:  # a matrix-vector product would round differently: use two rows
        return score_blocks(query, gallery.repeat(2, 1))[:, :1].contiguous()
    n_blocks = -(-n // SCORE_BLOCK)
    size = n_blocks * SCORE_BLOCK * n_gallery
    out = torch.empty(size) if out is None else out.view(-1)[:size]
    out = out.view(n_blocks, SCORE_BLOCK, n_gallery)
    block = torch.empty(SCORE_BLOCK, dim)
    for b in range(n_blocks):
        rows = query[b * SCORE_BLOCK: (b + 1) * SCORE_BLOCK]
        block[: len(rows)] = rows
        block[len(rows):] = 0.0
        torch.mm(block, gallery.T, out=out[b])
    return out.view(-1, n_gallery)


def normalized_scores(query: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """(Nq, Ng) float32 scores of normalised rows, as :func:`score_blocks` computes them.

    Splitting ``query`` into parts that start at multiples of :data:`SCORE_BLOCK` gives the same
    bits as one call.
    """
    return score_blocks(query, gallery)[: query.shape[0]]


def cosine_scores(query: np.ndarray | torch.Tensor, gallery: np.ndarray | torch.Tensor
                  ) -> torch.Tensor:
    """Cosine similarity of every query row with every gallery row.

    Args:
        query: (Nq, D) features; gallery: (Ng, D) features (numpy or torch, any real dtype).

    Returns:
        (Nq, Ng) float32 torch tensor (CPU), in [-1, 1] up to rounding: exactly the scores that
        :func:`~dcinet.retrieval.metrics.average_precision` ranks, so every caller sees the same ties.
    """
    return normalized_scores(l2_normalize(query), l2_normalize(gallery))
