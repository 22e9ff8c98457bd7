"""Load a trained model from a run directory or one of its checkpoint files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from dcinet.config import Config
from dcinet.errors import DcinetError
from dcinet.train.checkpoint import load_weights, read_pointer
from dcinet.train.runs import read_run


@dataclass
class TrainedModel:
    """A model in eval mode with what it was trained with.

    Attributes:
        model: the DCINet (CCRN + text module), ``eval()`` mode.
        cfg: the run's resolved config.
        classes: class names (``classes[label]``).
        modalities: modalities it was trained on, canonical order.
        run_dir: the run directory.
        weights: the weights file that was loaded.
    """

    model: torch.nn.Module
    cfg: Config
    classes: list[str]
    modalities: list[str]
    run_dir: Path
    weights: Path
    info: dict


def load_trained(path: Path, device: str | torch.device = "cpu") -> TrainedModel:
    """Load ``RUN_DIR`` (its latest checkpoint) or ``RUN_DIR/model-E.safetensors``."""
    from dcinet.models import build_model

    path = Path(path)
    if not path.exists():
        raise DcinetError(f"no such run directory or checkpoint: {path}")
    if path.is_dir():
        run_dir, weights_path = path, path / read_pointer(path)["weights"]
    else:
        run_dir, weights_path = path.parent, path
    cfg, info = read_run(run_dir)
    cfg.pretrained = None  # the checkpoint already holds every weight
    model = build_model(cfg, len(info["classes"]), info["modalities"])
    weights = load_weights(weights_path)
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise DcinetError(f"{weights_path} does not match the model of {run_dir}: "
                          f"{str(exc).splitlines()[0]}") from None
    model.to(device).eval()
    return TrainedModel(model, cfg, info["classes"], info["modalities"], run_dir, weights_path, info)
