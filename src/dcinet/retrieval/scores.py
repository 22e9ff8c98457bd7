"""Cosine scores of feature rows, computed so that every caller sees the same float bits.

The metric (:mod:`dcinet.retrieval.metrics`), its naive reference and the demo's example queries
all rank these scores: rows are L2-normalised in float64 and stored as float32, and the products are
taken one tile at a time, every tile the same matrix product (:data:`SCORE_BLOCK` queries by
:data:`GALLERY_BLOCK` gallery items, zero-padded, in buffers of one layout). The BLAS picks its
kernel, and so the float rounding, by matrix shape (with MKL on an AMD EPYC a gallery narrower than
16 items rounded differently from a wider one), so no product has a shape that depends on the
caller's sizes, and there is no special case for small or one-item galleries.

What is promised (way (a) of issue #11: exact by construction, not by tolerance): on one machine a
query/gallery pair's score does not depend on how either side is sliced or batched. That the shape
never varies holds by construction; that a pair's position inside its tile does not matter relies
on a GEMM computing every element of one product with the same reduction over the feature
dimension (the micro-kernel's loop), which ``tests/retrieval/test_metrics.py`` checks at unaligned
offsets. Bits may differ between machines (another BLAS or kernel), never between calls on one.
"""

from __future__ import annotations

import numpy as np
import torch

from dcinet.errors import DcinetError

# The shape of every score product: SCORE_BLOCK queries by GALLERY_BLOCK gallery items, each side cut
# into blocks from its first row, the last block zero-padded. On 2 cores 512 x 512 tiles evaluate the
# nine directions as fast as one product per 128 queries did at PKU FG-XMedia's quarter size, and
# 27% faster at full size (issue #11); smaller tiles lose to the BLAS's per-call thread overhead.
SCORE_BLOCK = 512
GALLERY_BLOCK = 512


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


def _padded(rows: torch.Tensor, block: int) -> torch.Tensor:
    """(N, D) rows -> (ceil(N / block), block, D) contiguous float32, zero rows after the last."""
    n, dim = rows.shape
    n_blocks = -(-n // block)
    out = torch.zeros(n_blocks * block, dim)
    out[:n] = rows
    return out.view(n_blocks, block, dim)


def score_blocks(query: torch.Tensor, gallery: torch.Tensor,
                 out: torch.Tensor | None = None) -> torch.Tensor:
    """Dot products of normalised rows, one (SCORE_BLOCK, GALLERY_BLOCK) tile at a time.

    Args:
        query: (Nq, D) float32; gallery: (Ng, D) float32, both from :func:`l2_normalize`.
        out: optional float32 buffer with at least nb * SCORE_BLOCK * Ng elements, reused.

    Returns:
        (nb * SCORE_BLOCK, Ng) float32, nb = ceil(Nq / SCORE_BLOCK): row ``i`` holds the scores of
        query ``i`` with every gallery item (rows past Nq score 0). Even one query costs a whole
        tile per gallery block.
    """
    dim = query.shape[1]
    n_gallery = gallery.shape[0]
    if dim != gallery.shape[1]:
        raise DcinetError(f"query and gallery features differ in dimension: {dim} vs "
                          f"{gallery.shape[1]}")
    queries, items = _padded(query, SCORE_BLOCK), _padded(gallery, GALLERY_BLOCK)
    size = len(queries) * SCORE_BLOCK * n_gallery
    out = torch.empty(size) if out is None else out.view(-1)[:size]
    out = out.view(len(queries), SCORE_BLOCK, n_gallery)
    tile = torch.empty(SCORE_BLOCK, GALLERY_BLOCK)
    for block, scores in zip(queries, out, strict=True):
        for start, item_block in zip(range(0, n_gallery, GALLERY_BLOCK), items, strict=True):
            torch.mm(block, item_block.T, out=tile)
            scores[:, start: start + GALLERY_BLOCK] = tile[:, : n_gallery - start]
    return out.view(len(queries) * SCORE_BLOCK, n_gallery)


def normalized_scores(query: torch.Tensor, gallery: torch.Tensor) -> torch.Tensor:
    """(Nq, Ng) float32 scores of normalised rows, as :func:`score_blocks` computes them: any split
    of either side gives the same bits as one call."""
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
