"""What the dataset readers share: class-name and label rules, safe listed paths, root and modality
checks. The readers themselves: :mod:`dcinet.data.readers` (folders and the entry point),
:mod:`dcinet.data.fgxmedia` (PKU FG-XMedia list files), :mod:`dcinet.data.cub` (CUB-200-2011).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from dcinet.data.records import MODALITIES
from dcinet.errors import DcinetError

FRAME_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")
"""Suffixes of video frame images (a clip is a folder of them, or one of them)."""
MAX_INFERRED_CLASSES = 100_000
"""Without an explicit class count, labels from this value up are reported out of range."""
_CLASS_PREFIX = re.compile(r"^\d+\.")
LABEL_PATTERN = re.compile(r"[+-]?[0-9]{1,18}")
"""An integer label or id: ASCII digits only, small enough for int64 and ``int()``."""


def strip_class_prefix(name: str) -> str:
    """``"001.Black_footed_Albatross"`` -> ``"Black_footed_Albatross"`` (other names unchanged)."""
    return _CLASS_PREFIX.sub("", name)


def require_root(root: Path) -> None:
    if not os.path.isdir(root):
        raise DcinetError(f"dataset root not found or not a folder: {root}")


def pick_modalities(found: list[str], wanted: list[str] | None, root: Path) -> list[str]:
    """The modalities to read, in canonical order; raises when none or a wanted one is absent."""
    if wanted is not None:
        unknown = [m for m in wanted if m not in MODALITIES]
        if unknown:
            raise DcinetError(f"unknown modality {unknown[0]!r}; known: {', '.join(MODALITIES)}")
        absent = [m for m in wanted if m not in found]
        if absent:
            raise DcinetError(f"modality {absent[0]!r} not found in {root} (found: {', '.join(found) or 'none'})")
        found = [m for m in MODALITIES if m in wanted]
    if not found:
        raise DcinetError(f"no modality found in {root} (expected some of {', '.join(MODALITIES)})")
    return found


def shorten(text: str, limit: int = 120) -> str:
    """``repr(text)``, cut to about ``limit`` characters for messages."""
    return repr(text) if len(text) <= limit else f"{text[:limit]!r}... ({len(text)} characters)"


def unsafe_path(rel_path: str) -> str:
    """Why a listed path cannot be used under the dataset root, or ``""`` when it can."""
    if "\x00" in rel_path:
        return f"path {shorten(rel_path)} holds a NUL character"
    parts = rel_path.replace("\\", "/").split("/")
    if rel_path.startswith(("/", "\\")) or ".." in parts:
        return f"path {shorten(rel_path)} must be relative to the dataset root, without '..'"
    return ""
