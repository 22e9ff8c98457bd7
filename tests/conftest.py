"""Shared fixtures: a tiny built-in dataset and a fast training config."""

from __future__ import annotations

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
