"""Atomic, pickle-free checkpoints (the files are described in :mod:`dcinet.rundir`).

Every file is written through :func:`~dcinet.files.atomic_write_bytes` (a temporary file, flushed
to disk, then renamed), and the pointer ``checkpoint.json`` moves only once the weights and the
state of its epoch are complete. A crash (even ``kill -9``) while writing leaves the previous
pointer, and so the previous checkpoint, intact; what it leaves behind (temporary files, a pair
the pointer never named, an older pair not yet deleted) is removed by the next successful save,
once the pointer has moved.

A run that validates also keeps its best weights, ``best-model.safetensors`` with ``best.json``
(:func:`save_best`), written after the checkpoint of their epoch, whose state records the same
best (``state["best"]``); :func:`restore_best` repairs the pair on resume when a crash came in
between. :func:`remove_leftovers` never deletes them.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save

from dcinet.errors import DcinetError
from dcinet.files import atomic_write_bytes
from dcinet.rundir import (
    BEST_FILE,
    BEST_WEIGHTS,
    POINTER,
    load_state,
    load_weights,
    read_best,
    read_pointer,
)

CHECKPOINT_FILE = re.compile(r"(model-\d+\.safetensors|state-\d+\.pt)")
TEMP_FILE = re.compile(r"\.(model-\d+\.safetensors|state-\d+\.pt|checkpoint\.json"
                       r"|best-model\.safetensors|best\.json)\.tmp-\d+(-\w+)?")
"""Names of the checkpoint files and of their temporary files: ``.<name>.tmp-<pid>-<random>``
from :func:`~dcinet.files.atomic_write_bytes`, or ``.<name>.tmp-<pid>`` as earlier versions
named them."""


def rng_state() -> dict:
    """Python, NumPy, torch (and CUDA) RNG states as CPU tensors and plain values.

    The CUDA generators are saved only once this process has initialised CUDA: a CPU run on a
    machine with GPUs never touches them (reading them would create a CUDA context on GPU 0)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                  "has_gauss": has_gauss, "gauss": gauss},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_initialized():
        state["cuda"] = [s.cpu() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    """Restore the states returned by :func:`rng_state`.

    The tensors may have been loaded onto any device (a state file read with a CUDA
    ``map_location``): they are brought back to the CPU, where the RNG states live. A CUDA state
    saved on another machine is restored for the devices both machines have; a CPU run resumed on
    a GPU starts the CUDA generators from their seeds.
    """
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    keys = torch.as_tensor(n["keys"]).cpu().numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(torch.as_tensor(state["torch"]).cpu().to(torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        saved = [torch.as_tensor(s).cpu().to(torch.uint8) for s in state["cuda"]]
        for device, s in enumerate(saved[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(s, device)


def load_scaler_state(scaler: torch.amp.GradScaler, saved: dict) -> None:
    """Restore an AMP scaler across devices: a CPU run saves an empty state (its scaler is
    disabled), which a CUDA run's scaler does not load (it starts fresh); a CUDA run's state is
    ignored by a disabled (CPU) scaler."""
    if scaler.is_enabled() and saved:
        scaler.load_state_dict(saved)


def save_checkpoint(run_dir: Path, model: torch.nn.Module, state: dict, epoch: int) -> Path:
    """Save weights and ``state`` for ``epoch`` and move the pointer to them.

    Args:
        run_dir: the run directory.
        model: the unwrapped model (not the DDP wrapper).
        state: plain data (optimizer/scheduler state dicts, RNG states, config dict, ...).
        epoch: number of completed epochs.
    Returns:
        The path of the weights file.
    """
    weights = run_dir / f"model-{epoch}.safetensors"
    state_file = run_dir / f"state-{epoch}.pt"
    atomic_write_bytes(weights, _weights_bytes(model, epoch))
    buffer = io.BytesIO()
    torch.save({**state, "epoch": epoch}, buffer)
    atomic_write_bytes(state_file, buffer.getvalue())
    pointer = {"epoch": epoch, "weights": weights.name, "state": state_file.name}
    atomic_write_bytes(run_dir / POINTER, json.dumps(pointer, indent=1).encode())
    if hasattr(os, "O_DIRECTORY"):  # POSIX: make the renames themselves durable
        fd = os.open(run_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    remove_leftovers(run_dir)
    return weights


def _weights_bytes(model: torch.nn.Module, epoch: int) -> bytes:
    """The safetensors bytes of ``model``'s weights (on the CPU), ``epoch`` in the metadata."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    return save(tensors, metadata={"epoch": str(epoch)})


def save_best(run_dir: Path, model: torch.nn.Module, best: dict) -> None:
    """Write ``model`` as the run's best weights, then ``best`` as ``best.json``.

    Args:
        model: the unwrapped model, holding the weights of epoch ``best["epoch"]``.
        best: ``epoch``, ``score``, ``metric``, the validation mAPs and ``weights``
            (:data:`~dcinet.rundir.BEST_WEIGHTS`); plain JSON data.
    """
    atomic_write_bytes(run_dir / BEST_WEIGHTS, _weights_bytes(model, int(best["epoch"])))
    atomic_write_bytes(run_dir / BEST_FILE, json.dumps(best, indent=1).encode())


def restore_best(run_dir: Path, model: torch.nn.Module, best: dict | None, epoch: int) -> None:
    """Make the best files agree with ``best``, the best the checkpoint of ``epoch`` records.

    A crash after that checkpoint and before its :func:`save_best` leaves an older ``best.json``;
    the best is then epoch ``epoch`` itself, whose weights ``model`` holds, and it is saved again.

    Raises:
        DcinetError: ``best.json`` names another best and the checkpoint cannot restore it (the
            files were changed by hand).
    """
    if best is None or read_best(run_dir) == best:
        return
    if int(best["epoch"]) != epoch:
        raise DcinetError(f"{run_dir / BEST_FILE} does not record the best checkpoint this run "
                          f"recorded (epoch {best['epoch']}, score {best['score']:.6g})")
    save_best(run_dir, model, best)


def remove_leftovers(run_dir: Path) -> list[Path]:
    """Delete checkpoint files the pointer does not name and checkpoint temporary files (what an
    interrupted save leaves behind); returns the deleted paths. The best weights and
    ``best.json`` are kept. Call only with the pointer in place and no save running."""
    pointer = read_pointer(run_dir)
    keep = {pointer["weights"], pointer["state"]}
    removed = []
    for path in run_dir.iterdir():
        stale = CHECKPOINT_FILE.fullmatch(path.name) and path.name not in keep
        if stale or TEMP_FILE.fullmatch(path.name):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def load_checkpoint(run_dir: Path) -> tuple[dict, dict]:
    """The latest checkpoint of a run, ``(weights, state)``, on the CPU (RNG states must be CPU
    tensors; ``load_state_dict`` moves weights and optimizer state to the model's device)."""
    pointer = read_pointer(run_dir)
    return load_weights(run_dir / pointer["weights"]), load_state(run_dir / pointer["state"])
