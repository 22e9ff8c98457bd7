"""``dcinet data cache``: every waveform's spectrogram computed once, before training."""

from __future__ import annotations

from pathlib import Path

import pytest

import dcinet.data.audio as audio
from dcinet.app.cli import main
from dcinet.config import load_config
from dcinet.train.loop import fit


def test_cache_fills_once_and_training_then_computes_none(tiny_builtin: Path, tmp_path: Path,
                                                          tiny_overrides, monkeypatch, capsys):
    monkeypatch.setenv("DCINET_CACHE", str(tmp_path / "cache"))
    waves = sorted((tiny_builtin / "audio").rglob("*.wav"))
    args = ["data", "cache", str(tiny_builtin), "--config", "cpu-tiny", "--workers", "2",
            *tiny_overrides]
    assert main(args) == 0
    assert capsys.readouterr().out.startswith(f"{len(waves)} spectrograms computed, 0 already")
    assert len(list((tmp_path / "cache" / "spectrograms").glob("*.npy"))) == len(waves)
    assert main(args) == 0
    assert capsys.readouterr().out.startswith(f"0 spectrograms computed, {len(waves)} already")

    def must_not_compute(*args, **kwargs):
        raise AssertionError("a spectrogram was computed during training")

    monkeypatch.setattr(audio, "spectrogram_db", must_not_compute)
    fit(load_config("cpu-tiny", tiny_overrides), tiny_builtin, tmp_path / "run", progress=False)


def test_cache_names_an_undecodable_file(tiny_builtin: Path, tmp_path: Path, tiny_overrides,
                                         monkeypatch, capsys):
    import shutil

    monkeypatch.setenv("DCINET_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "data"
    shutil.copytree(tiny_builtin, data)
    bad = sorted((data / "audio" / "train").rglob("*.wav"))[0]
    bad.write_bytes(b"RIFF not really")
    assert main(["data", "cache", str(data), "--config", "cpu-tiny", *tiny_overrides]) == 2
    err = capsys.readouterr().err.strip()
    assert str(bad) in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("workers", ["0", "-1"])
def test_cache_refuses_no_workers(tiny_builtin: Path, workers: str, capsys):
    assert main(["data", "cache", str(tiny_builtin), "--config", "cpu-tiny",
                 "--workers", workers]) == 2
