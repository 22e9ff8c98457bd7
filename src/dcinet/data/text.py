"""Text encoding: a fixed character vocabulary and fixed-length id sequences.

The paper's text processing module (eq. 1) one-hot encodes characters and turns them into an
image-sized tensor inside the model; this module only produces the character ids, shape
``(text_len,)`` (448 in the paper preset).

How this differs from FGCrossNet's text reader: that reader keeps only the *last line* of each
file and silently drops spaces and capital letters. Here the *whole* text is used: all lines are
joined, runs of whitespace become one space, the result is lowercased (capitals become lowercase
letters rather than disappearing) and spaces are kept as a character of their own. Characters
outside the vocabulary map to :data:`UNK_ID` instead of vanishing, so word boundaries and lengths
survive.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dcinet.data.problems import DecodeError

PAD_ID = 0
UNK_ID = 1
CHARACTERS = "abcdefghijklmnopqrstuvwxyz0123456789 .,;:!?'\"-()[]/&%+*=#@$_<>"
"""The vocabulary after the two special ids: id of ``CHARACTERS[i]`` is ``i + 2``."""
VOCAB_SIZE = len(CHARACTERS) + 2
_IDS = {ch: i + 2 for i, ch in enumerate(CHARACTERS)}


def normalize_text(s: str) -> str:
    """The whole text on one line: whitespace runs (newlines included) -> one space, stripped, lowercased."""
    return " ".join(s.split()).lower()


def encode_text(s: str, length: int) -> torch.Tensor:
    """Character ids of :func:`normalize_text` ``(s)``, truncated or right-padded with :data:`PAD_ID`.

    Returns:
        int64 tensor ``(length,)``; unknown characters are :data:`UNK_ID`.
    """
    ids = [_IDS.get(ch, UNK_ID) for ch in normalize_text(s)[:length]]
    out = torch.full((length,), PAD_ID, dtype=torch.int64)
    out[: len(ids)] = torch.tensor(ids, dtype=torch.int64)
    return out


def decode_text(data: bytes, name: str) -> str:
    """Strict UTF-8 decoding of a text file's bytes (a leading BOM is dropped).

    Raises:
        DecodeError: naming ``name`` when the bytes are not UTF-8 or hold only whitespace.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DecodeError(name, "bad_text", f"text is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    if not text.strip():
        raise DecodeError(name, "bad_text", "text file is empty" + (" (whitespace only)" if text else ""))
    return text


def read_text(path: Path | str) -> str:
    """Read a text file strictly as UTF-8; see :func:`decode_text` for the errors raised."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DecodeError(str(path), "missing_file", "text file not found") from None
    except OSError as exc:
        raise DecodeError(str(path), "bad_text", f"cannot read text file ({exc.strerror or exc})") from None
    return decode_text(data, str(path))
