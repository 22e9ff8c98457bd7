"""Any folder as a gallery: the dataset layout with any modalities and classes, or loose files
(flat or nested, unlabelled or labelled by their folder); nothing left out silently."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcinet.data.any_folder import is_dataset_layout, read_any
from dcinet.data.records import UNLABELLED
from dcinet.errors import DcinetError

MODEL = ["image", "audio", "text"]
PNG = b"\x89PNG\r\n\x1a\n" + bytes(8)
WAV = b"RIFF\x00\x00\x00\x00WAVEfmt "


def _put(root: Path, rel: str, data: bytes = b"x") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.fixture
def loose(tmp_path: Path) -> Path:
    root = tmp_path / "mine"
    _put(root, "top.jpg")
    _put(root, "2024/heron/a.png")
    _put(root, "2024/heron/recording", WAV)        # no extension: sniffed as audio
    _put(root, "2024/stork/b.JPG")
    _put(root, "notes/field.txt", b"a grey bird by the water")
    _put(root, ".thumbs/x.jpg")                     # hidden: not an item
    return root


def test_loose_files_unlabelled_in_sorted_order(loose):
    found = read_any(loose, MODEL)
    assert found.format == "files" and found.classes == [] and found.notes == []
    names = [(s.modality, s.path.relative_to(loose).as_posix()) for s in found.samples]
    assert names == [("image", "2024/heron/a.png"), ("image", "2024/stork/b.JPG"),
                     ("image", "top.jpg"), ("audio", "2024/heron/recording"),
                     ("text", "notes/field.txt")]
    assert all(s.label == UNLABELLED and s.class_name == "" for s in found.samples)


def test_loose_files_labelled_by_their_folder(loose):
    found = read_any(loose, MODEL, labels="folder")
    assert found.classes == ["heron", "notes", "stork"]
    by_name = {s.path.name: (s.label, s.class_name) for s in found.samples}
    assert by_name["a.png"] == (0, "heron") and by_name["b.JPG"] == (2, "stork")
    assert by_name["top.jpg"] == (UNLABELLED, "")  # directly in the root: no class


def test_unknown_files_are_refused_or_counted_on_request(loose):
    _put(loose, "2024/list.csv", b"a,b")
    with pytest.raises(DcinetError, match=r"1 file\(s\) under .* are neither images, audio nor "
                                          r"\.txt texts \(e\.g\. .*list\.csv\).*--skip-unknown"):
        read_any(loose, MODEL)
    found = read_any(loose, MODEL, skip_unknown=True)
    assert len(found.samples) == 5
    assert found.notes == [f"left out 1 file(s) of an unknown kind (e.g. {loose}/2024/list.csv)"]


def test_a_modality_the_run_never_saw_is_refused_unless_left_out(loose):
    with pytest.raises(DcinetError, match=r"holds 1 text item\(s\), but the run was trained on "
                                          r"image, audio only; pass --modalities image audio"):
        read_any(loose, ["image", "audio"])
    found = read_any(loose, ["image", "audio"], modalities=["image"])
    assert {s.modality for s in found.samples} == {"image"}
    assert found.notes == ["left out 1 audio item(s) (not in --modalities)",
                           "left out 1 text item(s) (not in --modalities)"]
    with pytest.raises(DcinetError, match="--modalities text: the run was trained on image, audio"):
        read_any(loose, ["image", "audio"], modalities=["text"])


def test_dataset_layout_any_subset_any_classes(tmp_path: Path):
    root = tmp_path / "data"
    _put(root, "image/train/heron/1.png", PNG)
    _put(root, "image/test/heron/2.png", PNG)
    _put(root, "image/test/new_species/3.png", PNG)  # a class the run never saw: metadata
    assert is_dataset_layout(root) and not is_dataset_layout(root / "image")
    found = read_any(root, MODEL)  # image only, of a tri-modal run
    assert found.format == "folder" and found.classes == ["heron", "new_species"]
    assert [(s.split, s.class_name, s.label) for s in found.samples] == [
        ("train", "heron", 0), ("test", "heron", 0), ("test", "new_species", 1)]
    assert [s.path.name for s in read_any(root, MODEL, split="test").samples] == ["2.png", "3.png"]
    with pytest.raises(DcinetError, match="apply to loose folders"):
        read_any(root, MODEL, labels="folder")


def test_refusals_name_the_thing(tmp_path: Path, loose):
    with pytest.raises(DcinetError, match="not found"):
        read_any(tmp_path / "nope", MODEL)
    with pytest.raises(DcinetError, match="has no 'test' split; leave out --split"):
        read_any(loose, MODEL, split="test")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DcinetError, match="holds no image / audio / text items"):
        read_any(tmp_path / "empty", MODEL)
