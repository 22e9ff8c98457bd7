"""``bench/recipe_sweep.py``: each unit changes only what it says, and a small sweep runs end to end."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import asdict
from pathlib import Path

import pytest

from dcinet.config import load_config

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"dcinet_bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


sweep = _load("recipe_sweep")


def _differences(a, b) -> set[str]:
    a, b = asdict(a), asdict(b)
    return {k for k in a if a[k] != b[k]}


def test_each_unit_changes_only_its_keys_from_the_first_recipe():
    before = sweep.unit_config("before", "test")
    for key, value in sweep.BEFORE.items():
        assert getattr(before, key) == value
    assert (before.interaction, before.epochs, before.seed, before.format) == ("none", 3, 0, "cub")
    for unit, (_, changes) in sweep.UNITS.items():
        if changes:
            cfg = sweep.unit_config(unit, "test")
            assert _differences(before, cfg) == {k for k, v in changes.items() if sweep.BEFORE[k] != v}
    # 'after' is the preset as it is now; val holds a fifth of the training photos out
    preset = load_config(sweep.PRESET, sweep.COMMON).validate()
    assert _differences(sweep.unit_config("after", "test"), preset) == set()
    assert _differences(sweep.unit_config("after", "val"), preset) == {"val_fraction"}
    assert _differences(sweep.unit_config("none144", "val", 10), sweep.unit_config("none144", "val")) == {"epochs"}
    assert sweep.unit_folder(Path("o"), "after", "val") == Path("o/val/after")
    assert sweep.unit_folder(Path("o"), "after", "val", 10) == Path("o/val-10ep/after")


@pytest.mark.slow
def test_a_small_sweep_trains_evaluates_and_reuses_its_runs(shared_data, tmp_path, capsys):
    subset = _load("cub_pretrained").write_subset(shared_data / "cub100", tmp_path / "cub", 8, 10, 0)
    out, report = tmp_path / "sweep", tmp_path / "sweep.json"
    args = [str(out), "--data", str(subset), "--split", "val", "--units", "before,no_ema",
            "--json", str(report)]
    assert sweep.main(args) == 0
    rows = json.loads(report.read_text())["rows"]
    assert [r["unit"] for r in rows] == ["before", "no_ema"]
    assert all(0 < r["i2i"] <= 1 and r["train_s"] > 0 for r in rows)
    table = capsys.readouterr().out
    assert "| no_ema | no EMA |" in table and "cub100 (val split)" in table
    weights = sorted(out.glob("val/*/model-3.safetensors"))
    assert len(weights) == 2
    mtimes = [p.stat().st_mtime for p in weights]
    assert sweep.main(args) == 0  # reused: nothing trained again
    assert [p.stat().st_mtime for p in weights] == mtimes
    # another schedule, two units at a time: its own folders, the epochs in the caption
    assert sweep.main([*args, "--epochs", "1", "--jobs", "2"]) == 0
    assert "ready: " in capsys.readouterr().out and "1 epochs, seed 0" in sweep.table(rows, "val", 1)
    assert len(list(out.glob("val-1ep/*/model-1.safetensors"))) == 2
    assert json.loads(report.read_text())["epochs"] == 1


@pytest.mark.parametrize("args, message", [
    (["--units", "before,no_such"], "error: unknown unit(s) no_such"),
    (["--data", "."], "is not a CUB-layout dataset"),
    (["--jobs", "0"], "error: --epochs and --jobs must be >= 1"),
])
def test_bad_arguments_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    assert sweep.main([str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "out").exists()
