"""Text encoding: vocabulary, normalisation of the whole text, fixed length, strict reading."""

from __future__ import annotations

import pytest
import torch

from dcinet.data.problems import DecodeError
from dcinet.data.text import (
    CHARACTERS,
    PAD_ID,
    UNK_ID,
    VOCAB_SIZE,
    encode_text,
    normalize_text,
    read_text,
)


def test_vocabulary_ids_are_unique_and_dense():
    assert len(set(CHARACTERS)) == len(CHARACTERS) == VOCAB_SIZE - 2
    assert {PAD_ID, UNK_ID} == {0, 1}
    assert set("abcdefghijklmnopqrstuvwxyz0123456789 .,") <= set(CHARACTERS)
    assert not any(c.isupper() for c in CHARACTERS)
    ids = encode_text(CHARACTERS, len(CHARACTERS))
    assert ids.tolist() == list(range(2, VOCAB_SIZE))


def test_normalize_keeps_the_whole_text_lowercased_with_spaces():
    raw = "  The Bird has\ta RED crown.\r\n\nIt sings   at dawn.  \n"
    assert normalize_text(raw) == "the bird has a red crown. it sings at dawn."
    # FGCrossNet's reader would keep only "It sings at dawn." and drop spaces/capitals
    assert normalize_text(normalize_text(raw)) == normalize_text(raw)


def test_encode_text_pads_truncates_and_marks_unknown():
    ids = encode_text("Ab c", 6)
    assert ids.dtype == torch.int64 and ids.shape == (6,)
    a, b, space, c = (CHARACTERS.index(ch) + 2 for ch in "ab c")
    assert ids.tolist() == [a, b, space, c, PAD_ID, PAD_ID]
    assert encode_text("abcdef", 3).tolist() == [a, b, c]
    assert encode_text("a\u00e9b", 3).tolist() == [a, UNK_ID, b]
    assert encode_text("", 4).tolist() == [PAD_ID] * 4
    assert torch.equal(encode_text("Same\ntext", 8), encode_text("same text", 8))


def test_read_text_strict_utf8(tmp_path):
    good = tmp_path / "good.txt"
    good.write_bytes("\ufeffL\u00e9ger bird\nline two\n".encode())
    assert read_text(good) == "L\u00e9ger bird\nline two\n"  # BOM dropped, text otherwise untouched
    cases = {"latin1.txt": "L\u00e9ger".encode("latin-1"), "empty.txt": b"", "blank.txt": b" \n\t\r\n"}
    reasons = {"latin1.txt": "not UTF-8", "empty.txt": "empty", "blank.txt": "whitespace only"}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DecodeError, match=reasons[name]) as info:
            read_text(tmp_path / name)
        assert info.value.kind == "bad_text" and info.value.name == str(tmp_path / name)
    with pytest.raises(DecodeError) as info:
        read_text(tmp_path / "gone.txt")
    assert info.value.kind == "missing_file"
