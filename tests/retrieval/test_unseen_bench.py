"""``bench/unseen_classes.py``: the class-disjoint split keeps the two halves apart, and a tiny
run of the whole benchmark writes every row, with the paired differences from the frozen features."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

BENCH = Path(__file__).resolve().parents[2] / "bench" / "unseen_classes.py"


def _load():
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))  # as python bench/x.py
    spec = importlib.util.spec_from_file_location("dcinet_bench_unseen_classes", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _load()


@pytest.fixture(scope="module")
def tiny_cub(tmp_path_factory) -> Path:
    """A CUB-layout tree of 100 classes, 2 train and 2 test photos each (flag 1 = train)."""
    root = tmp_path_factory.mktemp("cub")
    rng = np.random.default_rng(0)
    images, labels, split = [], [], []
    for c in range(100):
        (root / "images" / f"{c:03d}.Bird_{c}").mkdir(parents=True)
        for i in range(4):
            n = len(images)
            rel = f"{c:03d}.Bird_{c}/{i}.jpg"
            colour = rng.integers(0, 255, 3) // (1 + c % 3)
            Image.new("RGB", (40, 40), tuple(int(x) for x in colour)).save(root / "images" / rel)
            images.append(f"{n} {rel}")
            labels.append(f"{n} {c}")
            split.append(f"{n} {int(i < 2)}")
    for name, lines in (("images.txt", images), ("image_class_labels.txt", labels),
                        ("train_test_split.txt", split),
                        ("classes.txt", [f"{c} {c:03d}.Bird_{c}" for c in range(100)])):
        (root / name).write_text("\n".join(lines) + "\n")
    return root


def test_the_split_keeps_seen_and_unseen_classes_apart(tiny_cub, tmp_path):
    seen, unseen, counts = bench.write_splits(tiny_cub, tmp_path, train_flag=1)
    assert counts == {"seen_train": 100, "seen_test": 100, "unseen": 200}
    seen_classes = {p.name for p in (seen / "image" / "train").iterdir()}
    unseen_classes = {p.name for p in (unseen / "image" / "test").iterdir()}
    assert len(seen_classes) == len(unseen_classes) == 50 and not seen_classes & unseen_classes
    assert seen_classes == {p.name for p in (seen / "image" / "test").iterdir()}
    assert not (unseen / "image" / "train").exists()  # all of an unseen class is retrieved among


def test_a_tiny_run_writes_every_row(tiny_cub, tmp_path):
    out = tmp_path / "out"
    args = bench.parse_args([str(out), "--data", str(tiny_cub), "--cub-train-flag", "1",
                             "--config", "cpu-tiny", "--seeds", "1", "--resamples", "20",
                             "--json", str(tmp_path / "r.json"), "epochs=1", "img_size=32",
                             "resize=36", "batch_per_modality=4", "layer=3"])
    assert bench.run(args) == 0
    summary = json.loads((tmp_path / "r.json").read_text())
    table = summary["table"]
    features = {"frozen", "embedding", "logits", "softmax",
                *(f"softmax+{w}emb" for w in bench.MIX_WEIGHTS)}
    assert set(table) == {f"{s}/{f}" for s in ("unseen", "seen") for f in features}
    for key, entry in table.items():
        for metric in ("R@1", "mAP@R", "mAP"):
            assert 0 <= entry[metric]["mean"] <= 1
            if not key.endswith("frozen"):
                diff, low, high = entry[metric]["vs_frozen"]
                assert low <= diff <= high
                assert diff == pytest.approx(entry[metric]["mean"]
                                             - table[key.split("/")[0] + "/frozen"][metric]["mean"])
    assert summary["counts"] == {"seen_train": 100, "seen_test": 100, "unseen": 200}
