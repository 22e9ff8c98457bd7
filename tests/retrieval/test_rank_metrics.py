"""mAP@R, Recall@K and precision@K against hand-computed rankings and the naive reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dcinet.errors import DcinetError
from dcinet.retrieval.metrics import KS, definitions, metric_names, rank_stats_parts
from dcinet.retrieval.naive import rank_metrics_naive, ranked_metrics

QUERY = np.array([[1.0, 0.0]])


def _angles(degrees: list[float]) -> np.ndarray:
    """Unit 2-d vectors: the cosine with (1, 0) falls as the angle grows."""
    rad = np.radians(degrees)
    return np.stack([np.cos(rad), np.sin(rad)], 1)


def _metrics(gallery, labels, query=QUERY, query_labels=(1,), ks=KS, **kw) -> dict[str, float]:
    whole, _ = rank_stats_parts(query, np.asarray(query_labels), [(gallery, np.asarray(labels))],
                                ks=ks, **kw)
    return {name: float(v[0]) for name, v in whole.per_query().items()}


# ---- hand-computed cases -------------------------------------------------------------------

def test_every_metric_by_hand():
    # ranking by angle: rel (0), irr (10), rel (20), irr (30), irr (40), irr (50); R = 2
    m = _metrics(_angles([20, 0, 30, 10, 40, 50]), [1, 1, 0, 0, 0, 0], ks=(1, 2, 5))
    assert m["mAP"] == pytest.approx((1 + 2 / 3) / 2)
    assert m["mAP@R"] == pytest.approx(1 / 2)  # the top R = 2 hold one relevant item, at rank 1
    assert (m["R@1"], m["R@2"], m["R@5"]) == (1.0, 1.0, 1.0)
    assert (m["P@1"], m["P@2"], m["P@5"]) == (1.0, 1 / 2, 2 / 5)


def test_relevant_items_late():
    # irr, irr, rel, irr, rel: R = 2, nothing relevant in the top 2
    m = _metrics(_angles([20, 40, 0, 10, 30]), [1, 1, 0, 0, 0], ks=(1, 2, 3, 5))
    assert m["mAP@R"] == 0.0
    assert (m["R@1"], m["R@2"], m["R@3"], m["R@5"]) == (0.0, 0.0, 1.0, 1.0)
    assert (m["P@3"], m["P@5"]) == (1 / 3, 2 / 5)


def test_map_at_r_is_one_only_when_the_top_r_are_relevant():
    assert _metrics(_angles([0, 10, 20]), [1, 1, 0])["mAP@R"] == 1.0
    # rel, irr, rel, rel (R = 3): precision at ranks 1 and 3 within the top 3
    m = _metrics(_angles([0, 10, 20, 30]), [1, 0, 1, 1])
    assert m["mAP@R"] == pytest.approx((1 + 2 / 3) / 3)


def test_precision_divides_by_the_gallery_when_it_is_smaller_than_k():
    m = _metrics(_angles([0, 10, 20]), [1, 0, 1], ks=(2, 10))
    assert m["P@2"] == 1 / 2 and m["P@10"] == 2 / 3


def test_ties_are_broken_by_gallery_index_for_every_metric():
    same = _angles([0, 0, 0])
    first_irrelevant = _metrics(same, [0, 1, 1], ks=(1,))
    assert first_irrelevant["R@1"] == first_irrelevant["P@1"] == 0.0
    assert first_irrelevant["mAP@R"] == pytest.approx((1 / 2) / 2)
    assert _metrics(same, [1, 0, 0], ks=(1,))["R@1"] == 1.0


def test_a_query_without_relevant_items_scores_zero_everywhere():
    m = _metrics(_angles([0, 10]), [0, 0], query_labels=(7,))
    assert set(m.values()) == {0.0}


def test_the_self_match_counts_in_x2all_and_not_without_self():
    # the query is item 0 of its own gallery; its only other relevant item ranks third
    feats, labels = _angles([0, 10, 20, 30]), np.array([1, 0, 1, 0])
    kept = _metrics(feats, labels, query=feats[:1], ks=(1, 2))
    assert kept["R@1"] == 1.0 and kept["P@1"] == 1.0
    assert kept["mAP@R"] == pytest.approx(1 / 2)  # R = 2: the query itself, at rank 1
    removed = _metrics(feats, labels, query=feats[:1], ks=(1, 2), exclude_self=True)
    # without it: irr (10), rel (20), irr (30): R = 1, first relevant at rank 2 of 3
    assert removed["R@1"] == 0.0 and removed["R@2"] == 1.0
    assert removed["mAP@R"] == 0.0 and removed["P@2"] == 1 / 2


def test_the_only_item_of_its_class_without_self():
    whole, _ = rank_stats_parts(np.eye(2), [0, 1], [(np.eye(2), np.array([0, 1]))],
                                exclude_self=True)
    assert whole.n_relevant.tolist() == [0, 0] and whole.gallery.tolist() == [1, 1]
    assert all(set(v.tolist()) == {0.0} for v in whole.per_query().values())


def test_gallery_sizes_per_part_without_self():
    rng = np.random.default_rng(0)
    part0, part1 = (rng.normal(size=(5, 3)), np.arange(5) % 2), (rng.normal(size=(3, 3)),
                                                                np.arange(3) % 2)
    whole, (p0, p1) = rank_stats_parts(part0[0][:4], part0[1][:4], [part0, part1],
                                       exclude_self=True)
    assert whole.gallery.tolist() == [7] * 4
    assert p0.gallery.tolist() == [4] * 4 and p1.gallery.tolist() == [3] * 4


def test_names_and_definitions():
    assert metric_names() == ["mAP", "mAP@R", "R@1", "R@5", "R@10", "P@1", "P@5", "P@10"]
    text = definitions(metric_names((3,)))
    assert "at least one relevant item among the first 3" in text["R@3"]
    assert all("scores 0" in t for t in text.values())
    with pytest.raises(DcinetError, match="cut-offs"):
        rank_stats_parts(QUERY, [1], [(QUERY, np.array([1]))], ks=(0,))


# ---- against the naive reference ------------------------------------------------------------

def test_the_naive_reference_by_hand():
    labels = np.array(["irr", "rel", "irr", "rel", "rel"])
    m = ranked_metrics(np.arange(5), labels, "rel", ks=(1, 2, 4))
    assert m["mAP"] == pytest.approx((1 / 2 + 2 / 4 + 3 / 5) / 3)
    assert m["mAP@R"] == pytest.approx((1 / 2) / 3)
    assert (m["R@1"], m["R@2"]) == (0.0, 1.0) and (m["P@2"], m["P@4"]) == (1 / 2, 2 / 4)
    assert set(ranked_metrics(np.arange(2), labels[:2], "none").values()) == {0.0}


def _assert_equal_to_naive(q, ql, g, gl, ks=KS):
    whole, _ = rank_stats_parts(q, ql, [(g, gl)], chunk_size=512, ks=ks)
    expected = rank_metrics_naive(q, ql, g, gl, ks)
    got = whole.per_query()
    assert list(got) == list(expected)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("kind", ["gaussian", "quantised"])
@pytest.mark.parametrize(("nq", "ng", "classes"), [(1, 1, 1), (7, 40, 3), (600, 300, 8)])
def test_equals_the_naive_reference(kind, nq, ng, classes):
    rng = np.random.default_rng(nq + ng)
    draw = ((lambda n: rng.normal(size=(n, 5))) if kind == "gaussian"
            else (lambda n: rng.integers(-1, 2, (n, 5)).astype(float)))  # many exact ties
    _assert_equal_to_naive(draw(nq), rng.integers(0, classes + 1, nq), draw(ng),
                           rng.integers(0, classes, ng), ks=(1, 3, 10, 50))


@given(data=st.data())
@settings(max_examples=40, deadline=None)
def test_equals_the_naive_reference_on_generated_cases(data):
    nq, ng, dim = data.draw(st.integers(1, 10)), data.draw(st.integers(1, 50)), 2
    values = st.sampled_from([-1.0, 0.0, 0.5, 1.0])  # ties are likely
    q = data.draw(arrays(np.float64, (nq, dim), elements=values))
    g = data.draw(arrays(np.float64, (ng, dim), elements=values))
    ql = data.draw(arrays(np.int64, nq, elements=st.integers(0, 3)))
    gl = data.draw(arrays(np.int64, ng, elements=st.integers(0, 3)))
    ks = tuple(sorted(data.draw(st.sets(st.integers(1, 60), min_size=1, max_size=3))))
    _assert_equal_to_naive(q, ql, g, gl, ks)


def test_parts_and_without_self_equal_the_naive_reference():
    rng = np.random.default_rng(9)
    part0 = rng.integers(0, 3, (60, 3)).astype(float), rng.integers(0, 4, 60)
    part1 = rng.integers(0, 3, (25, 3)).astype(float), rng.integers(0, 4, 25)
    q, ql = part0[0][:50], part0[1][:50]
    union = np.concatenate([part0[0], part1[0]]), np.concatenate([part0[1], part1[1]])
    whole, (p0, p1) = rank_stats_parts(q, ql, [part0, part1], exclude_self=True)
    for i in range(len(q)):
        others = np.arange(len(union[1])) != i
        expected = rank_metrics_naive(q[i:i + 1], ql[i:i + 1], union[0][others], union[1][others])
        mine = np.arange(60) != i
        expected0 = rank_metrics_naive(q[i:i + 1], ql[i:i + 1], part0[0][mine], part0[1][mine])
        for name, values in whole.per_query().items():
            assert values[i] == pytest.approx(expected[name][0], abs=1e-12), (i, name)
            assert p0.per_query()[name][i] == pytest.approx(expected0[name][0], abs=1e-12)
    expected1 = rank_metrics_naive(q, ql, *part1)
    for name, values in p1.per_query().items():
        np.testing.assert_allclose(values, expected1[name], rtol=0, atol=1e-12)
