"""An image-only CUB-layout dataset trains (from the offline ImageNet weights) and evaluates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dcinet.app.cli import main
from dcinet.rundir import read_metrics

CLASSES = ("Red_Bird", "Green_Bird", "Blue_Bird")
PER_CLASS = 6  # the first 4 of each class are train, the last 2 test
TEST_PER_CLASS = 2


def _write_cub(root: Path) -> None:
    """A CUB tree like cub100: comma separated, 0-based ids, test images flagged 1 (inverted)."""
    rng = np.random.default_rng(0)
    images, labels, split = [], [], []
    for c, name in enumerate(CLASSES):
        (root / "images" / name).mkdir(parents=True)
        for k in range(PER_CLASS):
            image_id = len(images)
            pixels = rng.integers(0, 60, (40, 48, 3), dtype=np.uint8)
            pixels[8:32, 10:38, c] = 200  # a bright box in the class's colour channel
            Image.fromarray(pixels).save(root / "images" / name / f"{k:04d}.jpg", quality=90)
            images.append(f"{image_id}, {name}/{k:04d}.jpg")
            labels.append(f"{image_id}, {c}")
            split.append(f"{image_id}, {int(k >= PER_CLASS - TEST_PER_CLASS)}")
    for file, lines in (("images.txt", images), ("image_class_labels.txt", labels),
                        ("train_test_split.txt", split),
                        ("classes.txt", [f"{c}, {n}" for c, n in enumerate(CLASSES)])):
        (root / file).write_text("\n".join(lines) + "\n")


@pytest.mark.slow
def test_cub_image_only_run_trains_and_reports_i2i(tmp_path: Path, tiny_overrides):
    data, run, out = tmp_path / "cub", tmp_path / "run", tmp_path / "results.json"
    _write_cub(data)
    assert main(["train", "--config", "cpu-tiny", "--data", str(data), "--format", "cub",
                 "--pretrained", "efficientnet_lite0", "--out", str(run), "--quiet",
                 *tiny_overrides, "backbone=efficientnet_lite0", "interaction=cmsi",
                 "cub_train_flag=0"]) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["modalities"] == ["image"]
    metrics = read_metrics(run)
    assert len(metrics) == 1 and {"l_img", "l_dual"} <= set(metrics[0])
    assert not {"l_aud", "l_txt"} & set(metrics[0])
    assert np.isfinite(metrics[0]["loss"])

    assert main(["evaluate", str(run), "--data", str(data), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert list(result["directions"]) == ["i2i", "i2all"]
    assert result["counts"] == {"image": len(CLASSES) * TEST_PER_CLASS}
    assert result["galleries"] == {"i2i": 5, "i2all": 6}
    assert all(0.0 <= v <= 1.0 for v in result["directions"].values())
