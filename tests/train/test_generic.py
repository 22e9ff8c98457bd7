"""Any generic-layout dataset with two or more modalities trains and evaluates unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from dcinet.app.cli import main
from dcinet.rundir import read_metrics


def test_audio_and_image_only_dataset_trains_and_evaluates(tiny_builtin: Path, tmp_path: Path,
                                                          tiny_overrides):
    data = tmp_path / "data"
    shutil.copytree(tiny_builtin, data)
    shutil.rmtree(data / "text")
    run = tmp_path / "run"
    assert main(["train", "--config", "cpu-tiny", "--data", str(data), "--out", str(run),
                 "--quiet", *tiny_overrides]) == 0
    assert json.loads((run / "run.json").read_text())["modalities"] == ["image", "audio"]
    assert {"l_img", "l_aud", "l_dual"} <= set(read_metrics(run)[0])
    assert "l_txt" not in read_metrics(run)[0]
    out = tmp_path / "results.json"
    assert main(["evaluate", str(run), "--data", str(data), "--json", str(out)]) == 0
    directions = json.loads(out.read_text())["directions"]
    assert set(directions) == {"i2a", "a2i", "i2all", "a2all"}
    assert all(0.0 <= v <= 1.0 for v in directions.values())
