"""Which modality a loose file holds: by its extension, else by its first bytes.

Used for folders that are not in the dataset layout (a photo library, a folder of recordings):
every file is an image, an audio recording or a text, or of an unknown kind. A known extension
decides; a file without one (or with an unknown one) is recognised by its signature (JPEG, PNG,
GIF, BMP, WebP, TIFF; WAV, FLAC, OGG, MP3). Texts are recognised by extension only (``.txt``):
any byte string could be a text.
"""

from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff")
AUDIO_SUFFIXES: tuple[str, ...] = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3")
TEXT_SUFFIXES: tuple[str, ...] = (".txt",)

_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"GIF87a", "image/gif"), (0, b"GIF89a", "image/gif"),
    (0, b"BM", "image/bmp"),
    (0, b"II*\x00", "image/tiff"), (0, b"MM\x00*", "image/tiff"),
    (8, b"WEBP", "image/webp"),             # RIFF....WEBP
    (8, b"WAVE", "audio/wav"),              # RIFF....WAVE
    (0, b"fLaC", "audio/flac"),
    (0, b"OggS", "audio/ogg"),
    (0, b"ID3", "audio/mpeg"),              # MP3 with an ID3v2 tag
)


def kind_by_suffix(path: Path | str) -> str | None:
    """``image``, ``audio`` or ``text`` from the file name's extension (any case), else None."""
    suffix = Path(path).suffix.lower()
    for modality, suffixes in (("image", IMAGE_SUFFIXES), ("audio", AUDIO_SUFFIXES),
                               ("text", TEXT_SUFFIXES)):
        if suffix in suffixes:
            return modality
    return None


def content_type(head: bytes) -> str | None:
    """The media type (``image/jpeg``, ``audio/wav``, ...) of a file from its first bytes (at
    least 12 of them), else None."""
    for offset, magic, media_type in _SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return media_type
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return "audio/mpeg"  # an MPEG audio frame header without a tag (layer bits not 00)
    return None


def kind_by_content(head: bytes) -> str | None:
    """``image`` or ``audio`` from a file's first bytes (:func:`content_type`), else None."""
    media_type = content_type(head)
    return media_type.split("/")[0] if media_type else None


def file_modality(path: Path) -> str | None:
    """The modality of a loose file: :func:`kind_by_suffix`, else :func:`kind_by_content` of its
    first 16 bytes; None when neither knows it (or the file cannot be read)."""
    found = kind_by_suffix(path)
    if found is not None:
        return found
    try:
        with open(path, "rb") as fh:
            return kind_by_content(fh.read(16))
    except OSError:
        return None
