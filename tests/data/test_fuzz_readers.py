"""Fuzzing the readers: random and damaged bytes into the image / audio / text decoders, random lines
into the list-file parser and the CUB tables. The only exception allowed is a DcinetError (incl.
DecodeError) whose message names the file; anything else (PIL, soundfile, UnicodeDecodeError,
ValueError, IndexError, ...) is a bug. ``DCINET_FUZZ_EXAMPLES=2000`` fuzzes deeper (default 60 per test)."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from dcinet.data.audio import load_audio, read_audio
from dcinet.data.cub import CUB_FILES, read_cub
from dcinet.data.fgxmedia import parse_list_file, read_fgxmedia
from dcinet.data.image import load_image, open_image
from dcinet.data.problems import DecodeError, Problem
from dcinet.data.text import VOCAB_SIZE, decode_text, encode_text, read_text
from dcinet.data.video import list_frames
from dcinet.errors import DcinetError

FUZZ = settings(max_examples=int(os.environ.get("DCINET_FUZZ_EXAMPLES", "60")), deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _image_bytes(fmt: str) -> bytes:
    pixels = np.random.default_rng(1).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    return buffer.getvalue()


def _audio_bytes(fmt: str, subtype: str | None = None) -> bytes:
    t = np.arange(1600) / 8000
    buffer = io.BytesIO()
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000, format=fmt, subtype=subtype)
    return buffer.getvalue()


IMAGE_SEEDS = [_image_bytes(f) for f in ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP")]
AUDIO_SEEDS = [_audio_bytes("WAV", "PCM_16"), _audio_bytes("WAV", "FLOAT"), _audio_bytes("FLAC"),
               _audio_bytes("OGG"), _audio_bytes("AIFF")]


@st.composite
def damaged(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A valid file with a few bytes overwritten and maybe truncated, or plain random bytes."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=300))
    data = bytearray(draw(st.sampled_from(seeds)))
    for position, value in draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)),
                                         max_size=6)):
        data[position] = value
    return bytes(data[: draw(st.integers(0, len(data)))])


def _names_file(exc: DcinetError, name: str | Path) -> None:
    assert str(name) in str(exc), f"error does not name {name}: {exc}"


# ----------------------------------------------------------------------------- media decoders
def test_fuzz_seeds_are_valid_files():
    for data in IMAGE_SEEDS:
        assert open_image(data).size == (5, 6)
    for data in AUDIO_SEEDS:
        wave, rate = read_audio(data)
        assert rate == 8000 and abs(wave.shape[0] - 1600) <= 64  # lossy codecs may pad a little


@pytest.mark.filterwarnings("ignore::UserWarning")  # PIL warns about damaged TIFF / EXIF tags
@FUZZ
@given(data=damaged(IMAGE_SEEDS))
def test_image_bytes_decode_or_raise_a_named_error(tmp_path, data):
    try:
        img = open_image(data, name="upload.bin")
        assert img.mode == "RGB"
    except DecodeError as exc:
        _names_file(exc, "upload.bin")
        assert exc.kind == "bad_image"
    path = tmp_path / "fuzz.img"
    path.write_bytes(data)
    try:
        x = load_image(path, 4, 6)
        assert x.shape == (3, 4, 4) and x.dtype == torch.float32 and torch.isfinite(x).all()
    except DcinetError as exc:
        _names_file(exc, path)


@FUZZ
@given(data=damaged(AUDIO_SEEDS))
def test_audio_bytes_decode_or_raise_a_named_error(tmp_path, data):
    try:
        wave, rate = read_audio(data, name="upload.bin")
        assert wave.ndim == 1 and wave.size > 0 and rate >= 1000 and np.isfinite(wave).all()
    except DecodeError as exc:
        _names_file(exc, "upload.bin")
    path = tmp_path / "fuzz.wav"
    path.write_bytes(data)
    try:
        x = load_audio(path, 8, 8000, 64, 32, cache_dir=tmp_path / "cache")
        assert x.shape == (3, 8, 8) and torch.isfinite(x).all()
    except DcinetError as exc:
        _names_file(exc, path)


@FUZZ
@given(data=st.one_of(st.binary(max_size=200), st.text(max_size=100).map(lambda s: s.encode("utf-8"))),
       length=st.integers(1, 40))
def test_text_bytes_decode_or_raise_a_named_error(tmp_path, data, length):
    path = tmp_path / "fuzz.txt"
    path.write_bytes(data)
    for decode in (lambda: decode_text(data, str(path)), lambda: read_text(path)):
        try:
            text = decode()
        except DecodeError as exc:
            _names_file(exc, path)
            continue
        ids = encode_text(text, length)
        assert ids.shape == (length,) and ids.dtype == torch.int64
        assert int(ids.min()) >= 0 and int(ids.max()) < VOCAB_SIZE


# ----------------------------------------------------------------------------- list files
FIELD = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["image/001.Crow/a.jpg", "a b/c d.png", "/etc/passwd", "../up.jpg", "x\x00y", "C:\\w\\x.jpg"]),
    st.integers(-10**30, 10**30).map(str),
    st.just("9" * 5000),
    st.sampled_from(["\u0663", "\uff11", "1e3", "0x1", "+7", "-0", "", "\ufeff"]),
)
SEPARATOR = st.sampled_from([" ", "\t", "  ", ",", ", ", "\u3000", "\x0b"])
LINE = st.lists(FIELD, min_size=0, max_size=4).flatmap(
    lambda fields: st.lists(SEPARATOR, min_size=len(fields), max_size=len(fields)).map(
        lambda seps: "".join(f + s for f, s in zip(fields, seps, strict=True))))
ENDING = st.sampled_from(["\n", "\r\n", "\r", "\u2028", "\x85"])


def _file_bytes(lines: list[str], endings: list[str], raw: bytes) -> bytes:
    text = "".join(line + end for line, end in zip(lines, endings, strict=False))
    return text.encode("utf-8", "surrogatepass") + raw


LIST_FILE = st.builds(_file_bytes, st.lists(LINE, max_size=8), st.lists(ENDING, min_size=8, max_size=8),
                      st.one_of(st.just(b""), st.binary(max_size=20)))


@FUZZ
@given(data=LIST_FILE)
def test_list_parser_collects_or_raises_named_errors(tmp_path, data):
    path = tmp_path / "train.txt"
    path.write_bytes(data)
    problems: list[Problem] = []
    try:
        entries = parse_list_file(path, problems)
    except DcinetError as exc:  # undecodable file: the whole file is refused
        _names_file(exc, path)
        return
    for entry in entries:
        assert entry.rel_path and isinstance(entry.label, int) and abs(entry.label) < 10**18
        assert not entry.rel_path.startswith("/") and ".." not in entry.rel_path.split("/")
    for problem in problems:
        assert problem.kind == "malformed_line" and problem.source.startswith(f"{path}:")
    try:
        assert parse_list_file(path) == entries and not problems
    except DcinetError as exc:
        _names_file(exc, path)


@FUZZ
@given(image=LIST_FILE, text=LIST_FILE)
def test_fgxmedia_reader_on_random_lists(tmp_path, image, text):
    root = tmp_path / "fgx"
    for modality, data in (("image", image), ("text", text)):
        (root / "list" / modality).mkdir(parents=True, exist_ok=True)
        (root / "list" / modality / "train.txt").write_bytes(data)
    problems: list[Problem] = []
    try:
        coll = read_fgxmedia(root, problems=problems)
    except DcinetError as exc:
        assert "list" in str(exc)
        return
    assert all(0 <= s.label < coll.num_classes for s in coll.samples)
    assert all(p.path is not None for p in problems)


@FUZZ
@given(tables=st.lists(LIST_FILE, min_size=4, max_size=4), strict=st.booleans())
def test_cub_reader_on_random_tables(tmp_path, tables, strict):
    root = tmp_path / "cub"
    (root / "images").mkdir(parents=True, exist_ok=True)
    for name, data in zip(CUB_FILES, tables, strict=True):
        (root / name).write_bytes(data)
    problems: list[Problem] | None = None if strict else []
    try:
        coll = read_cub(root, problems=problems)
    except DcinetError as exc:
        assert any(name in str(exc) for name in CUB_FILES) or "images" in str(exc), str(exc)
        return
    assert all(0 <= s.label < coll.num_classes for s in coll.samples)
    for problem in problems or []:
        assert problem.path is not None and problem.source.split(":")[0] in CUB_FILES


@pytest.mark.parametrize("line, message", [
    ("a.jpg " + "9" * 5000, "expected '<relative path> <integer label>'"),
    ("a.jpg \u0663", "expected '<relative path> <integer label>'"),
    ("../a.jpg 1", "must be relative to the dataset root"),
    ("/abs/a.jpg 1", "must be relative to the dataset root"),
    ("a\x00.jpg 1", "NUL"),
])
def test_list_lines_found_by_fuzzing_are_named_problems(tmp_path, line, message):
    path = tmp_path / "train.txt"
    path.write_text(f"ok.jpg 0\n{line}\n")
    problems: list[Problem] = []
    assert [e.rel_path for e in parse_list_file(path, problems)] == ["ok.jpg"]
    assert [(p.kind, p.source) for p in problems] == [("malformed_line", f"{path}:2")]
    assert message in problems[0].message and len(problems[0].message) < 300


def test_huge_labels_and_overlong_names_found_by_fuzzing(tmp_path):
    root = tmp_path / "fgx"
    (root / "list/image").mkdir(parents=True)
    (root / "a").mkdir()
    (root / "a/x.jpg").touch()
    long_name = "9" * 300 + ".jpg"
    (root / "list/image/train.txt").write_text(f"a/x.jpg 1\na/x.jpg 99999999999999999\na/{long_name} 1\n")
    problems: list[Problem] = []
    coll = read_fgxmedia(root, problems=problems)  # once built 10^17 class names, then OOM
    assert coll.num_classes == 2 and [s.path for s in coll.samples] == [root / "a/x.jpg"]
    assert [(p.kind, p.source.rsplit(":", 1)[1]) for p in problems] == [("label_out_of_range", "2"), ("missing_file", "3")]
    with pytest.raises(DcinetError, match="dataset root not found"):
        read_fgxmedia(tmp_path / long_name)
    with pytest.raises(DecodeError, match="not found"):
        list_frames(root / long_name)


def test_audio_with_an_implausible_sample_rate_is_refused():
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(100, dtype=np.float32), 10, format="WAV", subtype="PCM_16")
    with pytest.raises(DecodeError, match="rec.wav: implausible sample rate 10 Hz"):
        read_audio(buffer.getvalue(), name="rec.wav")
