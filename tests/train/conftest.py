"""Fixtures of the training tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def crash_after_first_epoch(monkeypatch):
    """``crash_after_first_epoch(fit, *args, **kwargs)`` runs ``fit`` with checkpoint saving
    patched to raise KeyboardInterrupt right after epoch 1's checkpoint is written (a simulated
    crash), checks that it did, then undoes the test's monkeypatches."""
    import dcinet.train.loop

    save = dcinet.train.loop.save_checkpoint

    def crash(run_dir, model, state, epoch):
        save(run_dir, model, state, epoch)
        raise KeyboardInterrupt("simulated crash after epoch 1")

    def run(fit, *args, **kwargs):
        monkeypatch.setattr(dcinet.train.loop, "save_checkpoint", crash)
        with pytest.raises(KeyboardInterrupt):
            fit(*args, **kwargs)
        monkeypatch.undo()

    return run
