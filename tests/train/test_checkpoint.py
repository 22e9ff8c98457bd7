import json
import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from dcinet.errors import DcinetError
from dcinet.rundir import load_state, load_weights, read_pointer
from dcinet.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))


def test_save_load_round_trip_and_old_files_removed(tmp_path: Path):
    m = _model(0)
    save_checkpoint(tmp_path, m, {"note": "first"}, epoch=1)
    m2 = _model(1)
    save_checkpoint(tmp_path, m2, {"note": "second"}, epoch=2)
    weights, state = load_checkpoint(tmp_path)
    assert state["epoch"] == 2 and state["note"] == "second"
    for k, v in m2.state_dict().items():
        assert torch.equal(weights[k], v)
    assert not (tmp_path / "model-1.safetensors").exists()
    assert not (tmp_path / "state-1.pt").exists()


def test_interrupted_write_keeps_previous_checkpoint(tmp_path: Path, monkeypatch):
    m = _model(0)
    save_checkpoint(tmp_path, m, {"note": "good"}, epoch=1)

    def crash(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path, _model(5), {"note": "bad"}, epoch=2)
    monkeypatch.undo()
    assert read_pointer(tmp_path)["epoch"] == 1
    weights, state = load_checkpoint(tmp_path)
    assert state["note"] == "good"
    for k, v in m.state_dict().items():
        assert torch.equal(weights[k], v)


def test_rng_state_round_trip_through_file(tmp_path: Path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    save_checkpoint(tmp_path, _model(0), {"rng": rng_state()}, epoch=1)
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    _, state = load_checkpoint(tmp_path)
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    set_rng_state(state["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/dcinet_pwned",))


def test_malicious_pickle_is_refused(tmp_path: Path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as fh:
        pickle.dump({"w": _Evil()}, fh)
    with pytest.raises(DcinetError, match="refusing to load"):
        load_state(path)
    with pytest.raises(DcinetError, match="refusing to load"):
        load_weights(path)
    assert not Path("/tmp/dcinet_pwned").exists()


def test_corrupt_and_missing_files_are_named(tmp_path: Path):
    with pytest.raises(DcinetError, match="no checkpoint"):
        read_pointer(tmp_path)
    (tmp_path / "checkpoint.json").write_text("{not json")
    with pytest.raises(DcinetError, match="corrupt"):
        read_pointer(tmp_path)
    bad = tmp_path / "w.safetensors"
    bad.write_bytes(b"\x00" * 10)
    with pytest.raises(DcinetError, match="not a valid safetensors"):
        load_weights(bad)
    with pytest.raises(DcinetError, match="not found"):
        load_weights(tmp_path / "nope.safetensors")
    (tmp_path / "checkpoint.json").write_text(json.dumps({"epoch": 1}))
    with pytest.raises(DcinetError, match="corrupt"):
        read_pointer(tmp_path)


def test_best_files_survive_every_save_and_a_crash_between_is_repaired(tmp_path: Path):
    from dcinet.rundir import read_best
    from dcinet.train.checkpoint import remove_leftovers, restore_best, save_best

    best = {"epoch": 1, "score": 0.5, "metric": "val_score", "weights": "best-model.safetensors"}
    save_checkpoint(tmp_path, _model(0), {"best": best}, epoch=1)
    save_best(tmp_path, _model(0), best)
    (tmp_path / ".best.json.tmp-1-abc").write_bytes(b"half")  # a save_best cut short
    for epoch in (2, 3):
        save_checkpoint(tmp_path, _model(epoch), {"best": best}, epoch=epoch)
    assert read_best(tmp_path) == best and not (tmp_path / ".best.json.tmp-1-abc").exists()
    assert {p.name for p in tmp_path.iterdir()} == {
        "model-3.safetensors", "state-3.pt", "checkpoint.json", "best-model.safetensors",
        "best.json"}
    assert remove_leftovers(tmp_path) == []
    # a crash after the checkpoint of epoch 3, whose state names epoch 3 the best, before its
    # save_best: the resume saves the checkpoint's weights as the best
    newer = {**best, "epoch": 3, "score": 0.7}
    restore_best(tmp_path, _model(3), newer, epoch=3)
    assert read_best(tmp_path) == newer
    weights = load_weights(tmp_path / "best-model.safetensors")
    assert all(torch.equal(weights[k], v) for k, v in _model(3).state_dict().items())
    restore_best(tmp_path, _model(9), newer, epoch=4)  # in agreement: nothing rewritten
    assert torch.equal(load_weights(tmp_path / "best-model.safetensors")["0.weight"],
                       weights["0.weight"])
    with pytest.raises(DcinetError, match="best.json does not record"):
        restore_best(tmp_path, _model(9), {**best, "epoch": 2}, epoch=4)
