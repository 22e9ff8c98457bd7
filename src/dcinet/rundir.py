"""What a run directory holds, and how to read it (the runner, :mod:`dcinet.train`, writes it).

A run directory holds:

* ``config.yaml``: the resolved :class:`~dcinet.config.Config`;
* ``run.json``: classes, modalities, dataset fingerprint, data root, what the data checks dropped,
  the validation items (``validation``: :func:`~dcinet.data.splits.hold_out_validation`) and,
  from the first epoch on, how often CMSI and CMCI changed a map, per modality
  (``interactions_fired``: :func:`~dcinet.train.fired.fired_record`);
* ``metrics.csv`` and ``losses.png``: one row / point per epoch (``val_*`` columns and ``val.png``
  on the epochs that validated);
* per saved epoch ``E``: ``model-E.safetensors`` (weights, the EMA's in a run with ``ema_decay``;
  no code runs on load) and ``state-E.pt`` (optimizer, scheduler, AMP scaler, epoch and RNG
  states, and with an EMA the trained weights as ``training_weights``, read with
  ``weights_only=True``);
* ``checkpoint.json``: the pointer to the latest complete pair;
* ``best-model.safetensors`` and ``best.json`` (its epoch, validation score and mAPs) in runs that
  validate: the weights of the best validation score so far, kept beside the latest pair;
* ``skipped.txt`` for ``--skip-bad`` runs.

Everything here only reads, so that the library (:func:`dcinet.models.factory.load_trained`,
evaluation, search) can load a run without importing the training loop.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from dcinet.config import Config, load_config
from dcinet.errors import DcinetError

CONFIG_FILE = "config.yaml"
RUN_FILE = "run.json"
METRICS_FILE = "metrics.csv"
POINTER = "checkpoint.json"
BEST_WEIGHTS = "best-model.safetensors"
BEST_FILE = "best.json"
CHECKPOINTS = ("last", "best")
"""The checkpoints a run directory names (``--checkpoint``): its latest one, its best one."""


def read_run(run_dir: Path) -> tuple[Config, dict]:
    """The saved config and run info of a run directory."""
    if not (run_dir / RUN_FILE).exists() or not (run_dir / CONFIG_FILE).exists():
        raise DcinetError(f"{run_dir} is not a dcinet run directory (no {RUN_FILE} / {CONFIG_FILE})")
    try:
        info = json.loads((run_dir / RUN_FILE).read_text())
    except ValueError:
        raise DcinetError(f"{run_dir / RUN_FILE} is corrupt") from None
    return load_config(str(run_dir / CONFIG_FILE)), info


def read_metrics(run_dir: Path) -> list[dict]:
    """The rows of ``metrics.csv`` (numbers as floats, ``epoch`` as int); [] when absent."""
    path = run_dir / METRICS_FILE
    if not path.exists():
        return []
    header, *body = path.read_text().splitlines()
    keys = header.split(",")
    rows = []
    for line in body:
        row = {k: float(v) for k, v in zip(keys, line.split(","), strict=True) if v != ""}
        row["epoch"] = int(row["epoch"])
        rows.append(row)
    return rows


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


def read_best(run_dir: Path) -> dict | None:
    """``best.json``: ``epoch``, ``score`` (what selects it, ``metric``), the validation mAPs and
    the ``weights`` file name; None when the run has no best checkpoint."""
    path = run_dir / BEST_FILE
    try:
        best = json.loads(path.read_text())
        int(best["epoch"]), float(best["score"]), str(best["weights"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        raise DcinetError(f"best checkpoint record {path} is corrupt") from None
    return best


def resolve_checkpoint(run_dir: Path, which: str = "last") -> Path:
    """The weights file ``which`` names in ``run_dir``: ``last`` (the pointer's), ``best``
    (``best.json``'s) or a file (as given when it exists, else inside ``run_dir``).

    Raises:
        DcinetError: no checkpoint, no best checkpoint (the run did not validate), or no such file.
    """
    if which == "last":
        return run_dir / read_pointer(run_dir)["weights"]
    if which == "best":
        best = read_best(run_dir)
        if best is None:
            raise DcinetError(f"{run_dir} has no best checkpoint (no {BEST_FILE}): the run did not "
                              f"validate (val_fraction or a val split, and val_every > 0)")
        return run_dir / best["weights"]
    path = Path(which)
    if not path.is_file():
        path = run_dir / which
    if not path.is_file():
        raise DcinetError(f"checkpoint not found: {which} (nor {path}); use last, best or a file")
    return path


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
