"""How often CMSI and CMCI fired: the counts' arithmetic, and run.json after real runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcinet.config import load_config
from dcinet.distributed import DistInfo
from dcinet.train.fired import RUN_KEY, add_counts, fired_record, sum_over_ranks
from dcinet.train.loop import fit


def test_counts_add_up_and_become_fractions():
    total: dict = {}
    add_counts(total, {"cmci": {"image": {"maps": 4, "changed": 3}, "audio": {"maps": 4, "changed": 0}}})
    add_counts(total, {"cmci": {"image": {"maps": 4, "changed": 1}},
                       "cmsi": {"text": {"maps": 2, "changed": 2, "cross_modal": 1,
                                         "same_modality": 1}}})
    add_counts(total, {})
    assert total == {"cmci": {"image": {"maps": 8, "changed": 4}, "audio": {"maps": 4, "changed": 0}},
                     "cmsi": {"text": {"maps": 2, "changed": 2, "cross_modal": 1, "same_modality": 1}}}
    record = fired_record(total, epochs=3)
    assert record == {
        "epochs": 3,
        "cmci": {"image": {"maps": 8, "changed": 4, "changed_fraction": 0.5},
                 "audio": {"maps": 4, "changed": 0, "changed_fraction": 0.0}},
        "cmsi": {"text": {"maps": 2, "changed": 2, "cross_modal": 1, "same_modality": 1,
                          "changed_fraction": 1.0, "cross_modal_fraction": 0.5,
                          "same_modality_fraction": 0.5}},
    }
    assert fired_record({}, epochs=2) == {"epochs": 2}
    assert sum_over_ranks(total, DistInfo(0, 1, 0, "cpu")) is total


def _fired(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())[RUN_KEY]


@pytest.mark.parametrize("mode,receives,pairs", [
    ("paper", {"image": 1.0, "audio": 0.0, "text": 0.0}, "flip"),
    ("symmetric", {"image": 1.0, "audio": 1.0, "text": 1.0}, "flip"),
    ("paper", {"image": 1.0, "audio": 0.0, "text": 0.0}, "cross"),
])
def test_class_aware_batches_make_triples_whose_receivers_follow_cmci_mode(
        tiny_builtin: Path, tmp_path: Path, tiny_overrides, mode, receives, pairs):
    # every class of a class-aware step has K = 2 items of each modality: CMCI matches only
    # triples, and in the paper's mode only the first modality's map (the image) receives
    cfg = load_config("cpu-tiny", [*tiny_overrides, f"cmci_mode={mode}", f"cmsi_pairs={pairs}"])
    fit(cfg, tiny_builtin, tmp_path / "run", progress=False)
    fired = _fired(tmp_path / "run")
    assert fired["epochs"] == 1
    assert {m: c["changed_fraction"] for m, c in fired["cmci"].items()} == receives
    maps = {m: c["maps"] for m, c in fired["cmci"].items()}
    assert len(set(maps.values())) == 1 and maps["image"] % cfg.batch_per_modality == 0
    # CMSI: one 1 x 1 box per step on the 2 x 2 maps, so every map changed; flip takes about
    # 2/3 of the boxes from another modality, cross all of them
    for c in fired["cmsi"].values():
        assert c["maps"] == maps["image"] and c["changed_fraction"] == 1.0
        assert c["cross_modal"] + c["same_modality"] == c["maps"]
        if pairs == "flip":
            assert 0 < c["cross_modal"] < c["maps"]
        else:
            assert c["same_modality"] == 0 and c["same_modality_fraction"] == 0.0
