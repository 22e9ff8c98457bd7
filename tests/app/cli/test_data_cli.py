"""``dcinet data check`` and ``dcinet data synth`` through ``main(argv)``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from dcinet.app.cli import main


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """Image, audio and text for classes 'heron' and 'stork', one file per split each."""
    root = tmp_path / "ds"
    for k, (split, cls) in enumerate((s, c) for s in ("train", "test") for c in ("heron", "stork")):
        folder = {m: root / m / split / cls for m in ("image", "audio", "text")}
        for path in folder.values():
            path.mkdir(parents=True)
        Image.new("RGB", (8, 8), (40 * k, 10, 200)).save(folder["image"] / "a.png")
        sf.write(folder["audio"] / "a.wav", np.sin(np.arange(800) * (k + 1) / 9).astype(np.float32), 8000)
        (folder["text"] / "a.txt").write_text(f"A {cls} seen in {split}.\n", encoding="utf-8")
    return root


def test_clean_dataset_exits_0_with_counts(tree, capsys):
    assert main(["data", "check", str(tree)]) == 0
    out = capsys.readouterr().out
    assert "no problems found" in out and "2 classes" in out
    assert any(line.split()[:3] == ["audio", "test", "2"] for line in out.splitlines())


BAD = {
    "image/train/heron/a.png": b"\x89PNG\r\n\x1a\n",
    "audio/test/stork/a.wav": b"",
    "text/train/stork/a.txt": b"\xc3\x28",
}


@pytest.mark.parametrize("rel", sorted(BAD))
def test_bad_file_exits_2_and_is_named(tree, capsys, rel):
    (tree / rel).write_bytes(BAD[rel])
    assert main(["data", "check", str(tree)]) == 2
    out = capsys.readouterr().out
    assert "1 problem(s) found" in out and str(tree / rel) in out


def test_fgxmedia_list_problems_exit_2(tree, tmp_path, capsys):
    lists = tmp_path / "lists" / "image"
    lists.mkdir(parents=True)
    (lists / "train.txt").write_text("image/train/heron/a.png 0\r\nimage/train/stork/gone.png 1\r\n")
    (lists / "test.txt").write_text("image/test/heron/a.png 0\r\n")
    args = ["data", "check", str(tree), "--format", "fgxmedia", "--lists", str(tmp_path / "lists")]
    assert main(args) == 2
    out = capsys.readouterr().out
    assert f"missing file: {tree / 'image/train/stork/gone.png'} ({lists / 'train.txt'}:2)" in out
    (lists / "train.txt").write_text("image/train/heron/a.png 0\nimage/train/stork/a.png 1\n")
    assert main(args) == 0


def test_cub_format_and_train_flag(tmp_path, capsys):
    root = tmp_path / "cub"
    (root / "images" / "001.Heron").mkdir(parents=True)
    for i in range(2):
        Image.new("RGB", (8, 8), (i * 90, 0, 0)).save(root / "images" / "001.Heron" / f"{i}.jpg")
    (root / "images.txt").write_text("1 001.Heron/0.jpg\n2 001.Heron/1.jpg\n")
    (root / "image_class_labels.txt").write_text("1 1\n2 1\n")
    (root / "train_test_split.txt").write_text("1 1\n2 1\n")
    (root / "classes.txt").write_text("1 001.Heron\n")
    assert main(["data", "check", str(root), "--format", "cub"]) == 0
    assert capsys.readouterr().out.count("image    train") == 1
    assert main(["data", "check", str(root), "--format", "cub", "--train-flag", "0"]) == 0
    assert "image    test" in capsys.readouterr().out


def test_unreadable_root_is_a_one_line_error(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: dataset root not found") and "Traceback" not in err


@pytest.mark.skipif(importlib.util.find_spec("dcinet.sources.synth") is None, reason="generator not present yet")
def test_synth_then_check_is_clean(tmp_path, capsys):
    out = tmp_path / "synth"
    assert main(["data", "synth", "--out", str(out), "--classes", "3", "--per-class", "2", "--seed", "1"]) == 0
    assert main(["data", "check", str(out)]) == 0, capsys.readouterr().out
