"""The lr warmup (``warmup_epochs``): a linear climb, step by step, that a resumed run repeats."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import dcinet.train.loop
from dcinet.config import load_config
from dcinet.rundir import read_metrics
from dcinet.train.checkpoint import load_checkpoint
from dcinet.train.loop import fit


@pytest.fixture
def step_lrs(monkeypatch) -> list[float]:
    """The lr of every optimizer step of the runs that follow (first parameter group)."""
    seen: list[float] = []
    make = dcinet.train.loop.make_optimizer

    def recording(cfg, model):
        optimizer, scheduler = make(cfg, model)
        optimizer.register_step_pre_hook(lambda opt, *_: seen.append(opt.param_groups[0]["lr"]))
        return optimizer, scheduler

    monkeypatch.setattr(dcinet.train.loop, "make_optimizer", recording)
    return seen


def test_lr_climbs_over_the_warmup_steps_then_follows_the_schedule(tiny_builtin: Path,
                                                                   tmp_path: Path, tiny_overrides,
                                                                   step_lrs):
    cfg = load_config("cpu-tiny", [*tiny_overrides, "epochs=3", "warmup_epochs=2",
                                   "scheduler=cosine"])
    fit(cfg, tiny_builtin, tmp_path / "run", progress=False)
    steps = len(step_lrs) // 3
    cosine = [0.5 * (1 + math.cos(math.pi * e / 3)) for e in range(3)]
    warm = [cfg.lr * cosine[k // steps] * (k + 1) / (2 * steps) for k in range(2 * steps)]
    assert steps >= 2 and step_lrs == pytest.approx(warm + [cfg.lr * cosine[2]] * steps)
    assert [r["lr"] for r in read_metrics(tmp_path / "run")] == pytest.approx(
        [cfg.lr * cosine[0] / 2, cfg.lr * cosine[1], cfg.lr * cosine[2]])  # at each epoch's end


def test_resume_inside_the_warmup_is_bit_identical(tiny_builtin: Path, tmp_path: Path,
                                                   tiny_overrides):
    cfg = load_config("cpu-tiny", [*tiny_overrides, "epochs=2", "warmup_epochs=2"])
    fit(cfg, tiny_builtin, tmp_path / "a", progress=False)
    fit(load_config("cpu-tiny", [*tiny_overrides, "epochs=1", "warmup_epochs=2"]), tiny_builtin,
        tmp_path / "b", progress=False)
    fit(cfg, tiny_builtin, tmp_path / "b", resume=True, progress=False)
    a, _ = load_checkpoint(tmp_path / "a")
    b, _ = load_checkpoint(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
