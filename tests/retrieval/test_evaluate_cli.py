"""``dcinet evaluate``: the tables with intervals in the terminal, every metric in JSON / CSV, the
class names beside the saved features, refusals before any work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dcinet.app.cli import main
from dcinet.retrieval.bootstrap import RESAMPLES


def test_evaluate_prints_intervals_and_writes_every_metric(tiny_run: Path, tiny_builtin: Path,
                                                           tmp_path: Path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", str(tiny_run), "--data", str(tiny_builtin), "--json",
                 str(out / "r.json"), "--csv", str(out / "r.csv"), "--save-features",
                 str(out / "features"), "--bootstrap", "200", "--bootstrap-seed", "4",
                 "--per-class"]) == 0
    printed = capsys.readouterr().out
    data = json.loads((out / "r.json").read_text())
    lo, hi = data["intervals"]["i2t"]["mAP"]
    assert lo <= data["directions"]["i2t"] <= hi
    assert "cf. Table 1" in printed and "Every metric" in printed and "AP per class" in printed
    assert "(200 resamples, seed 4)" in printed
    assert data["bootstrap"]["resamples"] == 200 and set(data["metrics"]["a2all"]) == {
        "mAP", "mAP@R", "R@1", "R@5", "R@10", "P@1", "P@5", "P@10"}
    classes = json.loads((out / "features" / "classes.json").read_text())
    assert set(data["per_class"]["t2i"]) <= set(classes)
    labels = np.load(out / "features" / "image_labels.npy")
    assert {classes[i] for i in labels} == set(data["per_class"]["i2a"])
    assert "map@r_lo" in (out / "r.csv").read_text().splitlines()[0]


def test_no_bootstrap_and_a_bad_count(tiny_run: Path, tiny_builtin: Path, capsys):
    assert main(["evaluate", str(tiny_run), "--data", str(tiny_builtin), "--bootstrap", "0"]) == 0
    assert "[" not in capsys.readouterr().out
    assert main(["evaluate", str(tiny_run), "--data", str(tiny_builtin), "--bootstrap", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--bootstrap must be >= 0" in err and "encoded" not in err


def test_the_parser_default_is_the_library_default():
    from dcinet.app.cli import build_parser

    args = build_parser().parse_args(["evaluate", "run"])
    assert args.bootstrap == RESAMPLES and args.bootstrap_seed == 0
