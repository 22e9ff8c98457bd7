"""The rank-counting kernel called directly: every output row written, the bucket paths, self
removal, and the rank statistics beside the AP."""

from __future__ import annotations

import numpy as np
import pytest

from dcinet.retrieval.naive import ranked_average_precision
from dcinet.retrieval.rank_counts import (
    AP,
    AP_AT_R,
    FIRST_RANK,
    HITS_AT,
    MAX_BUCKETS,
    N_RELEVANT,
    block_rank_stats,
    n_buckets_for,
)


def _kernel(scores: np.ndarray, labels: np.ndarray, query_labels: np.ndarray,
            parts: np.ndarray | None = None, self_col: np.ndarray | None = None,
            n_buckets: int = 16, ks=(1, 2)) -> np.ndarray:
    """The AP of the kernel on (Nq, Ng) float32 scores: (Nq, 1 + parts)."""
    return _stats(scores, labels, query_labels, parts, self_col, n_buckets, ks)[..., AP]


def _stats(scores, labels, query_labels, parts=None, self_col=None, n_buckets=16, ks=(1, 2)):
    """Every statistic of the kernel: (Nq, 1 + parts, HITS_AT + len(ks))."""
    nq, ng = scores.shape
    bits = np.ascontiguousarray(scores, dtype=np.float32).view(np.int32)
    classes, counts = np.unique(labels, return_counts=True)
    starts = np.concatenate([[0], np.cumsum(counts)])
    # grouped by class; within a class in descending index order (the kernel takes any order)
    members = np.concatenate([np.flatnonzero(labels == c)[::-1] for c in classes])
    query_class = np.array([np.flatnonzero(classes == y)[0] if y in classes else -1
                            for y in query_labels], dtype=np.int64)
    parts = np.zeros(ng, dtype=np.int64) if parts is None else parts
    self_col = np.full(nq, -1, dtype=np.int64) if self_col is None else self_col
    out = np.full((nq, 1 + int(parts.max()) + 1, HITS_AT + len(ks)), np.nan)
    block_rank_stats(bits, query_class, members.astype(np.int64), starts.astype(np.int64),
                     self_col, parts, int(parts.max()) + 1, n_buckets, np.asarray(ks, np.int64),
                     out)
    return out


def _naive(scores_row: np.ndarray, labels: np.ndarray, query_label: int) -> float:
    return ranked_average_precision(np.argsort(-scores_row, kind="stable"), labels, query_label)


def test_every_output_row_is_written_even_without_relevant_items():
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.4]], dtype=np.float32)
    out = _kernel(scores, np.array([0, 1, 0]), np.array([0, 7]))  # query 1: label 7 is absent
    assert not np.isnan(out).any()
    assert out[1].tolist() == [0.0, 0.0]
    assert out[0, 0] == pytest.approx((1 / 1 + 2 / 2) / 2)


@pytest.mark.parametrize("n_buckets", [16, 64, MAX_BUCKETS])
def test_matches_a_scan_when_many_thresholds_share_buckets(n_buckets):
    # 40 relevant items among 200, scores quantised to 7 values (long tie runs) spanning negative
    # and positive: thresholds crowd into few buckets and the exact comparison path does the work
    rng = np.random.default_rng(3)
    scores = rng.choice(np.float32([-0.75, -0.5, -0.0, 0.0, 0.25, 1e-8, 0.5]), size=(6, 200))
    labels = rng.integers(0, 5, 200)
    query_labels = np.arange(6) % 5
    out = _kernel(scores.astype(np.float32), labels, query_labels, n_buckets=n_buckets)
    for i in range(6):
        assert out[i, 0] == pytest.approx(_naive(scores[i], labels, query_labels[i]), abs=1e-12)


def test_parts_are_ranked_alone():
    rng = np.random.default_rng(5)
    scores = rng.random((4, 30)).astype(np.float32)
    labels, parts = rng.integers(0, 3, 30), np.repeat([0, 1, 2], 10)
    query_labels = np.array([0, 1, 2, 0])
    out = _kernel(scores, labels, query_labels, parts=parts)
    for i in range(4):
        for m in range(3):
            inside = parts == m
            expected = _naive(scores[i, inside], labels[inside], query_labels[i])
            assert out[i, 1 + m] == pytest.approx(expected, abs=1e-12)


def test_the_query_itself_is_taken_out_of_its_gallery():
    # query 0 is item 0 (score 1.0, rank 1); without it: 0.8 irr, 0.6 rel, 0.4 rel -> (1/2 + 2/3) / 2
    scores = np.array([[1.0, 0.8, 0.6, 0.4]], dtype=np.float32)
    labels = np.array([0, 1, 0, 0])
    kept = _kernel(scores, labels, np.array([0]))
    removed = _kernel(scores, labels, np.array([0]), self_col=np.array([0]))
    assert kept[0, 0] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    assert removed[0, 0] == pytest.approx((1 / 2 + 2 / 3) / 2)
    # the only item of its class: nothing left to find
    assert _kernel(scores, np.array([0, 1, 1, 1]), np.array([0]), self_col=np.array([0]))[0, 0] == 0


def test_rank_statistics_by_hand():
    # ranking: irr, rel, irr, rel, rel (R = 3): ranks 2, 4, 5
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.5]], dtype=np.float32)
    labels = np.array([1, 0, 1, 0, 0])
    stats = _stats(scores, labels, np.array([0]), ks=(1, 2, 4, 10))[0, 0]
    assert stats[AP] == pytest.approx((1 / 2 + 2 / 4 + 3 / 5) / 3)
    assert stats[AP_AT_R] == pytest.approx((1 / 2) / 3)  # only rank 2 lies within the top R = 3
    assert stats[FIRST_RANK] == 2 and stats[N_RELEVANT] == 3
    assert stats[HITS_AT:].tolist() == [0, 1, 2, 3]


def test_rank_statistics_without_self_and_per_part():
    # item 0 is the query (rank 1, removed): without it irr, rel | rel, irr -> ranks 2 and 3
    scores = np.array([[1.0, 0.9, 0.8, 0.7, 0.6]], dtype=np.float32)
    labels, parts = np.array([0, 1, 0, 0, 1]), np.array([0, 0, 0, 1, 1])
    stats = _stats(scores, labels, np.array([0]), parts=parts, self_col=np.array([0]))[0]
    whole, first, second = stats
    assert whole[N_RELEVANT] == 2 and whole[FIRST_RANK] == 2
    assert whole[AP] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert whole[AP_AT_R] == pytest.approx((1 / 2) / 2)
    assert whole[HITS_AT:].tolist() == [0, 1]
    # part 0 alone (query removed): irr (0.9), rel (0.8)
    assert first[N_RELEVANT] == 1 and first[FIRST_RANK] == 2 and first[AP] == 0.5
    assert first[AP_AT_R] == 0.0 and first[HITS_AT:].tolist() == [0, 1]
    # part 1 alone: rel (0.7), irr (0.6)
    assert second[N_RELEVANT] == 1 and second[FIRST_RANK] == 1 and second[AP] == 1.0
    assert second[AP_AT_R] == 1.0 and second[HITS_AT:].tolist() == [1, 1]


def test_bucket_count_grows_with_the_gallery_and_is_capped():
    assert n_buckets_for(1) == 16
    assert n_buckets_for(4000) == 1000
    assert n_buckets_for(10 ** 7) == MAX_BUCKETS
