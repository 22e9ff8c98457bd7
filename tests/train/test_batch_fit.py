"""A preset's batch is fitted to a small dataset (fewer classes than the class-aware sampler draws,
an odd CMSI batch) with one line each, instead of refusing it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dcinet.app.cli import main
from dcinet.config import load_config
from dcinet.data.records import Collection, Sample
from dcinet.errors import DcinetError
from dcinet.train.batch_fit import fit_batch, shared_classes


def _collection(classes_per_modality: dict[str, list[int]]) -> Collection:
    samples = [Sample(m, "train", c, f"c{c}", Path(f"/{m}/{c}-{i}")) for m, labels in
               classes_per_modality.items() for c in labels for i in range(3)]
    samples.append(Sample("image", "test", 9, "c9", Path("/image/test")))  # not training data
    return Collection([f"c{i}" for i in range(10)], samples)


def test_shared_classes_counts_training_classes_in_every_modality():
    data = _collection({"image": [0, 1, 2, 9], "audio": [1, 2, 3], "text": [2, 1]})
    assert shared_classes(data, ["image", "audio", "text"]) == 2  # 1 and 2
    assert shared_classes(data, ["image"]) == 4


@pytest.mark.parametrize("overrides, classes, modalities, b, says", [
    ({}, 5, 3, 4, ["lowered from 8 to 5", "5 x 3 modalities is odd, so it is lowered to 4"]),
    ({"samples_per_class": 2}, 3, 3, 6, ["lowered from 8 to 6 (3 classes x samples_per_class 2)"]),
    ({}, 8, 3, 8, []),  # enough classes: unchanged
    ({"sampler": "random", "batch_per_modality": 5}, 2, 3, 4, ["lowered to 4"]),
    ({"sampler": "random", "batch_per_modality": 1}, 2, 3, 2, ["raised to 2"]),
    ({"sampler": "random", "batch_per_modality": 5}, 2, 2, 5, []),  # 10 maps: even already
    ({"interaction": "none"}, 5, 3, 5, ["lowered from 8 to 5"]),  # no CMSI: odd is fine
])
def test_fit_batch(overrides, classes, modalities, b, says):
    cfg = load_config("cpu-tiny", overrides)
    names = ["image", "audio", "text"][:modalities]
    fitted, notes = fit_batch(cfg, _collection({m: list(range(classes)) for m in names}), names)
    assert fitted.batch_per_modality == b
    assert len(notes) == len(says) and all(s in n for s, n in zip(says, notes, strict=True))
    assert (fitted is cfg) == (not notes)


def test_no_class_in_every_modality_takes_the_random_sampler():
    """As on real data where no species has photos, recordings and texts: the class-aware sampler
    would find nothing to draw."""
    cfg = load_config("cpu-tiny")
    names = ["image", "audio", "text"]
    fitted, notes = fit_batch(cfg, _collection({"image": [0, 1], "audio": [1], "text": [0]}),
                              names)
    assert fitted.sampler == "random" and fitted.batch_per_modality == 8
    assert notes == ["no class has training items in every modality (image, audio, text), which "
                     "the class-aware sampler draws from, so sampler is random"]


def test_unfittable_batches_are_refused_in_one_line():
    cfg = load_config("cpu-tiny")
    names = ["image", "audio", "text"]
    with pytest.raises(DcinetError, match="set samples_per_class=2"):
        fit_batch(cfg, _collection({m: [0] for m in names}), names)


def test_train_fits_the_batch_says_so_and_records_it(tiny_builtin, tmp_path, tiny_overrides,
                                                     capsys):
    run = tmp_path / "run"
    overrides = [o for o in tiny_overrides if not o.startswith(("batch_per", "samples_per"))]
    assert main(["train", "--config", "cpu-tiny", "--data", str(tiny_builtin), "--out", str(run),
                 *overrides, "batch_per_modality=8", "samples_per_class=1"]) == 0
    out = capsys.readouterr().out
    # 4 classes of the built-in data: 8 -> 4 per modality (then 4 x 3 = 12 maps is even)
    assert "note: only 4 classes have training items in every modality, so batch_per_modality " \
           "is lowered from 8 to 4" in out
    assert yaml.safe_load((run / "config.yaml").read_text())["batch_per_modality"] == 4
    assert main(["train", "--config", "cpu-tiny", "--data", str(tiny_builtin), "--out", str(run),
                 *overrides, "batch_per_modality=8", "samples_per_class=1", "epochs=2",
                 "--resume", "--quiet"]) == 0  # the same command resumes: fitted alike
