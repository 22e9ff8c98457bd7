"""``bench/compare_runs.py``: finished ablate runs of several grids against any row."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from dcinet.app.ablate import PER_QUERY_FILE, compare_to_baseline
from dcinet.retrieval.directions import evaluate_directions

_spec = importlib.util.spec_from_file_location(
    "dcinet_compare_runs", Path(__file__).resolve().parents[2] / "bench" / "compare_runs.py")
compare_runs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare_runs)


def _model(signal: float, seed: int, n: int = 40, classes: int = 4):
    labels = {m: np.arange(n) % classes for m in ("image", "text")}
    rng = np.random.default_rng(seed)
    feats = {m: signal * np.eye(classes)[y] + rng.normal(size=(n, classes)) for m, y in labels.items()}
    return evaluate_directions(feats, labels, resamples=0)


def _write(out: Path, row: str, seed: int, result) -> None:
    (out / f"{row}-s{seed}").mkdir(parents=True)
    result.save_per_query(out / f"{row}-s{seed}" / PER_QUERY_FILE)


def test_rows_of_two_grids_against_a_chosen_row(tmp_path, capsys):
    onehot, minilm = tmp_path / "onehot", tmp_path / "minilm"
    models = {(onehot, "plain"): 0.5, (onehot, "probe"): 1.0, (minilm, "plain"): 2.0}
    for (out, row), signal in models.items():
        for seed in (0, 1):
            _write(out, row, seed, _model(signal, seed + int(10 * signal)))
    _write(minilm, "plain", 2, _model(2.0, 99))  # a seed the other rows lack: left out
    md = tmp_path / "table.md"
    assert compare_runs.main([str(onehot), str(minilm), "--baseline", "onehot probe", "--label",
                              f"{onehot}=onehot", "--label", f"{minilm}=minilm", "--md", str(md)]) == 0
    text = capsys.readouterr().out
    assert text == md.read_text()
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[0] for line in lines[1:]] == ["| onehot probe", "| onehot plain",
                                                            "| minilm plain"]
    assert "vs onehot probe" in lines[0] and lines[1].endswith("| baseline |")
    # the same figure ablate's comparison gives for these seeds
    rows = compare_runs.collect([onehot, minilm], {onehot: "onehot", minilm: "minilm"})
    expected = compare_to_baseline({"p": [rows["onehot probe"][s] for s in (0, 1)],
                                    "m": [rows["minilm plain"][s] for s in (0, 1)]})["m"]
    assert f"{expected[0]:+.3f}".replace("0.", ".") in lines[3]
    assert "2 seed(s)" in text


def test_unknown_rows_and_labels_exit_2(tmp_path, capsys):
    _write(tmp_path / "a", "plain", 0, _model(1.0, 0))
    assert compare_runs.main([str(tmp_path / "a"), "--baseline", "probe"]) == 2
    assert "no row 'probe' (rows: plain)" in capsys.readouterr().err
    assert compare_runs.main([str(tmp_path / "a"), "--baseline", "plain", "--label", "x"]) == 2
