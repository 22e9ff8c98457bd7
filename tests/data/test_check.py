"""check_collection / check_root: counts, and every kind of bad input named with its file."""

from __future__ import annotations

import io
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from dcinet.config import Config
from dcinet.data.check import check_collection, check_root
from dcinet.data.readers import read_folder
from dcinet.errors import DcinetError


def _truncated_jpeg(path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(buffer, "JPEG")
    path.write_bytes(buffer.getvalue()[:300])


def _zero_frame_wav(path: Path) -> None:
    sf.write(path, np.zeros(0, dtype=np.float32), 8000)


def _new_class(root: Path) -> None:
    (root / "audio/train/owl").mkdir()
    sf.write(root / "audio/train/owl/0.wav", np.linspace(-0.5, 0.5, 800, dtype=np.float32), 8000)


# name -> (corrupt the clean tree, expected kind, path of the problem relative to the root)
FOLDER_CASES = {
    "truncated image": (lambda r: _truncated_jpeg(r / "image/train/crow/0.png"), "bad_image", "image/train/crow/0.png"),
    "unreadable image": (lambda r: (r / "image/test/wren/1.png").write_text("hello"), "bad_image", "image/test/wren/1.png"),
    "zero-length audio": (lambda r: _zero_frame_wav(r / "audio/train/finch/1.wav"), "bad_audio", "audio/train/finch/1.wav"),
    "undecodable audio": (lambda r: (r / "audio/test/crow/0.wav").write_bytes(b"RIFFjunk"), "bad_audio", "audio/test/crow/0.wav"),
    "empty text": (lambda r: (r / "text/train/wren/0.txt").write_text("  \n"), "bad_text", "text/train/wren/0.txt"),
    "non-utf8 text": (lambda r: (r / "text/test/finch/0.txt").write_bytes(b"caf\xe9"), "bad_text", "text/test/finch/0.txt"),
    "duplicate file": (lambda r: shutil.copy(r / "image/train/crow/0.png", r / "image/test/wren/9.png"),
                       "duplicate_file", "image/test/wren/9.png"),
    "one-modality class": (_new_class, "single_modality_class", "audio/train/owl"),
    "stray folder": (lambda r: (r / "misc").mkdir(), "layout", "misc"),
}


def test_clean_tree_counts_and_report(folder_tree):
    report = check_root(folder_tree)
    assert report.ok and report.problems == [] and report.bad_samples == set()
    assert report.counts[("audio", "test")] == Counter({"crow": 2, "finch": 2, "wren": 2})
    assert set(report.counts) == {(m, s) for m in ("image", "audio", "text") for s in ("train", "test")}
    text = report.format_report()
    assert "no problems found" in text and "3 classes" in text
    rows = {tuple(line.split()[:2]): line.split()[2:] for line in text.splitlines()}
    assert rows["image", "train"] == ["6", "3", "2", "(crow)", "/", "2", "(crow)"]


@pytest.mark.parametrize("case", sorted(FOLDER_CASES))
def test_each_bad_input_is_a_named_problem(folder_tree, case):
    corrupt, kind, rel = FOLDER_CASES[case]
    corrupt(folder_tree)
    report = check_root(folder_tree)
    assert [(p.kind, p.path) for p in report.problems] == [(kind, folder_tree / rel)]
    assert not report.ok and str(folder_tree / rel) in report.format_report()


def test_bad_samples_are_the_disqualified_positions(folder_tree):
    for name in ("empty text", "duplicate file", "one-modality class"):
        FOLDER_CASES[name][0](folder_tree)
    coll = read_folder(folder_tree)
    report = check_collection(coll)
    bad_paths = sorted(coll.samples[i].path.relative_to(folder_tree).as_posix() for i in report.bad_samples)
    assert bad_paths == ["audio/train/owl/0.wav", "image/test/wren/9.png", "text/train/wren/0.txt"]


def test_no_decode_and_modality_selection(folder_tree):
    FOLDER_CASES["empty text"][0](folder_tree)
    FOLDER_CASES["truncated image"][0](folder_tree)
    assert check_root(folder_tree, decode=False).ok
    only_text = check_root(folder_tree, cfg=Config(modalities=["text"]))
    assert [p.kind for p in only_text.problems] == ["bad_text"]
    assert {m for m, _ in only_text.counts} == {"text"}


def _lists_over(root: Path) -> None:
    """FG-XMedia lists for a folder tree: ``list/<modality>/<split>.txt`` with labels 0..2."""
    coll = read_folder(root)
    for modality in coll.modalities:
        for split in ("train", "test"):
            lines = [f"{s.path.relative_to(root).as_posix()} {s.label}" for s in coll.select(split, modality)]
            (root / "list" / modality).mkdir(parents=True, exist_ok=True)
            (root / "list" / modality / f"{split}.txt").write_text("\n".join(lines) + "\n")


def test_list_problems_name_file_and_line(folder_tree):
    _lists_over(folder_tree)
    with open(folder_tree / "list/image/train.txt", "a") as f:
        f.write("image/train/crow/missing.png 0\n"        # line 7: missing file
                "image/train/wren/1.png 7\n"              # line 8: label out of range (3 classes)
                "image/train/wren/1.png\n"                # line 9: malformed
                "image/test/crow/0.png 0\n")              # line 10: also listed in test.txt
    report = check_root(folder_tree, "fgxmedia", num_classes=3)
    assert [(p.kind, p.source) for p in report.problems] == [
        ("malformed_line", f"{folder_tree / 'list/image/train.txt'}:9"),
        ("label_out_of_range", "list/image/train.txt:8"),
        ("missing_file", "list/image/train.txt:7"),
        ("duplicate_entry", "list/image/test.txt:1"),
    ]
    assert report.problems[3].path == folder_tree / "image/test/crow/0.png"
    assert "list/image/train.txt:10" in report.problems[3].message


def test_check_root_errors_that_stop_reading(tmp_path):
    with pytest.raises(DcinetError, match="not found"):
        check_root(tmp_path / "nowhere")
    with pytest.raises(DcinetError, match="list folder"):
        check_root(tmp_path, "fgxmedia")


@pytest.mark.slow
def test_ddp_ranks_check_the_data_once_between_them(folder_tree, tmp_path):
    import json
    import os
    import socket
    import subprocess
    import sys

    _truncated_jpeg(next(iter(sorted((folder_tree / "image" / "train").rglob("*.png")))))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    worker = Path(__file__).with_name("check_worker.py")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         f"--master_port={port}", "--master_addr=127.0.0.1", str(worker), str(folder_tree),
         str(tmp_path)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    alone = check_collection(read_folder(folder_tree), decode=True)
    files = sum(len(r["decoded"]) for r in ranks)
    assert files == sum(1 for s in read_folder(folder_tree).samples)  # each file decoded once
    assert not set(ranks[0]["decoded"]) & set(ranks[1]["decoded"])
    assert abs(len(ranks[0]["decoded"]) - len(ranks[1]["decoded"])) <= 1
    for r in ranks:  # every rank knows every problem, as one process finds them
        assert r["problems"] == [p.format() for p in alone.problems] and len(r["problems"]) == 1
        assert r["bad"] == sorted(alone.bad_samples)
