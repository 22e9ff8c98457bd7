"""Tiny media files and dataset trees for the data-layer tests."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from PIL import Image


def write_png(path: Path, seed: int = 0, size: tuple[int, int] = (12, 10)) -> Path:
    """A small random RGB PNG (width, height = ``size``); distinct seeds give distinct bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def write_wav(path: Path, seed: int = 0, seconds: float = 0.25, rate: int = 8000) -> Path:
    """A short mono sine (frequency depends on ``seed``) with a little noise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).normal(0, 0.01, t.shape)
    sf.write(path, (0.5 * np.sin(2 * np.pi * (300 + 50 * seed) * t) + noise).astype(np.float32), rate)
    return path


def write_txt(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"A small bird, number {seed}.\nIt has a Red crown and a short bill.\n", encoding="utf-8")
    return path


WRITERS = {"image": (write_png, ".png"), "audio": (write_wav, ".wav"), "text": (write_txt, ".txt")}


def build_folder_tree(root: Path, classes: tuple[str, ...] = ("crow", "finch", "wren"),
                      per_class: dict[str, int] | None = None,
                      modalities: tuple[str, ...] = ("image", "audio", "text")) -> Path:
    """``root/<modality>/<split>/<class>/<i>.<ext>``; ``per_class`` = samples per split (default 2)."""
    per_class = per_class or {"train": 2, "test": 2}
    seed = 0
    for modality in modalities:
        write, ext = WRITERS[modality]
        for split, n in per_class.items():
            for cls in classes:
                for i in range(n):
                    seed += 1
                    write(root / modality / split / cls / f"{i}{ext}", seed)
    return root


@pytest.fixture
def media() -> SimpleNamespace:
    """The writers above: ``media.png``, ``media.wav``, ``media.txt``, ``media.tree``."""
    return SimpleNamespace(png=write_png, wav=write_wav, txt=write_txt, tree=build_folder_tree)


@pytest.fixture
def folder_tree(tmp_path: Path) -> Path:
    """A clean 3-modality, 3-class tree with 2 train + 2 test samples per class and modality."""
    return build_folder_tree(tmp_path / "ds")
