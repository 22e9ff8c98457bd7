"""Decode errors speak to a user: the file's name and what is wrong, never a Python object's repr
(``<_io.BytesIO object at 0x7f...>``) copied from a decoder's own message."""

from __future__ import annotations

import re

import pytest

from dcinet.data.audio import read_audio
from dcinet.data.image import open_image
from dcinet.data.problems import DecodeError, plain_text
from dcinet.data.text import read_text

REPR = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>|0x[0-9a-fA-F]{6,}")

CORRUPT = {
    "garbage": b"garbage " * 16,
    "png header, no image": b"\x89PNG\r\n\x1a\n" + bytes(40),
    "cut png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x02"
                b"\x00\x00\x00\x90\x91h6"),
}


@pytest.mark.parametrize("data", CORRUPT.values(), ids=CORRUPT.keys())
def test_a_corrupt_image_from_bytes_or_a_file_is_named_without_a_repr(data, tmp_path):
    path = tmp_path / "bird.png"
    path.write_bytes(data)
    for src, name in ((data, "upload.png"), (data, None), (path, None)):
        with pytest.raises(DecodeError) as info:
            open_image(src, name)
        message = str(info.value)
        assert not REPR.search(message), message
        assert message.startswith(f"{name or (str(src) if src is path else '<image bytes>')}: "
                                  "cannot decode image"), message
        assert info.value.kind == "bad_image"


@pytest.mark.parametrize("data", [b"garbage " * 16, b"RIFF" + bytes(40), b"OggS" + bytes(60)])
def test_corrupt_audio_bytes_are_named_without_a_repr(data):
    with pytest.raises(DecodeError) as info:
        read_audio(data, "call.wav")
    assert str(info.value).startswith("call.wav: ") and not REPR.search(str(info.value))


def test_bad_text_is_named_without_a_repr(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"\xff\xfe\xfa not utf-8")
    with pytest.raises(DecodeError) as info:
        read_text(path)
    assert str(info.value).startswith(f"{path}: ") and not REPR.search(str(info.value))


def test_plain_text_drops_object_reprs_and_keeps_the_rest():
    assert plain_text("cannot identify image file <_io.BytesIO object at 0x7f3e9dbda9d0>") == \
        "cannot identify image file"
    assert plain_text("Error opening <soundfile._SeekGuard object at 0xDEADBEEF>: bad header") == \
        "Error opening: bad header"
    assert plain_text("broken PNG file (chunk b'IDAT')") == "broken PNG file (chunk b'IDAT')"
    assert plain_text("value <5 at 10") == "value <5 at 10"


def test_every_decode_error_is_scrubbed():
    error = DecodeError("x.png", "bad_image", "cannot decode (<object object at 0x7f00aa11bb22>)")
    assert str(error) == "x.png: cannot decode" and error.reason == "cannot decode"
