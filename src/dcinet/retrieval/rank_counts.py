"""The counting kernel behind the fast metrics: ranks of the relevant items, no sorting.

AP, mAP@R, Recall@K and precision@K of a query depend only on where its R relevant items rank.
Sort the relevant items by the ranking rule (score descending, exact ties by gallery index
ascending): they are the query's *thresholds* ``t_0 .. t_{R-1}``. Every gallery item ``j`` gets
``pos_j``, the number of thresholds that rank before it; a relevant item ``t_k`` gets ``pos = k``.
Then ``C_k = #{j : pos_j <= k}`` is the rank (1-based) of ``t_k`` in the whole ranking, and

    AP = (1 / R) * sum_k (k + 1) / C_k,    mAP@R = (1 / R) * sum_{k : C_k <= R} (k + 1) / C_k,

the first relevant rank is ``C_0`` and the relevant items in the top K are ``#{k : C_k <= K}``.

Items below the lowest threshold never enter a ``C_k`` and are skipped. ``pos_j`` is found without
a search in most cases: scores are read as their *ordinal* (the float32 bit pattern as an integer
that orders like the value, -0.0 and +0.0 both 0), and the ordinals between the lowest and the
highest threshold are cut into at most ``n_buckets`` buckets of ``2**shift`` ordinals (so buckets
are finer near 0, where softmax features put most scores), plus one bucket below and one above
them all. An item in a bucket without a threshold lies below exactly the thresholds of the higher
buckets; an item sharing a bucket with thresholds is compared with those few, exactly, on
(ordinal, gallery index).

One pass over a query's score row counts its items per gallery part (modality), so the statistics
over the whole gallery and over each part alone come from the same pass. Counting is exact integer
work; the AP sums are float64 in threshold order, the order of the naive scan, so the two agree to
the last bits.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# The most buckets per query: more buckets put fewer items into the exact comparison, but make
# the per-query tables (2 x 4 bytes per bucket) outgrow the fastest CPU cache.
MAX_BUCKETS = 2048

# The statistics of one query over one scope (the whole gallery or one part), in this order along
# the last axis of the kernel's output, followed by the hits in the top K for each requested K.
AP, AP_AT_R, FIRST_RANK, N_RELEVANT, HITS_AT = 0, 1, 2, 3, 4


def n_buckets_for(n_gallery: int) -> int:
    """Buckets per query for a gallery of ``n_gallery`` items (16 .. :data:`MAX_BUCKETS`)."""
    return int(min(MAX_BUCKETS, max(16, n_gallery // 4)))


@njit(cache=True, inline="always")
def _ordinal(bits):
    """float32 bits (as int32) -> an integer that orders like the float; -0.0 and +0.0 -> 0.

    A negative float stores its magnitude after the sign bit: its ordinal is -magnitude
    (computed without a branch: ``sign`` is 0 or -1).
    """
    sign = bits >> 31
    return ((bits & 0x7FFFFFFF) ^ sign) - sign


@njit(cache=True, inline="always")
def _scope_stats(counts, hit, ks, out):
    """One scope's statistics from its counts per threshold position.

    Args:
        counts: (R,) items of the scope placed at each position ``k`` (after threshold ``k - 1``,
            up to and including threshold ``k``), so their running sum is the rank of ``t_k``.
        hit: (R,) bool, whether ``t_k`` is a relevant item of the scope.
        ks: (n_k,) int64 cut-offs K; out: (HITS_AT + n_k,) float64, overwritten.
    """
    n_relevant = 0
    for k in range(len(hit)):
        n_relevant += hit[k]
    out[:] = 0.0
    total, hits, acc, acc_r = 0, 0, 0.0, 0.0
    for k in range(len(counts)):
        total += counts[k]
        if hit[k]:
            hits += 1
            precision = hits / total
            acc += precision
            if total <= n_relevant:
                acc_r += precision
            if hits == 1:
                out[FIRST_RANK] = total
            for i in range(len(ks)):
                if total <= ks[i]:
                    out[HITS_AT + i] += 1
    if n_relevant:
        out[AP] = acc / n_relevant
        out[AP_AT_R] = acc_r / n_relevant
    out[N_RELEVANT] = n_relevant


@njit(parallel=True, cache=True, nogil=True)
def block_rank_stats(bits, query_class, members, starts, self_col, part_of, n_parts, n_buckets,
                     ks, out):
    """Rank statistics of every query of a chunk of score rows, over the whole gallery and over
    each part.

    Queries run in parallel; each keeps its tables (a few kB) in the fastest cache while it walks
    its score row once.

    Args:
        bits: (n, Ng) int32, the float32 scores of :func:`~dcinet.retrieval.scores.score_blocks`
            viewed as int32: row ``q`` holds query ``q``'s scores.
        query_class: (n,) int64, each query's class as an index into ``starts`` (-1: the class is
            absent from the gallery: no relevant item).
        members: (Ng,) int64 gallery indices grouped by class: class ``c``'s items (the relevant
            items of its queries, in any order) are ``members[starts[c]:starts[c + 1]]``.
        starts: (C + 1,) int64 class boundaries in ``members``.
        self_col: (n,) int64, the gallery index of the query itself, removed from its own
            gallery (it must then be one of its relevant items), or -1 to keep every item.
        part_of: (Ng,) int64, the part (0 .. n_parts - 1) each gallery item belongs to.
        n_parts: number of gallery parts; n_buckets: buckets per query (see :func:`n_buckets_for`).
        ks: (n_k,) int64 cut-offs K for the hits in the top K.
        out: (n, 1 + n_parts, HITS_AT + n_k) float64, every row overwritten: for the whole
            gallery, then each part alone, [AP, mAP@R term, first relevant rank (0: none),
            number of relevant items R, relevant items among the first K for each K]; a query
            without relevant items gets zeros.
    """
    n, n_gallery = bits.shape
    top = n_buckets + 1  # bucket 0: below the lowest threshold; top: above the highest
    for q in prange(n):
        out[q, :, :] = 0.0
        if query_class[q] < 0:
            continue
        relevant = members[starts[query_class[q]]: starts[query_class[q] + 1]]
        r = len(relevant)
        row = bits[q]

        # Thresholds in ranking order, and the buckets: first[u] = thresholds in higher buckets
        # (the position of an item of bucket u among them), n_in[u] = thresholds in bucket u.
        keys = np.empty(r, np.int64)
        for k in range(r):
            j = relevant[k]
            keys[k] = (0x7FFFFFFF - _ordinal(row[j])) * n_gallery + j
        order = np.argsort(keys)
        thr = np.empty(r, np.int64)
        thr_idx = np.empty(r, np.int64)
        self_rank = -1
        for k in range(r):
            j = relevant[order[k]]
            thr[k], thr_idx[k] = _ordinal(row[j]), j
            if j == self_col[q]:
                self_rank = k
        low, shift = thr[r - 1], 0
        while ((thr[0] - low) >> shift) >= n_buckets:
            shift += 1
        n_in = np.zeros(top + 1, np.int32)
        for k in range(r):
            n_in[((thr[k] - low) >> shift) + 1] += 1
        first = np.empty(top + 1, np.int32)
        above = 0
        for u in range(top, -1, -1):
            first[u] = above
            above += n_in[u]

        # The hot loop: every gallery item placed among the thresholds (position r: below all).
        hist = np.zeros((n_parts, r + 1), np.int32)
        for j in range(n_gallery):
            o = _ordinal(row[j])
            u = min(max(((o - low) >> shift) + 1, 0), top)
            pos = first[u]
            for _ in range(n_in[u]):  # thresholds sharing the bucket, in ranking order
                t = thr[pos]
                if t > o or (t == o and thr_idx[pos] < j):
                    pos += 1
                else:
                    break
            hist[part_of[j], pos] += 1

        # Statistics from the counts; the query's own item (if removed) is taken back out.
        if self_rank >= 0:
            hist[part_of[thr_idx[self_rank]], self_rank] -= 1
        hit = np.ones(r, np.bool_)
        if self_rank >= 0:
            hit[self_rank] = False
        _scope_stats(hist[:, :r].sum(axis=0), hit, ks, out[q, 0])
        for m in range(n_parts):
            for k in range(r):
                hit[k] = k != self_rank and part_of[thr_idx[k]] == m
            _scope_stats(hist[m, :r], hit, ks, out[q, 1 + m])
