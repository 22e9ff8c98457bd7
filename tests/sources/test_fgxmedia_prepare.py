"""``dcinet data prepare-fgxmedia``: a placeholder tree built from the real lists, audio conversion,
clips, list problems."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from dcinet.app.cli import main
from dcinet.config import Config
from dcinet.data.audio import load_audio
from dcinet.data.decode import SampleDecoder
from dcinet.data.fgxmedia import read_fgxmedia
from dcinet.sources.fgxmedia_prepare import PrepareReport, prepare_fgxmedia

LIST_SIZES = {"image": (5994, 5794), "audio": (6000, 6000), "text": (4000, 4000)}


def _listed(lists: Path) -> list[tuple[str, str, str, int]]:
    """``(modality, split, relative path, label)`` of every real list line (naive parse)."""
    out = []
    for modality in LIST_SIZES:
        for split in ("train", "test"):
            for line in (lists / modality / f"{split}.txt").read_text().splitlines():
                if line.strip():
                    rel, label = line.rsplit(None, 1)
                    out.append((modality, split, rel, int(label)))
    return out


@pytest.fixture(scope="module")
def real_tree(fgx_placeholder_tree) -> tuple[Path, Path, list[tuple[str, str, str, int]]]:
    root, lists = fgx_placeholder_tree
    return root, lists, _listed(lists)


def test_full_placeholder_tree_is_complete(real_tree, capsys):
    root, lists, entries = real_tree
    assert len(entries) == 31788
    assert main(["data", "prepare-fgxmedia", str(root), "--lists", str(lists)]) == 0
    out = capsys.readouterr().out
    rows = {tuple(line.split()[:2]): [int(v) for v in line.split()[2:]] for line in out.splitlines()[2:8]}
    for modality, (n_train, n_test) in LIST_SIZES.items():
        assert rows[modality, "train"] == [n_train, n_train, 0] and rows[modality, "test"] == [n_test, n_test, 0]
    assert "extra files (present, not listed): image 0, audio 0, text 0" in out
    assert "complete: all 31788 listed files are present" in out


def test_two_missing_files_and_one_extra_are_named_with_their_class(real_tree, capsys):
    root, lists, entries = real_tree
    image_train = [e for e in entries if e[:2] == ("image", "train")]
    text_test = [e for e in entries if e[:2] == ("text", "test")]
    gone = [image_train[100], text_test[-1]]
    extra = root / os.path.dirname(image_train[0][2]) / "not_in_any_list.jpg"
    names = read_fgxmedia(root, lists_dir=lists).classes
    for _, _, rel, _ in gone:
        (root / rel).unlink()
    extra.touch()
    try:
        assert main(["data", "prepare-fgxmedia", str(root), "--lists", str(lists)]) == 2
        out = capsys.readouterr().out
        report = prepare_fgxmedia(root, lists)
    finally:
        for _, _, rel, _ in gone:
            (root / rel).touch()
        extra.unlink()
    lines = out.splitlines()
    for modality, split, rel, label in gone:
        block = lines.index(f"missing {modality} files (1), by class:")
        assert lines[block + 1] == f"  {names[label]}: 1"
        assert lines[block + 2].startswith(f"    {rel} (") and f"{modality}/{split}.txt:" in lines[block + 2]
    assert [(m.modality, m.split, m.rel_path, m.class_name) for s in report.statuses for m in s.missing] == [
        (m, s, rel, names[label]) for m, s, rel, label in gone]
    extra_rel = extra.relative_to(root).as_posix()
    assert report.statuses[0].extra == [(extra_rel, names[image_train[0][3]])]
    assert f"    {extra_rel}" in lines and "extra files (present, not listed): image 1, audio 0, text 0" in out
    assert out.rstrip().endswith("incomplete: 2 of 31788 listed files missing, 0 list problem(s)")


# ----------------------------------------------------------------------------- small generated trees
def _tone(path: Path, freq: float, seconds: float = 0.3, rate: int = 8000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.4 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)
    return path


def _write_lists(lists: Path, modality: str, train: list[str], test: list[str] | None = None) -> None:
    (lists / modality).mkdir(parents=True, exist_ok=True)
    for split, lines in (("train", train), ("test", test or [])):
        (lists / modality / f"{split}.txt").write_text("".join(f"{line}\r\n" for line in lines))


def test_convert_audio_renders_the_listed_pictures(tmp_path, capsys):
    root, lists = tmp_path / "fgx", tmp_path / "fgx" / "list"
    _write_lists(lists, "audio", ["audio/audioimg/Crow/1.png 0", "audio/audioimg/Wren/1.png 1",
                                  "audio/audioimg/Wren/7.png 1", "audio/audioimg/Wren/8.png 1"],
                 ["audio/audioimg/Crow/2.png 0"])
    crow = _tone(root / "audio/wav/001.Crow/1.wav", 400)  # stem "1" in two classes: folder decides
    wren = _tone(root / "audio/wav/002.Wren/1.flac", 1500)
    _tone(root / "audio/elsewhere/2.ogg", 900)  # unique stem: found anywhere under audio/
    (root / "audio/wav/002.Wren/7.wav").write_bytes(b"RIFF not really")
    assert main(["data", "prepare-fgxmedia", str(root)]) == 2
    out = capsys.readouterr().out
    assert "4 missing spectrogram picture(s) have a raw audio file" in out
    assert "extra files (present, not listed): audio 0" in out  # raw sources are not extra
    assert main(["data", "prepare-fgxmedia", str(root), "--convert-audio", "--size", "64"]) == 2
    out = capsys.readouterr().out
    assert "converted 3 raw audio file(s) to 64x64 spectrogram pictures" in out
    assert "  audio/wav/001.Crow/1.wav -> audio/audioimg/Crow/1.png" in out
    assert "audio/audioimg/Wren/7.png (list/audio/train.txt:3): audio/wav/002.Wren/7.wav: cannot decode audio" in out
    assert "audio/audioimg/Wren/8.png (list/audio/train.txt:4): no raw audio file 8{.wav/.flac/.ogg/.mp3}" in out
    assert "incomplete: 2 of 5 listed files missing" in out

    cfg = Config(img_size=64, resize=64)
    loader = SampleDecoder(cfg, cache_dir=tmp_path / "cache")
    coll = read_fgxmedia(root, problems=[])
    pictures = {s.path.relative_to(root).as_posix(): s for s in coll.samples}
    assert sorted(pictures) == ["audio/audioimg/Crow/1.png", "audio/audioimg/Crow/2.png", "audio/audioimg/Wren/1.png"]
    for rel, raw in (("audio/audioimg/Crow/1.png", crow), ("audio/audioimg/Wren/1.png", wren)):
        with Image.open(root / rel) as img:
            assert img.size == (64, 64)
        x = loader.load(pictures[rel])
        direct = load_audio(raw, 64, cfg.sample_rate, cfg.n_fft, cfg.hop_length, cache_dir=tmp_path / "cache")
        assert x.shape == direct.shape == (3, 64, 64)
        assert torch.allclose(x, direct, atol=1.01 / 255 / 0.224)  # equal up to 8-bit rounding
    crow_x, wren_x = loader.load(pictures["audio/audioimg/Crow/1.png"]), loader.load(pictures["audio/audioimg/Wren/1.png"])
    assert (crow_x - wren_x).abs().max() > 1.0  # different recordings, different pictures
    assert not list(root.rglob("*.tmp"))


def test_clips_listed_as_folders_and_list_problems(tmp_path, capsys):
    root = tmp_path / "fgx"
    _write_lists(root / "list", "video", ["video/Crow/clip1 0", "video/Crow/clip2 0", "video/Wren/f/3.jpg 1",
                                          "../outside.jpg 1", "video/Wren/bad label"])
    for rel in ("video/Crow/clip1/0001.jpg", "video/Crow/clip1/0002.jpg", "video/Wren/f/3.jpg",
                "video/Wren/f/4.jpg", "video/Wren/clip9/0001.jpg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).touch()
    report = prepare_fgxmedia(root)
    (status,) = report.statuses
    assert [m.rel_path for m in status.missing] == ["video/Crow/clip2"]
    assert status.extra == [("video/Wren/clip9/0001.jpg", "Wren"), ("video/Wren/f/4.jpg", "Wren")]
    assert sorted((p.kind, p.source) for p in report.problems) == [
        ("malformed_line", f"{root / 'list/video/train.txt'}:4"), ("malformed_line", f"{root / 'list/video/train.txt'}:5")]
    assert not report.ok
    text = report.format_report(show=1)
    assert "  ... 1 more path(s) not shown (--show 0 lists all)" in text and "2 problem(s) found:" in text


def test_complete_with_extras_is_ok_and_errors_are_clean(tmp_path, capsys):
    root = tmp_path / "fgx"
    _write_lists(root / "list", "text", ["text/a/1.txt 0"], ["text/b/2.txt 1"])
    for rel in ("text/a/1.txt", "text/b/2.txt", "text/c/3.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("bird")
    report = prepare_fgxmedia(root)
    assert isinstance(report, PrepareReport) and report.ok and report.statuses[0].extra == [("text/c/3.txt", "c")]
    assert main(["data", "prepare-fgxmedia", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.startswith("error: dataset root not found")
    assert main(["data", "prepare-fgxmedia", str(root), "--lists", str(tmp_path)]) == 2
    assert "no modality found" in capsys.readouterr().err
