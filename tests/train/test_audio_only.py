"""An audio-only folder dataset with its recordings cut into windows: it trains, resumes bit for bit
(the training window is a function of seed, epoch and item) and evaluates a2a with the query left
out of its own gallery."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from dcinet.app.cli import main
from dcinet.config import load_config
from dcinet.rundir import read_metrics, read_pointer
from dcinet.train.checkpoint import load_checkpoint
from dcinet.train.loop import fit

WINDOWS = ["audio_seconds=1.0", "audio_hop_seconds=0.5"]  # the built-in clips last 1-3 s
SMALL = ["img_size=32", "resize=36", "layer=3"]  # layer 3 keeps CMSI's maps at 2 x 2


@pytest.fixture
def audio_only(tiny_builtin: Path, tmp_path: Path) -> Path:
    """``ROOT/audio/<split>/<class>/*.wav`` alone: the built-in dataset's recordings."""
    root = tmp_path / "audio-only"
    shutil.copytree(tiny_builtin / "audio", root / "audio")
    return root


def test_an_audio_only_dataset_trains_resumes_exactly_and_evaluates_a2a(audio_only: Path,
                                                                       tmp_path: Path,
                                                                       tiny_overrides, crash_after_first_epoch):
    cfg = load_config("cpu-tiny", [*tiny_overrides, *SMALL, *WINDOWS, "epochs=2"])
    straight = fit(cfg, audio_only, tmp_path / "a", progress=False)
    info = json.loads((tmp_path / "a" / "run.json").read_text())
    assert info["modalities"] == ["audio"]
    windows = info["dropped"]["audio_windows"]
    trains = len(list((audio_only / "audio" / "train").rglob("*.wav")))
    assert windows["recordings"] == trains and windows["floor_db"] == 40.0
    assert windows["windows"] > trains and windows["windows"] - windows["quiet_skipped"] >= trains
    assert {"l_aud", "l_dual"} <= set(read_metrics(tmp_path / "a")[0])
    assert not {"l_img", "l_txt"} & set(read_metrics(tmp_path / "a")[0])

    crash_after_first_epoch(fit, cfg, audio_only, tmp_path / "b", progress=False)
    assert read_pointer(tmp_path / "b")["epoch"] == 1
    resumed = fit(cfg, audio_only, tmp_path / "b", resume=True, progress=False)
    a, _ = load_checkpoint(tmp_path / "a")
    b, _ = load_checkpoint(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in straight.history] == pytest.approx([r["loss"] for r in resumed.history])

    out = tmp_path / "results.json"
    assert main(["evaluate", str(tmp_path / "a"), "--data", str(audio_only), "--json", str(out),
                 "--bootstrap", "0"]) == 0
    result = json.loads(out.read_text())
    tests = len(list((audio_only / "audio" / "test").rglob("*.wav")))
    assert list(result["directions"]) == ["a2a", "a2all"]
    assert result["counts"] == {"audio": tests}
    assert result["galleries"] == {"a2a": tests - 1, "a2all": tests}
    assert all(0.0 <= v <= 1.0 for v in result["directions"].values())
