"""The counting kernel behind the fast mAP: AP from the ranks of the relevant items, no sorting.

AP of a query depends only on where its R relevant items rank. Sort the relevant items by the
ranking rule (score descending, exact ties by gallery index ascending): they are the query's
*thresholds* ``t_0 .. t_{R-1}``. Every gallery item ``j`` gets ``pos_j``, the number of thresholds
that rank before it; a relevant item ``t_k`` gets ``pos = k``. Then ``C_k = #{j : pos_j <= k}`` is
the rank (1-based) of ``t_k`` in the whole ranking, and

    AP = (1 / R) * sum_k (k + 1) / C_k.

Items below the lowest threshold never enter a ``C_k`` and are skipped. ``pos_j`` is found without
a search in most cases: scores are read as their *ordinal* (the float32 bit pattern as an integer
that orders like the value, -0.0 and +0.0 both 0), and the ordinals between the lowest and the
highest threshold are cut into at most ``n_buckets`` buckets of ``2**shift`` ordinals (so buckets
are finer near 0, where softmax features put most scores). An item in a bucket without a threshold
lies below exactly the thresholds of the higher buckets; an item sharing a bucket with thresholds
is compared with those few, exactly, on (ordinal, gallery index).

One pass over a block of scores counts every query of the block at once, the counts kept per
gallery part (modality), so the AP over the whole gallery and over each part alone come from the
same pass. Counting is exact integer work; the AP sums are float64 in threshold order, the order
of the naive scan, so the two agree to the last bits.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# The most buckets per query: more buckets put fewer items into the exact comparison, but make
# the per-query tables (2 x 4 bytes per bucket and query) outgrow the CPU caches.
MAX_BUCKETS = 2048


def n_buckets_for(n_gallery: int) -> int:
    """Buckets per query for a gallery of ``n_gallery`` items (16 .. :data:`MAX_BUCKETS`)."""
    return int(min(MAX_BUCKETS, max(16, n_gallery // 4)))


@njit(cache=True, inline="always")
def _ordinal(bits):
    """float32 bits (as int32) -> an integer that orders like the float; -0.0 and +0.0 -> 0."""
    return bits if bits >= 0 else -(bits & 0x7FFFFFFF)


@njit(parallel=True, cache=True, nogil=True)
def block_average_precision(bits, rel_cols, n_rel, self_col, part_of, n_parts, n_buckets, out):
    """AP of every query of a chunk of score blocks, over the whole gallery and over each part.

    Args:
        bits: (nb, Ng, P) int32, the float32 scores of
            :func:`~dcinet.retrieval.scores.score_blocks` viewed as int32: ``[b, j, c]`` is the
            score of query ``b * P + c`` with gallery item ``j``.
        rel_cols: (nb * P, Rmax) int64, each query's relevant gallery indices (any order) in its
            first ``n_rel`` entries.
        n_rel: (nb * P,) int64, relevant items per query (0: AP 0, e.g. padding queries).
        self_col: (nb * P,) int64, the gallery index of the query itself, removed from its own
            gallery (it must then be one of its relevant items), or -1 to keep every item.
        part_of: (Ng,) int64, the part (0 .. n_parts - 1) each gallery item belongs to.
        n_parts: number of gallery parts; n_buckets: buckets per query (see :func:`n_buckets_for`).
        out: (nb * P, 1 + n_parts) float64, every row overwritten: AP over the whole gallery,
            then over each part alone (0 where the query has no relevant item).
    """
    nb, n_gallery, p = bits.shape
    r_max = rel_cols.shape[1]
    no_item = np.iinfo(np.int64).max
    for b in prange(nb):
        thr = np.empty((p, r_max), np.int64)           # threshold ordinals, ranking order
        thr_idx = np.empty((p, r_max), np.int64)       # their gallery indices
        self_rank = np.full(p, -1, np.int64)           # k of the query's own item, or -1
        low = np.full(p, no_item, np.int64)            # lowest threshold ordinal
        shift = np.zeros(p, np.int64)
        first = np.zeros((p, n_buckets), np.int32)     # thresholds in higher buckets
        n_in = np.zeros((p, n_buckets), np.int32)      # thresholds in this bucket
        hist = np.zeros((p, n_parts, r_max + 1), np.int64)
        keys = np.empty(r_max, np.int64)

        # Per query: thresholds in ranking order and the bucket tables.
        for c in range(p):
            q = b * p + c
            r = n_rel[q]
            if r == 0:
                continue
            for k in range(r):
                j = rel_cols[q, k]
                keys[k] = (0x7FFFFFFF - _ordinal(bits[b, j, c])) * n_gallery + j
            order = np.argsort(keys[:r])
            for k in range(r):
                j = rel_cols[q, order[k]]
                thr_idx[c, k] = j
                thr[c, k] = _ordinal(bits[b, j, c])
                if j == self_col[q]:
                    self_rank[c] = k
            lo, s = thr[c, r - 1], 0
            while ((thr[c, 0] - lo) >> s) >= n_buckets:
                s += 1
            low[c], shift[c] = lo, s
            for k in range(r):
                n_in[c, (thr[c, k] - lo) >> s] += 1
            above = 0
            for u in range(n_buckets - 1, -1, -1):
                first[c, u] = above
                above += n_in[c, u]

        # The hot loop: place every gallery item among its query's thresholds.
        for j in range(n_gallery):
            m = part_of[j]
            for c in range(p):
                o = _ordinal(bits[b, j, c])
                d = o - low[c]
                if d < 0:  # below the lowest threshold: ranks after every relevant item
                    continue
                u = d >> shift[c]
                if u >= n_buckets:  # above the highest threshold
                    hist[c, m, 0] += 1
                    continue
                pos = first[c, u]
                for _ in range(n_in[c, u]):  # thresholds sharing the bucket, in ranking order
                    t = thr[c, pos]
                    if t > o or (t == o and thr_idx[c, pos] < j):
                        pos += 1
                    else:
                        break
                hist[c, m, pos] += 1

        # AP from the cumulative counts; the query's own item (if removed) is taken back out.
        for c in range(p):
            q = b * p + c
            r = n_rel[q]
            out[q, :] = 0.0
            if r == 0:
                continue
            ks = self_rank[c]
            if ks >= 0:
                hist[c, part_of[thr_idx[c, ks]], ks] -= 1
            total, hits, acc = 0, 0, 0.0
            for k in range(r):
                for m in range(n_parts):
                    total += hist[c, m, k]
                if k != ks:
                    hits += 1
                    acc += hits / total
            out[q, 0] = acc / hits if hits else 0.0
            for m in range(n_parts):
                total, hits, acc = 0, 0, 0.0
                for k in range(r):
                    total += hist[c, m, k]
                    if k != ks and part_of[thr_idx[c, k]] == m:
                        hits += 1
                        acc += hits / total
                out[q, 1 + m] = acc / hits if hits else 0.0
