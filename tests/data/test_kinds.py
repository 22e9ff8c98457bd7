"""A loose file's modality: its extension decides, else its first bytes (real encoder output)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from dcinet.data.kinds import content_type, file_modality, kind_by_content, kind_by_suffix


def _image(fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


def _audio(fmt: str, subtype: str | None = None) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(800, np.float32), 8000, format=fmt, subtype=subtype)
    return buffer.getvalue()


@pytest.mark.parametrize("name, modality", [
    ("a.JPG", "image"), ("a.jpeg", "image"), ("b.png", "image"), ("c.webp", "image"),
    ("d.wav", "audio"), ("e.FLAC", "audio"), ("f.ogg", "audio"), ("g.mp3", "audio"),
    ("h.txt", "text"), ("i.csv", None), ("noext", None), (".hidden", None),
])
def test_kind_by_suffix(name, modality):
    assert kind_by_suffix(name) == modality


@pytest.mark.parametrize("data, modality", [
    (_image("JPEG"), "image"), (_image("PNG"), "image"), (_image("GIF"), "image"),
    (_image("BMP"), "image"), (_image("WEBP"), "image"), (_image("TIFF"), "image"),
    (_audio("WAV"), "audio"), (_audio("FLAC"), "audio"), (_audio("OGG", "VORBIS"), "audio"),
    (b"ID3\x04\x00" + bytes(11), "audio"), (b"\xff\xfb\x90\x00" + bytes(12), "audio"),
    (b"a plain text file", None), (b"%PDF-1.7\n", None), (b"", None), (b"\xff\xe0", None),
])
def test_kind_by_content_of_real_encodings(data, modality):
    assert kind_by_content(data[:16]) == modality


@pytest.mark.parametrize("data, media_type", [
    (_image("JPEG"), "image/jpeg"), (_image("PNG"), "image/png"), (_image("GIF"), "image/gif"),
    (_image("BMP"), "image/bmp"), (_image("WEBP"), "image/webp"), (_image("TIFF"), "image/tiff"),
    (_audio("WAV"), "audio/wav"), (_audio("FLAC"), "audio/flac"),
    (_audio("OGG", "VORBIS"), "audio/ogg"), (b"\xff\xfb\x90\x00" + bytes(12), "audio/mpeg"),
    (b"a plain text file", None),
])
def test_content_type_of_real_encodings(data, media_type):
    assert content_type(data[:16]) == media_type


def test_file_modality_prefers_the_extension_then_sniffs(tmp_path: Path):
    (tmp_path / "photo").write_bytes(_image("JPEG"))           # no extension: sniffed
    (tmp_path / "call.bin").write_bytes(_audio("FLAC"))        # unknown extension: sniffed
    (tmp_path / "notes.txt").write_bytes(_image("PNG"))        # the extension decides
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    assert file_modality(tmp_path / "photo") == "image"
    assert file_modality(tmp_path / "call.bin") == "audio"
    assert file_modality(tmp_path / "notes.txt") == "text"
    assert file_modality(tmp_path / "data.csv") is None
    assert file_modality(tmp_path / "missing") is None
