"""The epoch's losses stay on the device: one host copy per ``log_every`` steps (none per step),
the NaN guard at those copies, the lines (or the bar on a terminal) that show them."""

from __future__ import annotations

import io
import math
import sys

import pytest
import torch

from dcinet.config import Config
from dcinet.distributed import DistInfo
from dcinet.errors import DcinetError
from dcinet.train.loop import Trainer, train_one_epoch

HOST_COPIES = {"item", "tolist", "cpu", "numpy", "__bool__", "__float__", "__int__", "__format__"}


class Watched(torch.Tensor):
    """A tensor that records every conversion to a host value made of it or of what is computed
    from it (on CUDA each one waits for the GPU)."""

    copies: list[str] = []

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in HOST_COPIES:
            cls.copies.append(name)
        return super().__torch_function__(func, types, args, kwargs or {})


class Stub(torch.nn.Module):
    """A model whose step ``n`` (1-based) has loss ``losses[n - 1] * w`` (``w`` = 1 at first) and
    the parts ``l_a`` = loss / 4, ``l_b`` = 3 loss / 4, all watched."""

    def __init__(self, losses: list[float]):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))
        self.losses, self.step = losses, 0

    def forward(self, inputs, labels):
        value = self.losses[self.step] * self.w * inputs["image"].mean() / inputs["image"].mean()
        self.step += 1
        loss = value.as_subclass(Watched)
        return {"loss": loss, "parts": {"l_a": loss / 4, "l_b": loss * 3 / 4}}


def _epoch(losses: list[float], log_every: int, progress: bool = False) -> dict[str, float]:
    model = Stub(losses)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # the losses stay as given
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: 1.0)
    trainer = Trainer(model, optimizer, scheduler, torch.amp.GradScaler("cuda", enabled=False))
    loader = [{"inputs": {"image": torch.ones(2, 3, 4, 4)}, "labels": {"image": torch.zeros(2)}}
              for _ in losses]
    cfg = Config(log_every=log_every, epochs=1, channels_last=False)
    return train_one_epoch(model, loader, trainer, cfg, DistInfo(), 0, progress)


@pytest.mark.parametrize("steps, log_every", [(12, 4), (12, 5), (12, 1)])
def test_one_host_copy_per_log_every_steps(steps, log_every):
    Watched.copies = []
    losses = [float(n) for n in range(1, steps + 1)]
    means = _epoch(losses, log_every)
    assert means == pytest.approx({"loss": 6.5, "l_a": 6.5 / 4, "l_b": 6.5 * 3 / 4})
    checks = math.ceil(steps / log_every)  # every log_every steps and after the last
    assert Watched.copies == ["tolist"] * (checks + 1)  # + the epoch's means


def test_a_nan_loss_stops_the_epoch_at_the_next_check():
    losses = [1.0] * 12
    losses[5] = float("nan")  # step 6
    with pytest.raises(DcinetError, match=r"loss became nan at epoch 1, in steps 5-8; the last good"):
        _epoch(losses, log_every=4)


def test_a_line_every_log_every_steps_with_the_recent_mean(capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    _epoch([float(n) for n in range(1, 11)], log_every=4, progress=True)
    assert capsys.readouterr().out.splitlines() == [
        "epoch 1/1 step 4/10 loss 2.5000",   # mean of 1..4
        "epoch 1/1 step 8/10 loss 6.5000",   # mean of 5..8
        "epoch 1/1 step 10/10 loss 9.5000",  # mean of 9, 10
    ]


def test_a_bar_inside_the_epoch_on_a_terminal(capsys, monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    _epoch([1.0] * 6, log_every=3, progress=True)
    assert capsys.readouterr().out == ""  # no lines
    shown = terminal.getvalue()
    assert "epoch 1/1" in shown and "6/6" in shown and "loss=1.000" in shown
