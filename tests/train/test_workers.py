"""Persistent DataLoader workers: each epoch's per-item choices (video frames) and exact resume."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from dcinet.config import load_config
from dcinet.data.dataset import build_train_loader
from dcinet.data.readers import read_folder
from dcinet.data.video import list_frames
from dcinet.data.views import pick_view
from dcinet.rundir import read_pointer
from dcinet.train.checkpoint import load_checkpoint
from dcinet.train.loop import fit

# cpu-tiny at 32 px (CMSI after stage 3), as the kill -9 test runs it
RUN_ARGS = ["epochs=2", "img_size=32", "resize=36", "layer=3"]


def image_and_video_data(builtin: Path, root: Path, per_split: int = 2) -> Path:
    """``per_split`` built-in images per class and split, and as many clips of 4 frames, each
    frame another built-in image of the class, so that the frame a step draws changes what the
    network sees."""
    for split_dir in sorted((builtin / "image").iterdir()):
        for class_dir in sorted(split_dir.iterdir()):
            pictures = sorted(class_dir.iterdir())
            (root / "image" / split_dir.name / class_dir.name).mkdir(parents=True)
            for c in range(per_split):
                shutil.copy(pictures[c], root / "image" / split_dir.name / class_dir.name / pictures[c].name)
                clip = root / "video" / split_dir.name / class_dir.name / f"clip{c}"
                clip.mkdir(parents=True)
                for f in range(4):
                    shutil.copy(pictures[(c + f) % len(pictures)], clip / f"frame_{f}.png")
    return root


def final_weights(run: Path) -> dict[str, torch.Tensor]:
    assert read_pointer(run)["epoch"] == 2
    return load_checkpoint(run)[0]


@pytest.mark.slow
def test_two_persistent_workers_train_as_the_main_process_and_resume_bit_identically(
        tiny_builtin: Path, tmp_path: Path, tiny_overrides, crash_after_first_epoch):
    data = image_and_video_data(tiny_builtin, tmp_path / "data")
    cfg = {w: load_config("cpu-tiny", [*tiny_overrides, *RUN_ARGS, f"num_workers={w}"]) for w in (0, 2)}
    # the check has teeth: epoch 2 draws other frames than epoch 1 for some training clip
    loader, _ = build_train_loader(read_folder(data), cfg[2])
    assert loader.persistent_workers and loader.prefetch_factor == cfg[2].prefetch_factor
    clips = [(i, len(list_frames(s.path))) for i, s in enumerate(loader.dataset.samples) if s.modality == "video"]
    assert any(pick_view(n, (cfg[2].seed, 0, i)) != pick_view(n, (cfg[2].seed, 1, i)) for i, n in clips)
    del loader

    fit(cfg[0], data, tmp_path / "main", progress=False)
    fit(cfg[2], data, tmp_path / "workers", progress=False)

    crash_after_first_epoch(fit, cfg[2], data, tmp_path / "resumed", progress=False)
    fit(cfg[2], data, tmp_path / "resumed", resume=True, progress=False)

    expected = final_weights(tmp_path / "main")
    for run in ("workers", "resumed"):
        got = final_weights(tmp_path / run)
        assert got.keys() == expected.keys()
        assert all(torch.equal(got[k], expected[k]) for k in expected), run
