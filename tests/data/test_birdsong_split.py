"""``bench/birdsong_split.py``: the shared recordings split by recording, readable as a dataset."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from dcinet.data.readers import read_collection

_spec = importlib.util.spec_from_file_location(
    "dcinet_birdsong_split", Path(__file__).resolve().parents[2] / "bench" / "birdsong_split.py")
birdsong_split = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(birdsong_split)


def test_no_recording_is_in_both_splits_and_every_test_query_has_a_match(birdsong, tmp_path):
    out = tmp_path / "split"
    assert birdsong_split.main([str(out), "--source", str(birdsong)]) == 0
    files = {s: sorted(p.name for p in (out / "audio" / s).rglob("*.ogg")) for s in ("train", "test")}
    assert (len(files["train"]), len(files["test"])) == (43, 42)
    assert not set(files["train"]) & set(files["test"])
    for species in (out / "audio" / "test").iterdir():  # two test recordings, one trains
        assert len(list(species.iterdir())) == 2
        assert len(list((out / "audio" / "train" / species.name).iterdir())) == 1
    assert birdsong_split.main([str(out), "--source", str(birdsong)]) == 2  # never overwrites
    collection = read_collection(out)
    assert collection.modalities == ["audio"] and collection.num_classes == 32
    assert len(collection.samples) == 85
