"""Atomic, pickle-free checkpoints.

A run directory holds, per saved epoch ``E``:

* ``model-E.safetensors`` — the model weights (safetensors: no code runs on load);
* ``state-E.pt`` — optimizer, scheduler, AMP scaler, epoch and RNG states, saved with
  :func:`torch.save` and loaded with ``weights_only=True`` (tensors and plain containers only);
* ``checkpoint.json`` — the pointer to the latest complete pair, replaced atomically (write to a
  temporary file, then :func:`os.replace`).

Every file is flushed to disk (``fsync``) before the pointer names it. A crash (even ``kill -9``)
while writing leaves the previous pointer, and so the previous checkpoint, intact; what it leaves
behind (temporary files, a pair the pointer never named, an older pair not yet deleted) is removed
by the next successful save, once the pointer has moved.
"""

from __future__ import annotations

import json
import os
import pickle
import random
import re
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from dcinet.errors import DcinetError
from dcinet.files import atomic_write_bytes

POINTER = "checkpoint.json"
CHECKPOINT_FILE = re.compile(r"(model-\d+\.safetensors|state-\d+\.pt)")
TEMP_FILE = re.compile(r"\.(model-\d+\.safetensors|state-\d+\.pt|checkpoint\.json)\.tmp-\d+(-\w+)?")
"""Names of the checkpoint files and of their temporary files (``.<name>.tmp-<pid>``, or
``.<name>.tmp-<pid>-<random>`` from :func:`~dcinet.files.atomic_write_bytes`)."""


def rng_state() -> dict:
    """Python, NumPy, torch (and CUDA) RNG states as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                  "has_gauss": has_gauss, "gauss": gauss},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore the states returned by :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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
    run_dir.mkdir(parents=True, exist_ok=True)
    weights = run_dir / f"model-{epoch}.safetensors"
    state_file = run_dir / f"state-{epoch}.pt"
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp_weights = weights.with_name(f".{weights.name}.tmp-{os.getpid()}")
    save_file(tensors, str(tmp_weights), metadata={"epoch": str(epoch)})
    _fsync(tmp_weights)
    os.replace(tmp_weights, weights)
    tmp_state = state_file.with_name(f".{state_file.name}.tmp-{os.getpid()}")
    torch.save({**state, "epoch": epoch}, tmp_state)
    _fsync(tmp_state)
    os.replace(tmp_state, state_file)
    pointer = {"epoch": epoch, "weights": weights.name, "state": state_file.name}
    atomic_write_bytes(run_dir / POINTER, json.dumps(pointer, indent=1).encode())
    if hasattr(os, "O_DIRECTORY"):  # POSIX: make the renames themselves durable
        _fsync(run_dir)
    remove_leftovers(run_dir)
    return weights


def _fsync(path: Path) -> None:
    """Flush a file's (or a directory's entries') data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_leftovers(run_dir: Path) -> list[Path]:
    """Delete checkpoint files the pointer does not name and checkpoint temporary files (what an
    interrupted save leaves behind); returns the deleted paths. Call only with the pointer in
    place and no save running."""
    pointer = read_pointer(run_dir)
    keep = {pointer["weights"], pointer["state"]}
    removed = []
    for path in run_dir.iterdir():
        stale = CHECKPOINT_FILE.fullmatch(path.name) and path.name not in keep
        if stale or TEMP_FILE.fullmatch(path.name):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def read_pointer(run_dir: Path) -> dict:
    """The latest checkpoint's pointer (``epoch``, ``weights``, ``state`` file names)."""
    path = run_dir / POINTER
    try:
        pointer = json.loads(path.read_text())
        int(pointer["epoch"]), str(pointer["weights"]), str(pointer["state"])
    except FileNotFoundError:
        raise DcinetError(f"no checkpoint in {run_dir} (missing {POINTER})") from None
    except (ValueError, KeyError, TypeError):
        raise DcinetError(f"checkpoint pointer {path} is corrupt") from None
    return pointer


def load_weights(path: Path, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """Load a weights file without executing code.

    ``.safetensors`` files are read with safetensors; anything else must be a plain state dict
    readable by ``torch.load(weights_only=True)`` (a pickle that tries to run code is refused).
    """
    path = Path(path)
    if not path.exists():
        raise DcinetError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path), device=str(map_location))
        except (SafetensorError, OSError, ValueError) as exc:
            raise DcinetError(f"weights file {path} is not a valid safetensors file: {exc}") from None
    return load_state(path, map_location)


def load_state(path: Path, map_location: str | torch.device = "cpu") -> dict:
    """``torch.load(weights_only=True)`` with a clear error for unsafe or corrupt files."""
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise DcinetError(
            f"refusing to load {path}: it is not a plain tensor/state file "
            f"(loading it would execute pickled code): {str(exc).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise DcinetError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise DcinetError(f"{path} does not hold a dictionary of tensors")
    return data


def load_checkpoint(run_dir: Path, map_location: str | torch.device = "cpu") -> tuple[dict, dict]:
    """The latest checkpoint of a run: ``(weights, state)``."""
    pointer = read_pointer(run_dir)
    weights = load_weights(run_dir / pointer["weights"], map_location)
    state = load_state(run_dir / pointer["state"], map_location)
    return weights, state
