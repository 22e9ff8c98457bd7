"""The top-R window shares of the report, by hand and against a sort of every score row."""

from __future__ import annotations

import numpy as np
import pytest

from dcinet.app.report.confusion import direction_confusions, top_r_confusion
from dcinet.retrieval.scores import cosine_scores


def _angles(degrees):
    rad = np.radians(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], 1)


def test_shares_by_hand():
    # query class 0 (R = 2 in the gallery); ranking by angle: 1 (10), 0 (20), 2 (30), 0 (40)
    gallery = _angles([20, 10, 40, 30])
    labels = np.array([0, 1, 0, 2])
    c = top_r_confusion(_angles([0]), np.array([0]), gallery, labels)
    assert c.query_classes.tolist() == [0] and c.gallery_classes.tolist() == [0, 1, 2]
    assert c.share.tolist() == [[0.5, 0.5, 0.0]]  # the top 2: class 1, then class 0
    assert c.pairs() == [(0, 1, 0.5)]


def test_ties_by_gallery_index_and_queries_without_relevant_items():
    same = np.ones((3, 2))
    c = top_r_confusion(np.ones((2, 2)), np.array([1, 5]), same, np.array([0, 1, 1]))
    # class 1: R = 2, all tied: items 0 (class 0) and 1 (class 1) fill the window
    assert c.query_classes.tolist() == [1] and c.queries.tolist() == [1]
    assert c.share.tolist() == [[0.5, 0.5]]


def test_self_removed_and_self_kept():
    feats, labels = _angles([0, 10, 25, 45]), np.array([0, 1, 0, 1])
    removed = top_r_confusion(feats, labels, feats, labels, exclude_self=True)
    # without itself each query has R = 1: 0 -> 10 (B), 10 -> 0 (A), 25 -> 10 (B), 45 -> 25 (A)
    assert removed.share.tolist() == [[0.0, 1.0], [1.0, 0.0]]
    kept = top_r_confusion(feats, labels, feats, labels)
    # R = 2 with itself first: 0 -> self, 10(B); 25 -> self, 10(B); 10 -> self, 0(A); 45 -> self, 25(A)
    assert kept.share.tolist() == [[0.5, 0.5], [0.5, 0.5]]


def _naive(q, ql, g, gl, exclude_self=False):
    scores = cosine_scores(q, g).numpy()
    classes = np.unique(gl)
    rows = {}
    for i, row in enumerate(scores):
        order = np.argsort(-row, kind="stable")
        if exclude_self:
            order = order[order != i]
        r = int((gl[order] == ql[i]).sum())
        if r:
            window = gl[order[:r]]
            rows.setdefault(ql[i], []).append([np.mean(window == c) for c in classes])
    return {c: np.mean(v, axis=0) for c, v in rows.items()}


@pytest.mark.parametrize("exclude_self", [False, True])
def test_equals_a_sort_of_every_row(exclude_self):
    rng = np.random.default_rng(4)
    g, gl = rng.integers(0, 3, (700, 4)).astype(float), rng.integers(0, 6, 700)  # many ties
    q, ql = (g[:600], gl[:600]) if exclude_self else (rng.integers(0, 3, (600, 4)).astype(float),
                                                      rng.integers(0, 7, 600))
    c = top_r_confusion(q, ql, g, gl, exclude_self=exclude_self)
    expected = _naive(q, ql, g, gl, exclude_self)
    assert c.query_classes.tolist() == sorted(expected)
    for i, cls in enumerate(c.query_classes):
        np.testing.assert_allclose(c.share[i], expected[cls], atol=1e-12)
        assert c.queries[i] == (ql == cls).sum()
    np.testing.assert_allclose(c.share.sum(axis=1), 1.0)


def test_directions_are_those_of_the_evaluation():
    rng = np.random.default_rng(0)
    feats = {m: rng.random((10, 3)) for m in ("audio", "image")}
    labels = {m: np.arange(10) % 3 for m in feats}
    assert list(direction_confusions(feats, labels)) == ["i2a", "a2i", "i2all", "a2all"]
    assert list(direction_confusions({"image": feats["image"]}, {"image": labels["image"]})) == [
        "i2i", "i2all"]
