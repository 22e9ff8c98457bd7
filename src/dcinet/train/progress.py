"""An epoch's running loss sums, kept on the training device, and what is shown of them.

A step adds its detached losses to device tensors (no copy to the host). Every ``log_every``
steps, and after the epoch's last, the sums come to the host once: they are checked finite (on
every rank: a non-finite loss anywhere stops every rank at the same step), and the mean loss of
the steps since the previous check is shown: as the postfix of a tqdm bar inside the epoch on a
terminal, otherwise as one line ``epoch E/N step S/T loss X``. So a CUDA step never waits for
the GPU, and a NaN or inf loss is caught at most ``log_every`` steps after it appears.
"""

from __future__ import annotations

import math
import sys

import torch

from dcinet.distributed import DistInfo, any_rank, mean_across_ranks
from dcinet.errors import DcinetError


class EpochProgress:
    """The loss sums of one epoch of ``batches`` steps on this rank.

    Args:
        epoch, epochs: this epoch (0-based) and the run's number of epochs, for the messages.
        log_every: steps between checks (and lines).
        progress: show anything at all (rank 0 only); a bar when stderr is a terminal.
    """

    def __init__(self, dist: DistInfo, epoch: int, epochs: int, batches: int, log_every: int,
                 progress: bool):
        self.dist, self.epoch, self.epochs = dist, epoch, epochs
        self.batches, self.log_every = batches, log_every
        self.sums: dict[str, torch.Tensor] = {}  # float64 scalars on the training device
        self.last = (0, 0.0)  # steps and loss sum at the last check
        self.lines = progress and dist.is_main
        self.bar = None
        if self.lines and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=batches, desc=f"epoch {epoch + 1}/{epochs}", leave=False)

    def add(self, out: dict, done: int) -> None:
        """Add step ``done``'s (1-based) ``{"loss": L, "parts": {...}}`` (scalar tensors) to the
        sums; at a check, bring them to the host.

        Raises:
            DcinetError: the sums are no longer finite on some rank (every rank raises).
        """
        for key, value in {"loss": out["loss"], **out["parts"]}.items():
            value = value.detach().double()
            self.sums[key] = self.sums[key] + value if key in self.sums else value
        if self.bar is not None:
            self.bar.update(1)
        if done % self.log_every == 0 or done == self.batches:
            self._check(done)

    def _check(self, done: int) -> None:
        """The one host copy of ``log_every`` steps: finiteness on every rank, then the line."""
        keys = list(self.sums)
        host = dict(zip(keys, torch.stack([self.sums[k] for k in keys]).tolist(), strict=True))
        bad = [k for k, v in host.items() if not math.isfinite(v)]
        if any_rank(bool(bad), self.dist):
            value = host["loss"] if bad else "non-finite on another rank"
            self.close()
            raise DcinetError(
                f"training stopped: the loss became {value} at epoch {self.epoch + 1}, in steps "
                f"{self.last[0] + 1}-{done}; the last good checkpoint is kept (lower lr or check "
                "the data)")
        steps, before = self.last
        recent = (host["loss"] - before) / (done - steps)
        self.last = (done, host["loss"])
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{recent:.3f}")
        elif self.lines:
            print(f"epoch {self.epoch + 1}/{self.epochs} step {done}/{self.batches} loss "
                  f"{recent:.4f}", flush=True)

    def close(self) -> None:
        """Remove the bar (if any)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def means(self) -> dict[str, float]:
        """The epoch's mean of ``loss`` and of every part, averaged over the ranks (call after
        the last step, whose check brought the sums to the host)."""
        self.close()
        if not self.sums:
            return {}
        keys = list(self.sums)
        host = torch.stack([self.sums[k] for k in keys]).tolist()
        means = {k: v / max(self.batches, 1) for k, v in zip(keys, host, strict=True)}
        return mean_across_ranks(means, self.dist)
