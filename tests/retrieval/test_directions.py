"""Which directions are evaluated, their values, and the Markdown / JSON / CSV reports."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from dcinet.errors import DcinetError
from dcinet.retrieval.directions import (
    bimodal_directions,
    direction_name,
    evaluate_directions,
)
from dcinet.retrieval.naive import average_precision_naive


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


def test_one_modality_has_only_x2all():
    result = evaluate_directions({"image": np.eye(2)}, {"image": np.array([0, 1])})
    assert result.bimodal == [] and result.average_bimodal is None
    assert result.directions == {"i2all": 1.0}
    assert "Table 1" not in result.to_markdown()


def test_markdown_json_and_csv(tmp_path):
    result = evaluate_directions(*_data(["image", "text", "audio"], seed=5))
    md = result.to_markdown(model="DCINet")
    assert "| Models | i2t | i2a | t2i | t2a | a2i | a2t | Average |" in md
    assert "| Models | i2all | t2all | a2all | Average |" in md
    row = next(line for line in md.splitlines() if line.startswith("| DCINet") and "i2t" not in line)
    assert row.split(" | ")[1] == f"{result.directions['i2t']:.3f}"
    assert row.rstrip(" |").split(" | ")[-1] == f"{result.average_bimodal:.3f}"
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
