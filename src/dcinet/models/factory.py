"""Build models: the one place that turns a config (and weights) into a network.

Models never read files. :func:`create_model` builds the network a :class:`~dcinet.config.Config`
describes, with the backbone's pretrained weights (``cfg.pretrained``) or a complete state dict
held in memory; :func:`load_trained` builds one from a run directory (see :mod:`dcinet.rundir`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from dcinet.config import Config
from dcinet.errors import DcinetError
from dcinet.models.ccrn import create_backbone
from dcinet.models.dcinet import DCINet
from dcinet.models.fgcrossnet import FGCrossNet
from dcinet.models.interaction import MixupSettings
from dcinet.models.minilm import load_minilm
from dcinet.models.pretrained import load_pretrained
from dcinet.models.probe import Probe
from dcinet.rundir import load_weights, read_run, resolve_checkpoint


def create_model(cfg: Config, num_classes: int, modalities: list[str],
                 state_dict: dict[str, torch.Tensor] | None = None) -> DCINet | FGCrossNet | Probe:
    """The model ``cfg`` describes, for ``num_classes`` classes and the training ``modalities``:
    :class:`DCINet` for ``method: dcinet``, :class:`FGCrossNet` for ``method: fgcrossnet``,
    :class:`~dcinet.models.probe.Probe` for ``method: probe``.

    The frozen all-MiniLM-L6-v2 (``text_embedding: minilm``, or the probe's text encoder) is
    loaded from its installed package (:func:`~dcinet.models.minilm.load_minilm`) whether or not
    ``state_dict`` is given: it is never part of a run's weights.

    Args:
        state_dict: every weight of the model (e.g. a checkpoint already in memory), loaded
            strictly; ``None`` = a new model, its backbone initialised from ``cfg.pretrained``
            when set (see :func:`~dcinet.models.pretrained.load_pretrained`).
    Raises:
        DcinetError: unknown backbone or method, pretrained weights of another architecture (or
            timm weights not obtainable offline), a state dict of another model, a CMSI map
            too small to cut a box from, or MiniLM needed and not installed.
    """
    from dcinet.data.text import VOCAB_SIZE

    net = None
    if state_dict is None and cfg.pretrained:
        net = create_backbone(cfg.backbone, num_classes, cfg.img_size)
        load_pretrained(net, cfg.pretrained)
    text = {"vocab_size": VOCAB_SIZE, "text_len": cfg.text_len, "img_size": cfg.img_size,
            "text_channels": cfg.text_channels, "text_embedding": cfg.text_embedding}
    if cfg.method == "probe":
        model: DCINet | FGCrossNet | Probe = _create_probe(cfg, num_classes, modalities, net)
    elif cfg.method == "fgcrossnet":
        model = FGCrossNet(
            num_classes, modalities, backbone=cfg.backbone, **text, w_center=cfg.w_center,
            w_quadruplet=cfg.w_quadruplet, margin1=cfg.quadruplet_margin1,
            margin2=cfg.quadruplet_margin2, net=net, ce_label_smoothing=cfg.ce_label_smoothing)
    elif cfg.method == "dcinet":
        model = DCINet(num_classes, modalities, backbone=cfg.backbone, layer=cfg.layer,
                       interaction=cfg.interaction, **text, mixup=MixupSettings.from_config(cfg),
                       cmci_mode=cfg.cmci_mode, w_modal=cfg.w_modal, w_dual=cfg.w_dual, net=net,
                       ce_label_smoothing=cfg.ce_label_smoothing)
        _check_cmsi_map(model, cfg)
    else:
        raise DcinetError(f"config key 'method' must be dcinet, fgcrossnet or probe, got {cfg.method!r}")
    if cfg.text_embedding == "minilm" and getattr(model, "text", None) is not None:
        model.text.encoder = load_minilm()
    if state_dict is not None:
        _load_exactly(model, state_dict, "the given state dict")
    if cfg.channels_last:  # 4-d weights NHWC: oneDNN's and cuDNN's faster kernels for most CNNs
        model.to(memory_format=torch.channels_last)
    return model


def _create_probe(cfg: Config, num_classes: int, modalities: list[str],
                  net: nn.Module | None) -> Probe:
    """The frozen-encoder baseline: ``net`` (the backbone with ``cfg.pretrained``'s weights; a new
    one when a state dict will fill it) without its classifier, MiniLM for text."""
    if any(m != "text" for m in modalities):
        net = net if net is not None else create_backbone(cfg.backbone, num_classes, cfg.img_size)
        net.reset_classifier(0)
    else:
        net = None
    text = load_minilm() if "text" in modalities else None
    return Probe(num_classes, modalities, net, text, cfg.img_size, cfg.ce_label_smoothing)


def _check_cmsi_map(model: nn.Module, cfg: Config) -> None:
    """CMSI cuts a box of 50-60 % of each side from the map after stage ``layer``: a map side
    below 2 leaves no box."""
    if model.cmsi is None:
        return
    _, h, w = model.ccrn.map_shape()
    if min(h, w) < 2:
        raise DcinetError(
            f"CMSI needs a map of at least 2x2 after layer {cfg.layer}, but {cfg.backbone} at "
            f"img_size={cfg.img_size} gives {h}x{w}; raise img_size or choose an earlier layer")


def _load_exactly(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str) -> None:
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as exc:
        raise DcinetError(f"{source} does not match the model: {str(exc).splitlines()[0]}") from None


@dataclass
class TrainedModel:
    """A model in eval mode with what it was trained with.

    Attributes:
        model: the DCINet (CCRN + text module), ``eval()`` mode.
        cfg: the run's resolved config.
        classes: class names (``classes[label]``).
        modalities: modalities it was trained on, canonical order.
        run_dir: the run directory; weights: the weights file that was loaded (both None for a
            model in training, being validated).
        info: the run's ``run.json``.
    """

    model: torch.nn.Module
    cfg: Config
    classes: list[str]
    modalities: list[str]
    run_dir: Path | None
    weights: Path | None
    info: dict


def load_trained(path: Path, device: str | torch.device = "cpu",
                 checkpoint: str = "last") -> TrainedModel:
    """Load ``RUN_DIR`` or ``RUN_DIR/<weights file>``, in eval mode.

    Args:
        checkpoint: of a run directory, ``last`` (its latest checkpoint), ``best`` (its best
            validation score) or a weights file (:func:`~dcinet.rundir.resolve_checkpoint`).
    Raises:
        DcinetError: no such run or file, no best checkpoint, a ``checkpoint`` with a weights
            file, or weights that do not fit the run's model.
    """
    path = Path(path)
    if not path.exists():
        raise DcinetError(f"no such run directory or checkpoint: {path}")
    if path.is_dir():
        run_dir, weights_path = path, resolve_checkpoint(path, checkpoint)
    elif checkpoint != "last":
        raise DcinetError(f"--checkpoint {checkpoint} needs a run directory, not the weights "
                          f"file {path}")
    else:
        run_dir, weights_path = path.parent, path
    cfg, info = read_run(run_dir)
    model = create_model(cfg, len(info["classes"]), info["modalities"],
                         state_dict=load_weights(weights_path))
    model.to(device).eval()
    return TrainedModel(model, cfg, info["classes"], info["modalities"], run_dir, weights_path, info)
