"""Which directions are evaluated, their values, and the Markdown / JSON / CSV reports."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from dcinet.errors import DcinetError
from dcinet.retrieval.directions import bimodal_directions, direction_name, evaluate_directions
from dcinet.retrieval.metrics import average_precision_without_self
from dcinet.retrieval.naive import average_precision_naive
from dcinet.retrieval.result import load_per_query, short


def _data(modalities, n=24, dim=6, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    feats = {m: rng.integers(0, 3, (n + i, dim)).astype(np.float32) for i, m in enumerate(modalities)}
    labels = {m: rng.integers(0, classes, n + i) for i, m in enumerate(modalities)}
    return feats, labels


@pytest.mark.parametrize(("modalities", "bimodal", "multimodal"), [
    (["audio", "image"], ["i2a", "a2i"], ["i2all", "a2all"]),
    (["text", "audio", "image"], ["i2t", "i2a", "t2i", "t2a", "a2i", "a2t"],
     ["i2all", "t2all", "a2all"]),
    (["video", "audio", "text", "image"],
     ["i2t", "i2a", "i2v", "t2i", "t2a", "t2v", "a2i", "a2t", "a2v", "v2i", "v2t", "v2a"],
     ["i2all", "t2all", "a2all", "v2all"]),
])
def test_direction_set_and_order(modalities, bimodal, multimodal):
    assert [direction_name(q, g) for q, g in bimodal_directions(modalities)] == bimodal
    result = evaluate_directions(*_data(modalities))
    assert result.bimodal == bimodal and result.multimodal == multimodal
    assert list(result.directions) == bimodal + multimodal
    assert list(result.counts) == [m for m in ("image", "text", "audio", "video") if m in modalities]


def test_values_match_the_naive_reference():
    feats, labels = _data(["audio", "text", "image"], seed=3)
    result = evaluate_directions(feats, labels, chunk_size=1)
    order = ["image", "text", "audio"]  # the X->all gallery is concatenated in table order
    union = np.concatenate([feats[m] for m in order]), np.concatenate([labels[m] for m in order])
    for q in order:
        expected = average_precision_naive(feats[q], labels[q], *union).mean()
        assert result.directions[direction_name(q, None)] == pytest.approx(expected, abs=1e-9)
        assert result.galleries[direction_name(q, None)] == len(union[1])
        for g in order:
            if g != q:
                expected = average_precision_naive(feats[q], labels[q], feats[g], labels[g]).mean()
                assert result.directions[direction_name(q, g)] == pytest.approx(expected, abs=1e-9)
                assert result.queries[direction_name(q, g)] == len(labels[q])
    assert result.average_bimodal == pytest.approx(np.mean([result.directions[d]
                                                            for d in result.bimodal]))
    assert result.average_multimodal == pytest.approx(np.mean([result.directions[d]
                                                               for d in result.multimodal]))


def test_x2all_counts_the_query_itself():
    # each image's only relevant item in the union is itself (no other modality shares a class)
    feats = {"image": np.eye(3), "text": np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])}
    labels = {"image": np.array([0, 1, 2]), "text": np.array([5, 6])}
    result = evaluate_directions(feats, labels)
    assert result.directions["i2all"] == 1.0
    assert result.directions["i2t"] == 0.0 and result.directions["t2all"] == 1.0


def test_one_modality_has_x2x_and_x2all():
    # each image's only relevant item is itself: it counts in i2all, not in i2i
    result = evaluate_directions({"image": np.eye(2)}, {"image": np.array([0, 1])})
    assert result.bimodal == [] and result.average_bimodal is None
    assert result.unimodal == ["i2i"] and result.multimodal == ["i2all"]
    assert result.directions == {"i2i": 0.0, "i2all": 1.0}
    assert "Table 1" not in result.to_markdown()


def _unit_angles(degrees):
    radians = np.deg2rad(degrees)
    return np.stack([np.cos(radians), np.sin(radians)], 1)


def test_i2i_by_hand_the_self_match_does_not_count():
    # points on a circle at 0, 10, 25, 45 degrees, classes A B A B; cosine falls with the angle.
    # Without itself, each query ranks the others by angular distance:
    #   0 -> 10(B) 25(A) 45(B): AP 1/2      10 -> 0(A) 25(A) 45(B): AP 1/3
    #  25 -> 10(B) 45(B)  0(A): AP 1/3      45 -> 25(A) 10(B) 0(A): AP 1/2
    # With itself at rank 1 (i2all): 5/6, 3/4, 3/4, 5/6.
    feats, labels = _unit_angles([0, 10, 25, 45]), np.array([0, 1, 0, 1])
    assert average_precision_without_self(feats, labels) == pytest.approx([1 / 2, 1 / 3, 1 / 3, 1 / 2])
    result = evaluate_directions({"image": feats}, {"image": labels})
    assert result.directions["i2i"] == pytest.approx(5 / 12)
    assert result.directions["i2all"] == pytest.approx(19 / 24)
    assert result.queries["i2i"] == 4 and result.galleries["i2i"] == 3
    assert result.galleries["i2all"] == 4


@pytest.mark.parametrize("chunk_size", [None, 1, 200])
def test_i2i_matches_the_naive_reference_without_the_query(chunk_size):
    # integer features: many exact ties, so the tie rule (gallery index) matters; 300 items span
    # several score blocks; class 7 has a single item (no relevant item once it is removed)
    feats, labels = _data(["image"], n=300, dim=4, classes=6, seed=7)
    feats, labels = feats["image"], labels["image"]
    labels[123] = 7
    ap = average_precision_without_self(feats, labels, chunk_size)
    for i in range(len(labels)):
        keep = np.arange(len(labels)) != i
        expected = average_precision_naive(feats[i:i + 1], labels[i:i + 1], feats[keep], labels[keep])
        assert ap[i] == pytest.approx(expected[0], abs=1e-12), i
    assert ap[123] == 0.0


def test_single_item_and_other_modalities():
    assert average_precision_without_self(np.ones((1, 3)), np.array([0])).tolist() == [0.0]
    result = evaluate_directions({"text": np.eye(3)}, {"text": np.array([0, 0, 1])})
    assert result.unimodal == ["t2t"] and list(result.directions) == ["t2t", "t2all"]
    # string labels work as class ids too
    as_str = evaluate_directions({"text": np.eye(3)}, {"text": np.array(["a", "a", "b"])})
    assert as_str.directions == result.directions


def test_unimodal_reports(tmp_path):
    feats, labels = _unit_angles([0, 10, 25, 45]), np.array([0, 1, 0, 1])
    result = evaluate_directions({"image": feats}, {"image": labels}, resamples=0)
    md = result.to_markdown(model="cub")
    assert "**Unimodal retrieval (mAP, query removed from its gallery)**" in md
    assert "| Models | i2i |" in md and "| cub | .417 |" in md
    assert "| Models | i2all | Average |" in md and "| cub | .792 | .792 |" in md
    assert md.index("i2i") < md.index("i2all")
    data = json.loads(result.to_json(tmp_path / "r.json").read_text())
    assert data["unimodal"] == ["i2i"] and data["directions"]["i2i"] == result.directions["i2i"]
    with result.to_csv(tmp_path / "r.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["direction"], r["kind"], r["queries"], r["gallery"]) for r in rows] == [
        ("i2i", "unimodal", "4", "3"), ("i2all", "multimodal", "4", "4"),
        ("average_multimodal", "average", "", "")]
    assert float(rows[0]["map"]) == result.directions["i2i"]
    assert rows[0]["map_lo"] == rows[0]["map_hi"] == ""  # no bootstrap, no interval


def test_markdown_json_and_csv(tmp_path):
    result = evaluate_directions(*_data(["image", "text", "audio"], seed=5), resamples=0)
    md = result.to_markdown(model="DCINet")
    assert "| Models | i2t | i2a | t2i | t2a | a2i | a2t | Average |" in md
    assert "| Models | i2all | t2all | a2all | Average |" in md
    row = next(line for line in md.splitlines() if line.startswith("| DCINet") and "i2t" not in line)
    assert row.split(" | ")[1] == short(result.directions["i2t"])
    assert row.rstrip(" |").split(" | ")[-1] == short(result.average_bimodal)
    assert "Test items: image 24, text 25, audio 26." in md

    data = json.loads(result.to_json(tmp_path / "out" / "r.json").read_text())
    assert data["directions"] == result.directions
    assert data["average_bimodal"] == result.average_bimodal
    assert data["average_multimodal"] == result.average_multimodal
    assert data["counts"] == {"image": 24, "text": 25, "audio": 26}

    with result.to_csv(tmp_path / "r.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["direction"] for r in rows] == [*result.directions, "average_bimodal",
                                             "average_multimodal"]
    assert {r["direction"]: float(r["map"]) for r in rows[:-2]} == result.directions
    assert float(rows[-1]["map"]) == result.average_multimodal
    assert rows[0]["queries"] == "24" and rows[0]["gallery"] == "25"


@pytest.mark.parametrize(("feats", "labels", "message"), [
    ({"smell": np.ones((2, 2))}, {"smell": np.zeros(2)}, "unknown modality"),
    ({"image": np.ones((2, 2))}, {"text": np.zeros(2)}, "different modalities"),
    ({}, {}, "no modality"),
    ({"image": np.ones((0, 2))}, {"image": np.zeros(0)}, "non-empty"),
    ({"image": np.ones((2, 2))}, {"image": np.zeros(3)}, "labels of shape"),
    ({"image": np.ones((2, 2)), "text": np.ones((2, 3))},
     {"image": np.zeros(2), "text": np.zeros(2)}, "different feature sizes"),
])
def test_user_errors(feats, labels, message):
    with pytest.raises(DcinetError, match=message):
        evaluate_directions(feats, labels)


def test_queries_without_a_match_are_counted_and_said(tmp_path):
    """A class missing from a gallery modality: its queries score 0 (the protocol's rule), and the
    result counts them per direction and says so under the tables; a class of one item has no
    match in X2X (query removed) but always matches itself in X2all."""
    rng = np.random.default_rng(0)
    labels = {"image": np.array([0, 0, 1, 2, 2]), "text": np.array([0, 1, 1])}
    feats = {m: rng.normal(size=(len(y), 4)) for m, y in labels.items()}
    result = evaluate_directions(feats, labels, resamples=0)
    assert result.unmatched == {"i2t": 2}  # the two images of class 2
    assert (result.per_query["i2t"]["mAP"][3:] == 0).all()
    md = result.to_markdown()
    assert "Queries whose class has no item in the gallery score 0 and count in the means: " \
           "i2t 2 of 5." in md
    assert result.to_dict()["unmatched"] == {"i2t": 2}
    again = load_per_query(result.save_per_query(tmp_path / "q.npz"))
    assert again.unmatched == {"i2t": 2} and again.to_markdown() == md

    alone = evaluate_directions({"text": feats["text"]}, {"text": labels["text"]}, resamples=0)
    assert alone.unmatched == {"t2t": 1}  # class 0 has one text: nothing else to find
    assert "t2t 1 of 3." in alone.notes() and "t2all" not in alone.unmatched

    none = evaluate_directions({"image": feats["image"][3:], "text": feats["text"]},
                               {"image": labels["image"][3:], "text": labels["text"]}, resamples=0)
    assert none.unmatched == {"i2t": 2, "t2i": 3}  # no class in both modalities
    assert "i2t 2 of 2 (none can match), t2i 3 of 3 (none can match)." in none.notes()
    assert "no item" not in evaluate_directions(*_data(["image", "text"], seed=1),
                                                resamples=0).notes()
