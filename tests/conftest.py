"""Shared fixtures: a tiny built-in dataset and a fast training config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

torch.set_num_threads(2)

TINY_OVERRIDES = [
    "epochs=1", "img_size=64", "resize=72", "text_len=48", "batch_per_modality=4",
    "samples_per_class=2", "num_workers=0", "deterministic=true", "log_every=1000",
]


@pytest.fixture
def tiny_overrides() -> list[str]:
    """Config overrides for a fast, deterministic ``cpu-tiny`` run."""
    return list(TINY_OVERRIDES)


@pytest.fixture(scope="session")
def tiny_builtin(tmp_path_factory) -> Path:
    """The built-in dataset at its smallest: 4 classes, 8 items per class and modality."""
    from dcinet.sources.synth import synthesize

    root = tmp_path_factory.mktemp("builtin") / "data"
    synthesize(root, classes=4, per_class=8, seed=0, image_size=64, progress=False)
    return root


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared real data not present at {SHARED_DATA}")
    return SHARED_DATA


BIRDSONG = SHARED_DATA / "birdsong"


@pytest.fixture
def birdsong() -> Path:
    """The shared real recordings (45 species, 98 whole xeno-canto OGG files, mono 22,050 Hz;
    ``manifest.csv`` lists them); the test is skipped where the folder is absent."""
    if not (BIRDSONG / "manifest.csv").is_file():
        pytest.skip(f"shared birdsong recordings not present at {BIRDSONG}")
    return BIRDSONG


FGX_LISTS = SHARED_DATA / "fgxmedia-lists"


@pytest.fixture(scope="session")
def fgx_placeholder_tree(tmp_path_factory) -> tuple[Path, Path]:
    """``(root, lists)``: an empty file at every path of the real FG-XMedia lists (31,788 files).

    Shared by the tests of a session; a test that changes the tree must restore it.
    """
    if not FGX_LISTS.is_dir():
        pytest.skip(f"real FG-XMedia lists not present at {FGX_LISTS}")
    root = tmp_path_factory.mktemp("fgx-placeholder")
    made: set[str] = set()
    for list_file in sorted(FGX_LISTS.glob("*/t*.txt")):
        if list_file.name == "testlabel.txt":
            continue
        for line in list_file.read_text().splitlines():
            if not line.strip():
                continue
            rel = line.rsplit(None, 1)[0]
            parent = os.path.dirname(rel)
            if parent not in made:
                (root / parent).mkdir(parents=True, exist_ok=True)
                made.add(parent)
            os.close(os.open(os.path.join(root, rel), os.O_CREAT | os.O_WRONLY, 0o644))
    return root, FGX_LISTS
