"""The training loop on a tiny built-in dataset: outputs, exact resume, refusals, NaN guard."""

from __future__ import annotations

import json
import math
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
                                                  crash_after_first_epoch):
    straight = fit(cfg("epochs=2"), tiny_builtin, tmp_path / "a", progress=False)

    crash_after_first_epoch(fit, cfg("epochs=2"), tiny_builtin, tmp_path / "b", progress=False)
    assert read_pointer(tmp_path / "b")["epoch"] == 1
    resumed = fit(cfg("epochs=2"), tiny_builtin, tmp_path / "b", resume=True, progress=False)
    a, state_a = load_checkpoint(tmp_path / "a")
    b, state_b = load_checkpoint(tmp_path / "b")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the resumed run reads epoch 1's row back from metrics.csv, which keeps 6 significant digits
    assert [r["loss"] for r in straight.history] == pytest.approx([r["loss"] for r in resumed.history],
                                                                 rel=1e-5)
    # the counts of the maps CMSI / CMCI changed continue from the checkpoint: the same totals
    assert state_b["fired"] == state_a["fired"] and state_a["fired"]["epochs"] == 2
    fired = [json.loads((tmp_path / r / "run.json").read_text())["interactions_fired"] for r in "ab"]
    assert fired[0] == fired[1] and fired[0]["epochs"] == 2
    assert fired[0]["cmsi"]["image"]["maps"] > 0 and fired[0]["cmci"]["text"]["maps"] > 0


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


def test_extending_a_cosine_run_replans_the_schedule(tiny_builtin: Path, tmp_path: Path, cfg):
    base = cfg("epochs=2", "scheduler=cosine")
    fit(base, tiny_builtin, tmp_path / "run", progress=False)
    extended = fit(cfg("epochs=4", "scheduler=cosine"), tiny_builtin, tmp_path / "run",
                   resume=True, progress=False)
    lrs = [r["lr"] for r in extended.history]
    assert lrs[:2] == pytest.approx([base.lr, base.lr * 0.5 * (1 + math.cos(math.pi / 2))])
    # epochs 3 and 4 follow the 4-epoch plan from epoch 3 on: never the old plan's climb from 0
    assert lrs[2:] == pytest.approx([base.lr * 0.5 * (1 + math.cos(math.pi * e / 4))
                                     for e in (2, 3)])


@pytest.mark.parametrize("scheduler, factors", [
    ("cosine", [1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 + math.cos(3 * math.pi / 4)),
                0.0, 0.0]),
    ("step", [1.0, 1.0, 0.1, 0.1, 0.01, 0.01]),
    ("none", [1.0] * 6),
])
def test_lr_factor(scheduler: str, factors: list[float]):
    from dcinet.train.loop import lr_factor

    plan = lr_factor(load_config("cpu-tiny", [f"scheduler={scheduler}", "epochs=4",
                                              "step_size=2"]))
    assert [plan(e) for e in range(6)] == pytest.approx(factors)


class _Scaler:
    def __init__(self, enabled: bool):
        self.enabled, self.loaded = enabled, None

    def is_enabled(self) -> bool:
        return self.enabled

    def load_state_dict(self, state: dict) -> None:
        if not state:
            raise RuntimeError("The source state dict is empty")  # what torch's GradScaler does
        self.loaded = state


@pytest.mark.parametrize("enabled, saved, loads", [
    (True, {}, False),                  # a CPU run resumed on CUDA: start a fresh scaler
    (True, {"scale": 1024.0}, True),    # CUDA to CUDA
    (False, {"scale": 1024.0}, False),  # a CUDA run resumed on the CPU: no scaler there
    (False, {}, False),
])
def test_scaler_state_across_devices(enabled: bool, saved: dict, loads: bool):
    from dcinet.train.loop import load_scaler_state

    scaler = _Scaler(enabled)
    load_scaler_state(scaler, saved)
    assert (scaler.loaded is not None) == loads


def test_checkpoint_states_load_on_the_cpu_whatever_the_default_device(tmp_path: Path):
    """Resume on CUDA crashed when the state file was read with the GPU as map_location (the RNG
    states must be CPU tensors): states are always read onto the CPU now."""
    from dcinet.rundir import load_state
    from dcinet.train.checkpoint import rng_state, set_rng_state

    torch.manual_seed(3)
    torch.save(rng_state(), tmp_path / "s.pt")
    expected = torch.rand(4)
    with torch.device("meta"):  # as if the process's default device were not the CPU
        loaded = load_state(tmp_path / "s.pt")
    assert loaded["torch"].device.type == "cpu"
    assert loaded["numpy"]["keys"].device.type == "cpu"
    set_rng_state(loaded)
    assert torch.equal(torch.rand(4), expected)
