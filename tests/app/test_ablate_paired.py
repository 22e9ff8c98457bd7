"""``ablate``'s paired comparison of every row with the baseline, and its table column."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dcinet.app.ablate import PER_QUERY_FILE, compare_to_baseline, format_grid_table
from dcinet.app.cli import main
from dcinet.retrieval.directions import evaluate_directions
from dcinet.retrieval.result import load_per_query


def _model(signal: float, seed: int, n: int = 60, classes: int = 6):
    """Features whose class evidence grows with ``signal``; the same test items (labels) for
    every model and seed, different noise per seed."""
    labels = {m: np.arange(n) % classes for m in ("image", "text", "audio")}
    rng = np.random.default_rng(seed)
    feats = {m: signal * np.eye(classes)[y] + rng.normal(size=(n, classes))
             for m, y in labels.items()}
    return evaluate_directions(feats, labels, resamples=0)


def test_a_better_model_is_marked_and_the_baseline_is_zero():
    results = {"base": [_model(0.5, s) for s in (0, 1)],
               "same": [_model(0.5, s) for s in (0, 1)],
               "better": [_model(3.0, s + 10) for s in (0, 1)]}
    comparisons = compare_to_baseline(results, resamples=500)
    assert set(comparisons) == {"same", "better"}
    assert comparisons["same"] == (0.0, 0.0, 0.0)  # identical per-query values
    diff, lo, hi = comparisons["better"]
    expected = np.mean([b.average_bimodal - a.average_bimodal
                        for a, b in zip(results["base"], results["better"], strict=True)])
    assert diff == pytest.approx(expected, abs=1e-12) and 0 < lo < diff < hi

    rows = {name: [r.to_dict(per_class=False) for r in rs] for name, rs in results.items()}
    table = format_grid_table("components", rows, comparisons)
    assert "| Δ average bimodal mAP vs base |" in table.splitlines()[2]
    lines = {line.split(" | ")[0]: line for line in table.splitlines() if line.startswith("| ")}
    assert lines["| base"].endswith("| baseline |")
    assert lines["| same"].endswith("| +.000 [+.000, +.000] |")  # no *: 0 is in the interval
    assert lines["| better"].endswith(" * |") and "[+." in lines["| better"]
    assert "paired bootstrap interval" in table


def test_one_modality_compares_the_unimodal_map_with_the_query_left_out():
    def model(noise):
        rng = np.random.default_rng(0)
        y = np.arange(30) % 3
        return evaluate_directions({"image": np.eye(3)[y] + noise * rng.normal(size=(30, 3))},
                                   {"image": y}, resamples=0)
    results = {"a": [model(2.0)], "b": [model(0.1)]}
    comparisons = compare_to_baseline(results, resamples=200)
    i2i = {name: rs[0].directions["i2i"] for name, rs in results.items()}
    assert i2i["b"] != pytest.approx(i2i["a"])
    assert results["a"][0].average_multimodal != pytest.approx(i2i["a"])  # a2all keeps the query
    assert comparisons["b"][0] == pytest.approx(i2i["b"] - i2i["a"])
    rows = {name: [r.to_dict(per_class=False) for r in rs] for name, rs in results.items()}
    assert "| Δ i2i mAP vs a |" in format_grid_table("components", rows, comparisons)


@pytest.mark.slow
def test_the_grid_keeps_per_query_files_and_the_comparison_column(tiny_builtin: Path,
                                                                 tmp_path: Path, tiny_overrides):
    out = tmp_path / "methods"
    assert main(["ablate", "--grid", "methods", "--config", "cpu-tiny", "--data",
                 str(tiny_builtin), "--out", str(out), "--quiet", *tiny_overrides]) == 0
    table = (out / "methods.md").read_text()
    assert "| Δ average bimodal mAP vs FGCrossNet |" in table
    assert "| FGCrossNet |" in table and "| baseline |" in table
    saved = load_per_query(out / "DCINet-s0" / PER_QUERY_FILE)
    assert saved.counts == {"image": 8, "text": 8, "audio": 8}
    assert f"{saved.average_bimodal:.3f}" in table
    rows = json.loads((out / "methods.json").read_text())  # small: no per-query values, no per-class AP
    text = json.dumps(rows)
    assert "per_query" not in text and "per_class" not in text
    assert len(text) < 40_000  # 24 test items: per-query values would not fit
