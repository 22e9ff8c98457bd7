"""The fast mAP against hand-computed values, the naive reference, sklearn and itself."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dcinet.errors import DcinetError
from dcinet.retrieval.metrics import (
    average_precision,
    average_precision_parts,
    mean_average_precision,
)
from dcinet.retrieval.naive import average_precision_naive
from dcinet.retrieval.scores import GALLERY_BLOCK, SCORE_BLOCK, cosine_scores, l2_normalize


def _angles(degrees: list[float]) -> np.ndarray:
    """Unit 2-d vectors at the given angles: cosine with (1, 0) falls as the angle grows."""
    rad = np.radians(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], 1)


QUERY = np.array([[1.0, 0.0]])


def _ap(gallery: np.ndarray, gallery_labels: list[int], query_label: int = 1, **kw) -> float:
    return float(average_precision(QUERY, [query_label], gallery, np.array(gallery_labels), **kw)[0])


# ---- hand-computed cases -------------------------------------------------------------------

def test_relevant_at_ranks_1_and_3():
    # ranking by angle: 0 (rel), 10 (irr), 20 (rel), 30 (irr) -> (1/1 + 2/3) / 2
    assert _ap(_angles([20, 0, 30, 10]), [1, 1, 0, 0]) == pytest.approx((1 + 2 / 3) / 2, abs=1e-12)


def test_relevant_items_all_last():
    # three irrelevant items score higher than both relevant ones: (1/4 + 2/5) / 2
    gallery = _angles([50, 60, 0, 10, 20])
    assert _ap(gallery, [1, 1, 0, 0, 0]) == pytest.approx((1 / 4 + 2 / 5) / 2, abs=1e-12)


def test_query_without_relevant_item_scores_zero():
    ap = average_precision(np.eye(2), [0, 7], np.eye(2), [0, 0])
    assert ap.tolist() == [1.0, 0.0]


def test_exact_ties_are_broken_by_gallery_index():
    same = _angles([0, 0])
    assert _ap(same, [0, 1]) == 0.5  # the irrelevant twin comes first
    assert _ap(same, [1, 0]) == 1.0  # the relevant twin comes first
    # a tie block in the middle: ranks 1 irr (angle 0), then three equal scores at 10 degrees
    # in index order irr(1), rel(2), irr(3), then rel at 40 degrees -> (1/3 + 2/5) / 2
    gallery = _angles([0, 10, 10, 10, 40])
    assert _ap(gallery, [0, 0, 1, 0, 1]) == pytest.approx((1 / 3 + 2 / 5) / 2, abs=1e-12)


def test_all_scores_equal_follow_gallery_order():
    # zero features score 0 with everything: the ranking is the gallery order
    labels = np.array([0, 1, 1, 0, 1])
    ap = average_precision(np.zeros((1, 3)), [1], np.zeros((5, 3)), labels)
    assert ap[0] == pytest.approx((1 / 2 + 2 / 3 + 3 / 5) / 3, abs=1e-12)


def test_negative_scores_and_signed_zero():
    # scores 0.0 (index 0, relevant), -0.5 (irrelevant) and +0.5 (irrelevant)
    gallery = np.array([[0.0, 1.0], [-0.5, 0.866], [0.5, 0.866]])
    assert _ap(gallery, [1, 0, 0]) == pytest.approx(1 / 2, abs=1e-12)
    # -0.0 entries behave exactly like +0.0 ones
    signed = np.array([[-0.0, 1.0], [0.0, 1.0]])
    assert _ap(signed, [0, 1]) == _ap(np.abs(signed), [0, 1]) == 0.5


def test_self_match_counts_when_the_query_is_in_the_gallery():
    # X->all style: the query (index 0) is its own best match and a relevant item
    feats = _angles([0, 30, 60])
    ap = average_precision(feats[:1], [1], feats, [1, 0, 1])
    assert ap[0] == pytest.approx((1 / 1 + 2 / 3) / 2, abs=1e-12)


def test_label_absent_from_gallery_and_string_labels():
    ap = average_precision(np.eye(3), ["a", "b", "zzz"], np.eye(3), ["a", "b", "b"])
    assert ap[0] == 1.0
    assert ap[1] == pytest.approx((1 + 2 / 3) / 2)  # the other "b" ties with an "a" before it
    assert ap[2] == 0.0


def test_mean_average_precision_is_the_mean():
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(30, 5)), rng.normal(size=(40, 5))
    ql, gl = rng.integers(0, 4, 30), rng.integers(0, 4, 40)
    expected = average_precision(q, ql, g, gl).mean()
    assert mean_average_precision(q, ql, g, gl) == pytest.approx(expected, abs=1e-15)
    assert mean_average_precision(np.zeros((0, 5)), [], g, gl) == 0.0


# ---- against the naive reference ------------------------------------------------------------

def _random_case(kind: str, nq: int, ng: int, dim: int, classes: int, seed: int):
    rng = np.random.default_rng(seed)
    if kind == "gaussian":  # no ties, negative scores
        q, g = rng.normal(size=(nq, dim)), rng.normal(size=(ng, dim))
    elif kind == "quantised":  # entries in {-1, 0, 1}: many exact ties, some zero rows
        q, g = rng.integers(-1, 2, (nq, dim)), rng.integers(-1, 2, (ng, dim))
    else:  # "softmax": non-negative, peaky, scores spanning orders of magnitude, coarse ties
        def softmax(n):
            labels = rng.integers(0, classes, n)
            logits = 6.0 * np.eye(max(classes, dim))[labels][:, :dim] + 2 * rng.normal(size=(n, dim))
            e = np.exp(logits - logits.max(1, keepdims=True))
            return np.round(e / e.sum(1, keepdims=True), 3), labels
        (q, ql), (g, gl) = softmax(nq), softmax(ng)
        return q, ql, g, gl
    return q, rng.integers(0, classes + 1, nq), g, rng.integers(0, classes, ng)


@pytest.mark.parametrize("kind", ["gaussian", "quantised", "softmax"])
@pytest.mark.parametrize(("nq", "ng", "dim", "classes"),
                         [(1, 1, 3, 1), (5, 40, 2, 3), (150, 300, 6, 8), (300, 2100, 12, 20)])
def test_equals_the_naive_reference(kind, nq, ng, dim, classes):
    q, ql, g, gl = _random_case(kind, nq, ng, dim, classes, seed=nq + ng)
    expected = average_precision_naive(q, ql, g, gl)
    np.testing.assert_allclose(average_precision(q, ql, g, gl), expected, rtol=0, atol=1e-9)


@given(data=st.data())
@settings(max_examples=40, deadline=None)
def test_equals_the_naive_reference_on_generated_cases(data):
    nq = data.draw(st.integers(1, 12))
    ng = data.draw(st.integers(1, 60))
    dim = data.draw(st.integers(1, 4))
    values = st.sampled_from([-1.0, -0.5, 0.0, 0.25, 0.5, 1.0, 2.0])  # ties are likely
    q = data.draw(arrays(np.float64, (nq, dim), elements=values))
    g = data.draw(arrays(np.float64, (ng, dim), elements=values))
    ql = data.draw(arrays(np.int64, nq, elements=st.integers(0, 3)))
    gl = data.draw(arrays(np.int64, ng, elements=st.integers(0, 3)))
    np.testing.assert_allclose(average_precision(q, ql, g, gl),
                               average_precision_naive(q, ql, g, gl), rtol=0, atol=1e-9)


def test_chunking_does_not_change_any_value():
    q, ql, g, gl = _random_case("quantised", 3 * SCORE_BLOCK + 20, 300, 5, 6, seed=3)
    full = average_precision(q, ql, g, gl, chunk_size=len(q))
    for chunk in (1, 2 * SCORE_BLOCK, None):
        np.testing.assert_array_equal(average_precision(q, ql, g, gl, chunk_size=chunk), full)


def test_agrees_with_sklearn_per_query():
    metrics = pytest.importorskip("sklearn.metrics")
    q, ql, g, gl = _random_case("gaussian", 60, 250, 8, 5, seed=11)
    scores = cosine_scores(q, g).numpy().astype(np.float64)
    ours = average_precision(q, ql, g, gl)
    for i in range(len(q)):
        relevant = gl == ql[i]
        if relevant.any():
            assert ours[i] == pytest.approx(metrics.average_precision_score(relevant, scores[i]),
                                            abs=1e-9)
        else:
            assert ours[i] == 0.0


# ---- properties ---------------------------------------------------------------------------

def test_perfect_features_give_one_and_values_stay_in_unit_interval():
    labels = np.repeat(np.arange(5), 7)
    one_hot = np.eye(5)[labels]
    assert np.all(average_precision(one_hot, labels, one_hot, labels) == 1.0)
    q, ql, g, gl = _random_case("gaussian", 40, 90, 4, 3, seed=5)
    ap = average_precision(q, ql, g, gl)
    assert np.all((ap >= 0) & (ap <= 1))


def test_gallery_order_does_not_matter_without_ties():
    q, ql, g, gl = _random_case("gaussian", 50, 120, 6, 4, seed=8)
    perm = np.random.default_rng(1).permutation(len(g))
    np.testing.assert_allclose(average_precision(q, ql, g[perm], gl[perm]),
                               average_precision(q, ql, g, gl), rtol=0, atol=1e-12)


def test_parts_equal_separate_calls():
    rng = np.random.default_rng(4)
    parts = [(rng.integers(0, 3, (n, 4)).astype(float), rng.integers(0, 5, n)) for n in (70, 1, 45)]
    q, ql = rng.integers(0, 3, (160, 4)).astype(float), rng.integers(0, 6, 160)
    whole, per_part = average_precision_parts(q, ql, parts, chunk_size=SCORE_BLOCK)
    union = np.concatenate([f for f, _ in parts]), np.concatenate([lb for _, lb in parts])
    np.testing.assert_array_equal(whole, average_precision(q, ql, *union))
    for (feats, labels), ap in zip(parts, per_part, strict=True):
        np.testing.assert_allclose(ap, average_precision_naive(q, ql, feats, labels), atol=1e-9)


@pytest.mark.parametrize("chunk_size", [None, SCORE_BLOCK])
def test_exclude_self_equals_removing_the_query_from_every_gallery(chunk_size):
    rng = np.random.default_rng(6)
    # the queries are the first 140 items of part 0 (quantised: ties with the query itself too)
    part0 = rng.integers(0, 3, (150, 4)).astype(float), rng.integers(0, 6, 150)
    part1 = rng.integers(0, 3, (40, 4)).astype(float), rng.integers(0, 6, 40)
    q, ql = part0[0][:140], part0[1][:140]
    whole, (ap0, ap1) = average_precision_parts(q, ql, [part0, part1], chunk_size,
                                                exclude_self=True)
    union = np.concatenate([part0[0], part1[0]]), np.concatenate([part0[1], part1[1]])
    for i in range(len(q)):
        others = np.arange(len(union[1])) != i
        expected = average_precision_naive(q[i:i + 1], ql[i:i + 1], union[0][others],
                                           union[1][others])
        assert whole[i] == pytest.approx(expected[0], abs=1e-12)
        mine = np.arange(150) != i
        expected0 = average_precision_naive(q[i:i + 1], ql[i:i + 1], part0[0][mine], part0[1][mine])
        assert ap0[i] == pytest.approx(expected0[0], abs=1e-12)
    np.testing.assert_allclose(ap1, average_precision_naive(q, ql, *part1), atol=1e-12)


def test_exclude_self_needs_the_queries_first_in_the_gallery():
    g, gl = np.eye(3), np.array([0, 1, 2])
    with pytest.raises(DcinetError, match="first gallery items"):
        average_precision_parts(g[1:], gl[1:], [(g, gl)], exclude_self=True)


# ---- the scores both paths rank -----------------------------------------------------------

def test_scores_do_not_depend_on_batching():
    # every product is one (SCORE_BLOCK, GALLERY_BLOCK) tile, so slicing either side, at block
    # boundaries or not, down to one item, gives the bits of the full product
    rng = np.random.default_rng(2)
    nq, ng = 2 * SCORE_BLOCK + 5, GALLERY_BLOCK + 77
    q, g = rng.normal(size=(nq, 30)), rng.normal(size=(ng, 30))
    full = cosine_scores(q, g)
    assert full.dtype == torch.float32 and full.shape == (nq, ng)
    query_slices = ((0, 1), (3, 9), (SCORE_BLOCK - 2, SCORE_BLOCK + 3), (2 * SCORE_BLOCK, nq))
    gallery_slices = ((0, 1), (5, 6), (3, 40), (GALLERY_BLOCK - 7, GALLERY_BLOCK + 9), (40, ng))
    for qs, gs in itertools.product(query_slices, gallery_slices):
        assert torch.equal(cosine_scores(q[slice(*qs)], g[slice(*gs)]),
                           full[slice(*qs), slice(*gs)]), (qs, gs)


def test_cosine_scores_are_cosines():
    rng = np.random.default_rng(6)
    q, g = rng.normal(size=(4, 3)), rng.normal(size=(5, 3))
    expected = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (
        g / np.linalg.norm(g, axis=1, keepdims=True)).T
    np.testing.assert_allclose(cosine_scores(q, g).numpy(), expected, atol=1e-6)
    assert torch.equal(l2_normalize(np.zeros((1, 3))), torch.zeros(1, 3))


@pytest.mark.parametrize(("args", "message"), [
    ((np.ones((2, 3)), [0, 1], np.ones((2, 4)), [0, 1]), "dimension"),
    ((np.full((1, 2), np.nan), [0], np.ones((2, 2)), [0, 1]), "NaN"),
    ((np.ones((2, 2)), [0], np.ones((2, 2)), [0, 1]), "query labels"),
    ((np.ones(3), [0], np.ones((2, 3)), [0, 1]), "2-D"),
])
def test_user_errors(args, message):
    with pytest.raises(DcinetError, match=message):
        average_precision(*args)
    with pytest.raises(DcinetError, match="chunk_size"):
        average_precision(np.ones((1, 2)), [0], np.ones((1, 2)), [0], chunk_size=0)


def test_one_class_gallery_every_item_relevant():
    # every item relevant: AP 1 whatever the scores; the relevant sets are held per class
    # (O(Nq + Ng) memory), not per query (this case would need Nq x Ng of them)
    rng = np.random.default_rng(8)
    g = rng.normal(size=(6000, 8))
    ap = average_precision(g[:700], np.zeros(700), g, np.zeros(6000))
    np.testing.assert_array_equal(ap, np.ones(700))
