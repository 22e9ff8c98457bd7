"""What a result derives from its per-query values: means, averages, per-class AP, intervals
(resampled consistently over directions), the reports and the per-query file."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from dcinet.errors import DcinetError
from dcinet.retrieval.bootstrap import QueryBootstrap
from dcinet.retrieval.directions import evaluate_directions
from dcinet.retrieval.result import load_per_query, short


def _data(n=40, dim=6, classes=4, seed=0):
    rng = np.random.default_rng(seed)
    feats = {m: rng.integers(0, 3, (n + i, dim)).astype(np.float32)
             for i, m in enumerate(["image", "text", "audio"])}
    labels = {m: rng.integers(0, classes, n + i) for i, m in enumerate(feats)}
    return feats, labels


@pytest.fixture(scope="module")
def result():
    return evaluate_directions(*_data(), resamples=400, seed=3,
                               class_names=["wren", "finch", "tit", "crow"])


def test_metrics_are_means_and_averages_are_plain_means(result):
    for d, values in result.per_query.items():
        assert result.metrics[d] == {m: pytest.approx(v.mean(), abs=1e-15)
                                     for m, v in values.items()}
        assert result.directions[d] == result.metrics[d]["mAP"]
    for m in result.metric_names:
        assert result.averages["average_bimodal"][m] == pytest.approx(
            np.mean([result.metrics[d][m] for d in result.bimodal]), abs=1e-15)
    assert result.average_multimodal == pytest.approx(
        np.mean([result.directions[d] for d in result.multimodal]), abs=1e-15)


def test_per_class_ap_is_the_mean_over_the_class_queries(result):
    labels = result.query_labels["text"]
    ap = result.per_query["t2a"]["mAP"]
    for label, name in enumerate(["wren", "finch", "tit", "crow"]):
        assert result.per_class["t2a"][name] == pytest.approx(ap[labels == label].mean())
    # per-class AP by hand: two classes, queries' APs 1, 0.5 (class 0) and 0 (class 1)
    tiny = evaluate_directions({"image": np.array([[1.0, 0], [1, 0.1], [0, 1]])},
                               {"image": np.array([0, 0, 1])}, resamples=0)
    assert tiny.per_class["i2all"] == {"0": pytest.approx((1 + 1) / 2), "1": 1.0}
    assert tiny.per_class["i2i"] == {"0": 1.0, "1": 0.0}


def test_intervals_resample_the_queries_of_each_modality_consistently(result):
    boot = QueryBootstrap(400, seed=3)
    by_direction = {d: boot.means(result.query_of[d], v["mAP"])
                    for d, v in result.per_query.items()}
    for d in result.per_query:
        assert result.intervals[d]["mAP"] == pytest.approx(
            tuple(np.percentile(by_direction[d], [2.5, 97.5])), abs=1e-12)
    # the average: the directions' means averaged inside each resample, then the percentiles
    average = np.mean([by_direction[d] for d in result.bimodal], axis=0)
    assert result.intervals["average_bimodal"]["mAP"] == pytest.approx(
        tuple(np.percentile(average, [2.5, 97.5])), abs=1e-12)
    # i2t and i2all query with the same images: the same resamples, correlated samples
    assert np.corrcoef(by_direction["i2t"], by_direction["i2all"])[0, 1] > 0.3
    for key, intervals in result.intervals.items():
        for m, (lo, hi) in intervals.items():
            value = {**result.metrics, **result.averages}[key][m]
            assert lo <= value + 1e-12 and value <= hi + 1e-12, (key, m)
    for d, classes in result.per_class_intervals.items():
        assert set(classes) == set(result.per_class[d])


def test_no_bootstrap_no_intervals():
    plain = evaluate_directions(*_data(), resamples=0)
    assert plain.intervals == {} and plain.per_class_intervals == {}
    assert plain.to_dict()["bootstrap"] is None and "[" not in plain.to_markdown()
    # the same number format with or without the bootstrap: .475, not 0.475
    cell = plain.cell("i2t", "mAP")
    assert cell == short(plain.directions["i2t"]) and not cell.startswith("0.")


def test_reports_carry_every_metric_and_interval(result, tmp_path):
    md = result.to_markdown(model="DCINet")
    lo, hi = result.intervals["i2t"]["mAP"]
    cell = f"{short(result.directions['i2t'])} [{short(lo)}, {short(hi)}]"
    assert f"| DCINet | {cell} |" in md
    assert md.index("cf. Table 1") < md.index("cf. Table 2") < md.index("Every metric")
    assert "| Metric | i2t | i2a | t2i | t2a | a2i | a2t | Average |" in md
    assert "| R@10 |" in md and "| mAP@R |" in md and "1000 resamples" not in md
    assert "95% percentile bootstrap interval over the queries (400 resamples, seed 3)" in md
    assert "AP per class" not in md and "| wren |" in result.to_markdown(per_class=True)

    data = json.loads(result.to_json(tmp_path / "r.json").read_text())
    assert data["directions"] == result.directions
    assert data["metrics"]["a2t"]["R@5"] == result.metrics["a2t"]["R@5"]
    assert data["intervals"]["average_multimodal"]["P@1"] == list(
        result.intervals["average_multimodal"]["P@1"])
    assert data["per_class"]["i2a"]["crow"] == result.per_class["i2a"]["crow"]
    assert data["bootstrap"]["resamples"] == 400 and "R@1" in data["definitions"]
    assert "per_class" not in result.to_dict(per_class=False)

    with result.to_csv(tmp_path / "r.csv").open() as f:
        rows = {r["direction"]: r for r in csv.DictReader(f)}
    assert float(rows["t2i"]["r@1"]) == result.metrics["t2i"]["R@1"]
    assert float(rows["t2i"]["map@r_hi"]) == result.intervals["t2i"]["mAP@R"][1]
    assert float(rows["average_bimodal"]["p@10_lo"]) == result.intervals["average_bimodal"][
        "P@10"][0]


def test_the_per_query_file_gives_back_the_same_result(result, tmp_path):
    back = load_per_query(result.save_per_query(tmp_path / "runs" / "per_query.npz"))
    assert back.to_dict() == result.to_dict()
    assert back.to_markdown(per_class=True) == result.to_markdown(per_class=True)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DcinetError, match="not a per-query results file"):
        load_per_query(tmp_path / "bad.npz")


def test_short_numbers():
    assert [short(v) for v in (0.2424, 1.0, 0.0, -0.0134)] == [".242", "1.000", ".000", "-.013"]
    assert short(0.012, signed=True) == "+.012" and short(-0.5, signed=True) == "-.500"
