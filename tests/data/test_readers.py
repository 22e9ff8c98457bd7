"""Readers: generic folders, FG-XMedia list files (incl. the real lists), CUB files (incl. cub100)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from dcinet.data.cub import read_cub
from dcinet.data.fgxmedia import ListEntry, parse_list_file, read_fgxmedia
from dcinet.data.problems import Problem
from dcinet.data.reader_common import strip_class_prefix
from dcinet.data.readers import read_collection, read_folder
from dcinet.errors import DcinetError


# ----------------------------------------------------------------------------- folder
def test_folder_reads_every_file_with_sorted_union_labels(tmp_path, media):
    root = media.tree(tmp_path / "ds", classes=("wren", "crow"), modalities=("image", "text"))
    media.txt(root / "text" / "train" / "albatross" / "0.txt")  # class only in text
    (root / "synth.json").write_text("{}")  # top-level file: ignored
    (root / "image" / "train" / "crow" / ".DS_Store").write_text("x")  # hidden: ignored
    coll = read_folder(root)
    assert coll.classes == ["albatross", "crow", "wren"]
    assert coll.modalities == ["image", "text"]
    assert coll.counts() == Counter({("image", "train"): 4, ("image", "test"): 4,
                                     ("text", "train"): 5, ("text", "test"): 4})
    for s in coll.samples:
        assert coll.classes[s.label] == s.class_name == s.path.parent.name
        assert s.split == s.path.parent.parent.name and s.modality == s.path.parents[2].name
    assert not any(s.path.name.startswith(".") for s in coll.samples)


def test_folder_modalities_filter_and_errors(folder_tree, tmp_path):
    coll = read_folder(folder_tree, modalities=["text", "audio"])
    assert coll.modalities == ["audio", "text"]
    with pytest.raises(DcinetError, match="video"):
        read_folder(folder_tree, modalities=["video"])
    with pytest.raises(DcinetError, match="unknown modality 'smell'"):
        read_folder(folder_tree, modalities=["smell"])
    with pytest.raises(DcinetError, match="not found"):
        read_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DcinetError, match="no modality found"):
        read_folder(tmp_path / "empty")


def test_folder_layout_problems_raise_or_collect(folder_tree, media):
    (folder_tree / "pictures").mkdir()
    media.png(folder_tree / "image" / "valid" / "crow" / "x.png")
    media.png(folder_tree / "image" / "train" / "loose.png")
    media.png(folder_tree / "image" / "train" / "crow" / "nested" / "x.png")
    with pytest.raises(DcinetError, match="pictures"):
        read_folder(folder_tree)
    problems: list[Problem] = []
    coll = read_folder(folder_tree, problems=problems)
    named = {p.path.relative_to(folder_tree).as_posix(): p.kind for p in problems}
    assert named == {"pictures": "layout", "image/valid": "layout", "image/train/loose.png": "layout",
                     "image/train/crow/nested": "layout"}
    assert len(coll.select(modality="image")) == 12  # the good files are all still read


def test_folder_video_frame_folders_are_samples(folder_tree, media):
    media.png(folder_tree / "video" / "train" / "crow" / "clip1" / "000.png")
    (folder_tree / "video" / "train" / "finch").mkdir(parents=True)
    (folder_tree / "video" / "train" / "finch" / "clip.mp4").write_bytes(b"\x00" * 16)
    videos = read_folder(folder_tree).select(modality="video")
    assert sorted(s.path.name for s in videos) == ["clip.mp4", "clip1"]


# ----------------------------------------------------------------------------- list files
def test_parse_list_file_crlf_blank_lines_and_spaces(tmp_path):
    path = tmp_path / "train.txt"
    path.write_bytes(b"image/001.A/x 1.jpg 0\r\n\r\nimage/002.B/y.jpg  1\r\n  \n")
    assert parse_list_file(path) == [ListEntry("image/001.A/x 1.jpg", 0, 1), ListEntry("image/002.B/y.jpg", 1, 3)]


@pytest.mark.parametrize("bad_line", ["image/x.jpg", "image/x.jpg one", "7", "image/x.jpg 1.5"])
def test_parse_list_file_malformed_line_names_file_and_line(tmp_path, bad_line):
    path = tmp_path / "train.txt"
    path.write_text(f"image/a.jpg 0\n{bad_line}\nimage/b.jpg 1\n")
    with pytest.raises(DcinetError, match=r"train\.txt:2"):
        parse_list_file(path)
    problems: list[Problem] = []
    assert [e.line_no for e in parse_list_file(path, problems)] == [1, 3]
    assert [(p.kind, p.source) for p in problems] == [("malformed_line", f"{path}:2")]


def test_strip_class_prefix():
    assert strip_class_prefix("001.Black_footed_Albatross") == "Black_footed_Albatross"
    assert strip_class_prefix("Black_footed_Albatross") == "Black_footed_Albatross"
    assert strip_class_prefix("Florida_Scrub-Jay") == "Florida_Scrub-Jay"


def _fgx_tree(root: Path, rows: dict[str, list[tuple[str, int]]], lists: Path | None = None) -> Path:
    """Write list files (``rows[modality]`` = train entries; test gets the same paths + '_t') and files."""
    lists = lists or root / "list"
    for modality, entries in rows.items():
        for split, suffix in (("train", ""), ("test", "_t")):
            lines = []
            for rel, label in entries:
                dot = rel.rindex(".")
                rel = rel[:dot] + suffix + rel[dot:]
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_bytes(b"x")
                lines.append(f"{rel} {label}")
            (lists / modality).mkdir(parents=True, exist_ok=True)
            (lists / modality / f"{split}.txt").write_text("\r\n".join(lines) + "\r\n")
    return root


FGX_ROWS = {
    "image": [("image/001.Gray_Catbird/a.jpg", 0), ("image/002.Wren/b.jpg", 1)],
    "audio": [("audio/audioimg/Grey_Catbird/1.png", 0), ("audio/audioimg/Wren/2.png", 1)],
    "text": [("text/Gray_Catbird/c.txt", 0), ("text/Wren/d.txt", 1)],
}


def test_fgxmedia_reads_lists_and_names_classes_from_first_modality(tmp_path):
    root = _fgx_tree(tmp_path / "fgx", FGX_ROWS)
    coll = read_collection(root, "fgxmedia")
    assert coll.classes == ["Gray_Catbird", "Wren"]  # image spelling wins over audio's "Grey"
    assert coll.counts() == Counter({(m, s): 2 for m in ("image", "audio", "text") for s in ("train", "test")})
    audio = coll.select(split="test", modality="audio")[0]
    assert audio.path == root / "audio/audioimg/Grey_Catbird/1_t.png"
    assert (audio.label, audio.class_name, audio.source) == (0, "Gray_Catbird", "list/audio/test.txt:1")


def test_fgxmedia_lists_dir_and_modality_subset(tmp_path):
    root = _fgx_tree(tmp_path / "fgx", FGX_ROWS, lists=tmp_path / "elsewhere")
    with pytest.raises(DcinetError, match="list folder not found"):
        read_fgxmedia(root)
    coll = read_fgxmedia(root, modalities=["text"], lists_dir=tmp_path / "elsewhere")
    assert coll.modalities == ["text"] and len(coll.samples) == 4


def test_fgxmedia_bad_entries_raise_or_are_collected(tmp_path):
    rows = {m: list(v) for m, v in FGX_ROWS.items()}
    root = _fgx_tree(tmp_path / "fgx", rows)
    train = root / "list" / "image" / "train.txt"
    train.write_text(train.read_text() + "image/002.Wren/gone.jpg 1\nimage/002.Wren/e.jpg -1\n"
                     "image/002.Wren/f.jpg 5\nimage/002.Wren/g.jpg 0\n")
    for name in ("e.jpg", "f.jpg", "g.jpg"):
        (root / "image" / "002.Wren" / name).write_bytes(b"x")
    with pytest.raises(DcinetError, match=r"list/image/train\.txt:4"):
        read_fgxmedia(root, num_classes=2)
    problems: list[Problem] = []
    coll = read_fgxmedia(root, num_classes=2, problems=problems)
    assert [(p.kind, p.source) for p in problems] == [
        ("label_out_of_range", "list/image/train.txt:4"),  # -1
        ("label_out_of_range", "list/image/train.txt:5"),  # 5 >= 2 classes
        ("label_out_of_range", "list/image/train.txt:6"),  # 0 in the Wren folder, whose label is 1
        ("missing_file", "list/image/train.txt:3"),
    ]
    assert problems[3].path == root / "image/002.Wren/gone.jpg"
    assert len(coll.select(split="train", modality="image")) == 2


def test_fgxmedia_real_lists_parse_against_placeholder_tree(fgx_placeholder_tree):
    root, lists = fgx_placeholder_tree
    coll = read_fgxmedia(root, lists_dir=lists)
    assert coll.counts() == Counter({("image", "train"): 5994, ("image", "test"): 5794,
                                     ("audio", "train"): 6000, ("audio", "test"): 6000,
                                     ("text", "train"): 4000, ("text", "test"): 4000})
    assert coll.num_classes == 200 and coll.classes[0] == "Black_footed_Albatross"
    assert len(set(coll.classes)) == 200
    assert {s.label for s in coll.samples if s.modality == "audio"} == set(range(200))
    first_audio = next(s for s in coll.samples if s.path == root / "audio/audioimg/Black_footed_Albatross/9_36.png")
    assert first_audio.class_name == "Black_footed_Albatross" and first_audio.source == f"{lists}/audio/test.txt:1"


# ----------------------------------------------------------------------------- CUB
def _cub_tree(root: Path, sep: str, base: int, prefix: bool) -> Path:
    """3 classes x 2 images; ids start at ``base``; class names optionally ``NNN.``-prefixed."""
    names = ["Alpha_Bird", "Beta_Bird", "Gamma_Bird"]
    images, labels, split, classes = [], [], [], []
    for c, name in enumerate(names):
        folder = f"{c + 1:03d}.{name}" if prefix else name
        classes.append(f"{c + base}{sep}{folder}")
        for k in range(2):
            image_id = 2 * c + k + base
            rel = f"{folder}/{name}_{k}.jpg"
            (root / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / "images" / rel).write_bytes(b"x")
            images.append(f"{image_id}{sep}{rel}")
            labels.append(f"{image_id}{sep}{c + base}")
            split.append(f"{image_id}{sep}{1 - k}")
    for fname, rows in (("images.txt", images), ("image_class_labels.txt", labels),
                        ("train_test_split.txt", split), ("classes.txt", classes)):
        (root / fname).write_text("\n".join(rows) + "\n")
    return root


@pytest.mark.parametrize(("sep", "base", "prefix"), [(" ", 1, True), (", ", 0, False)])
def test_cub_official_and_comma_styles(tmp_path, sep, base, prefix):
    coll = read_collection(_cub_tree(tmp_path / "cub", sep, base, prefix), "cub")
    assert coll.classes == ["Alpha_Bird", "Beta_Bird", "Gamma_Bird"]
    assert coll.modalities == ["image"]
    assert coll.counts() == Counter({("image", "train"): 3, ("image", "test"): 3})
    for s in coll.samples:
        assert s.class_name == coll.classes[s.label] and s.class_name in s.path.name
        assert s.split == ("train" if s.path.stem.endswith("_0") else "test")


def test_cub_bad_rows_raise_or_are_collected(tmp_path):
    root = _cub_tree(tmp_path / "cub", " ", 1, True)
    (root / "images" / "001.Alpha_Bird" / "Alpha_Bird_0.jpg").unlink()
    with open(root / "image_class_labels.txt", "a") as f:
        f.write("7 9\n")
    with open(root / "images.txt", "a") as f:
        f.write("7 003.Gamma_Bird/extra.jpg\n8 003.Gamma_Bird/nosplit.jpg\n1 again.jpg\n")
    with open(root / "train_test_split.txt", "a") as f:
        f.write("7 1\n")
    with pytest.raises(DcinetError):
        read_cub(root)
    problems: list[Problem] = []
    coll = read_cub(root, problems=problems)
    assert [(p.kind, p.source) for p in problems] == [
        ("malformed_line", "images.txt:9"),  # id 1 repeated
        ("missing_file", "images.txt:1"),
        ("label_out_of_range", "image_class_labels.txt:7"),  # class 9 is not in classes.txt
        ("malformed_line", "images.txt:8"),  # id 8 has no split line... nor label line
    ]
    assert len(coll.samples) == 5


def test_cub_needs_its_files_and_is_image_only(tmp_path):
    root = _cub_tree(tmp_path / "cub", " ", 1, True)
    with pytest.raises(DcinetError, match="only"):
        read_collection(root, "cub", lists_dir=tmp_path)
    with pytest.raises(DcinetError, match="'audio' not found"):
        read_cub(root, modalities=["audio"])
    (root / "classes.txt").unlink()
    with pytest.raises(DcinetError, match="classes.txt"):
        read_cub(root)


def test_cub100_real_subset(shared_data):
    # cub100's train_test_split.txt marks its 2,903 *test* images with 1 (every class has exactly
    # 29-30 images flagged 0, like CUB's train split), so it is read with train_flag=0.
    coll = read_cub(shared_data / "cub100", train_flag=0)
    assert coll.counts() == Counter({("image", "train"): 2999, ("image", "test"): 2903})
    per_class_train = Counter(s.label for s in coll.select(split="train"))
    assert set(per_class_train.values()) <= {29, 30}  # as in CUB-200-2011's train split
    assert coll.num_classes == 100 and coll.classes[0] == "Black_footed_Albatross"
    assert all(s.path.parent.name == s.class_name for s in coll.samples)


def test_unknown_format(folder_tree):
    with pytest.raises(DcinetError, match="unknown dataset format 'coco'"):
        read_collection(folder_tree, "coco")

