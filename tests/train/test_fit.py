"""The training loop on a tiny built-in dataset: outputs, exact resume, refusals, NaN guard."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dcinet.app.cli import main
from dcinet.config import load_config
from dcinet.errors import DcinetError
from dcinet.rundir import read_metrics, read_pointer
from dcinet.train.checkpoint import load_checkpoint
from dcinet.train.loop import fit


@pytest.fixture
def cfg(tiny_overrides):
    def make(*extra: str):
        return load_config("cpu-tiny", [*tiny_overrides, *extra])

    return make


def test_one_epoch_cpu_tiny_run_writes_everything(tiny_builtin: Path, tmp_path: Path, cfg,
                                                  tiny_overrides):
    run = tmp_path / "run"
    code = main(["train", "--config", "cpu-tiny", "--data", str(tiny_builtin), "--out", str(run),
                 "--quiet", *tiny_overrides])
    assert code == 0
    rows = read_metrics(run)
    assert [r["epoch"] for r in rows] == [1]
    assert {"loss", "l_img", "l_aud", "l_txt", "l_dual", "lr"} <= set(rows[0])
    assert abs(rows[0]["loss"] - (rows[0]["l_img"] + rows[0]["l_aud"] + rows[0]["l_txt"]
                                  + rows[0]["l_dual"])) < 1e-3
    assert (run / "losses.png").stat().st_size > 1000
    assert load_config(str(run / "config.yaml")) == cfg()
    assert read_pointer(run)["epoch"] == 1


def test_resume_is_bit_identical_to_uninterrupted(tiny_builtin: Path, tmp_path: Path, cfg,
                                                  monkeypatch):
    straight = fit(cfg("epochs=2"), tiny_builtin, tmp_path / "a", progress=False)

    import dcinet.train.loop

    save = dcinet.train.loop.save_checkpoint

    def crash_after_first_epoch(run_dir, model, state, epoch):
        save(run_dir, model, state, epoch)
        raise KeyboardInterrupt("simulated crash after epoch 1")

    monkeypatch.setattr(dcinet.train.loop, "save_checkpoint", crash_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        fit(cfg("epochs=2"), tiny_builtin, tmp_path / "b", progress=False)
    monkeypatch.undo()
    assert read_pointer(tmp_path / "b")["epoch"] == 1
    resumed = fit(cfg("epochs=2"), tiny_builtin, tmp_path / "b", resume=True, progress=False)
    a, _ = load_checkpoint(tmp_path / "a")
    b, _ = load_checkpoint(tmp_path / "b")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [r["loss"] for r in straight.history] == pytest.approx([r["loss"] for r in resumed.history])


def test_raising_epochs_extends_a_finished_run(tiny_builtin: Path, tmp_path: Path, cfg):
    fit(cfg("epochs=1"), tiny_builtin, tmp_path / "run", progress=False)
    extended = fit(cfg("epochs=2"), tiny_builtin, tmp_path / "run", resume=True, progress=False)
    assert [r["epoch"] for r in extended.history] == [1, 2]
    assert read_pointer(tmp_path / "run")["epoch"] == 2
    assert load_config(str(tmp_path / "run" / "config.yaml")).epochs == 2


def test_resume_refuses_other_config_or_data(tiny_builtin: Path, tmp_path: Path, cfg):
    from dcinet.sources.synth import synthesize

    run = tmp_path / "run"
    fit(cfg(), tiny_builtin, run, progress=False)
    with pytest.raises(DcinetError, match="already holds a run"):
        fit(cfg(), tiny_builtin, run, progress=False)
    with pytest.raises(DcinetError, match="configuration differs.*lr"):
        fit(cfg("lr=0.5"), tiny_builtin, run, resume=True, progress=False)
    other = tmp_path / "other"
    synthesize(other, classes=4, per_class=8, seed=1, image_size=64, progress=False)
    with pytest.raises(DcinetError, match="different data"):
        fit(cfg(), other, run, resume=True, progress=False)
    assert main(["train", "--data", str(tiny_builtin), "--out", str(run), "--resume", "--quiet",
                 "lr=0.5"]) == 2


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny_builtin: Path, tmp_path: Path,
                                                      monkeypatch, cfg):
    from dcinet.models import DCINet

    run = tmp_path / "run"
    fit(cfg(), tiny_builtin, run, progress=False)
    good, _ = load_checkpoint(run)
    forward = DCINet.forward

    def poisoned(self, inputs, labels):
        out = forward(self, inputs, labels)
        return {**out, "loss": out["loss"] * float("nan")}

    monkeypatch.setattr(DCINet, "forward", poisoned)
    with pytest.raises(DcinetError, match="loss became nan"):
        fit(cfg("epochs=2"), tiny_builtin, run, resume=True, progress=False)
    assert read_pointer(run)["epoch"] == 1
    kept, _ = load_checkpoint(run)
    assert all(torch.equal(good[k], kept[k]) for k in good)
