"""The cross-media common representation network (CCRN, §3.1): a timm backbone cut in two.

A timm model (``pretrained=False``, ``num_classes`` = the dataset's classes) is split on its own
stage structure into four stages ``S1..S4`` plus a head (global pooling + classifier):

* ``submodule1`` = ``S1..Sk`` (``S1`` includes the stem), ending in a feature map ``(B, C, h, w)``;
* ``submodule2`` = ``S(k+1)..S4`` + head, ending in logits ``(B, num_classes)``.

CMSI and CMCI act on the map between the two (``k`` = ``layer``). The four stages per family
(strides match ResNet's: ``S1`` /4, ``S2`` /8, ``S3`` /16, ``S4`` /32, except ViT):

* ``resnet*`` (timm ``ResNet``): stem + ``layer1``, ``layer2``, ``layer3``, ``layer4``.
* ``resnetv2*`` (timm ``ResNetV2``: pre-activation ResNets, e.g. BiT ``resnetv2_50x1_bit`` with
  GroupNorm + weight standardisation): stem + ``stages[0]``, ``stages[1]``, ``stages[2]``,
  ``stages[3]`` + the final pre-activation ``norm``; the head is timm's ``ClassifierHead``.
* ``vgg*`` (timm ``VGG``): ``features`` cut after its max-pools 2, 3, 4, 5; the head is timm's
  ``pre_logits`` ConvMlp + ``head``.
* ``efficientnet*`` (timm ``EfficientNet``): stem + block stages grouped by the reduction of
  their output (4, 8, 16, 32); ``conv_head`` + ``bn2`` close ``S4``.
* ``swin*``: patch embedding + ``layers[0]``, ``layers[1..3]`` (``norm`` closes ``S4``). Stages
  run NHWC; the map between the sub-modules is permuted to NCHW.
* ``vit*`` (timm ``VisionTransformer``, created with ``class_token=False, global_pool="avg"`` so
  the tokens are the whole state): patch + position embedding, then the blocks in four equal
  groups (``np.array_split``); every stage keeps the ``(gh, gw)`` token grid. Table 4's bilinear
  interpolation: the tokens ``(B, gh*gw, D)`` become a map ``(B, D, gh, gw)``; when the grid is
  not square or smaller than 2 x 2 the map is resized bilinearly (``align_corners=False``) to
  ``s x s`` with ``s = max(2, gh, gw)``, and sub-module 2 resizes it back to ``(gh, gw)`` before
  the next blocks. A square grid of side >= 2 is never interpolated.
"""

from __future__ import annotations

import numpy as np
import timm
import timm.models
import torch
import torch.nn.functional as F
from torch import nn

from dcinet.errors import DcinetError

FAMILIES = {
    "timm.models.resnet": "resnet",
    "timm.models.resnetv2": "resnetv2",
    "timm.models.vgg": "vgg",
    "timm.models.efficientnet": "efficientnet",
    "timm.models.swin_transformer": "swin",
    "timm.models.vision_transformer": "vit",
}


class _PoolHead(nn.Module):
    """Global pooling -> dropout -> linear classifier (ResNet, EfficientNet)."""

    def __init__(self, pool: nn.Module, fc: nn.Module, drop_rate: float):
        super().__init__()
        self.pool, self.drop, self.fc = pool, nn.Dropout(drop_rate), fc

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.pool(x))
        return x if pre_logits else self.fc(x)


class _PreLogitsHead(nn.Module):
    """timm VGG's ``pre_logits`` ConvMlp followed by its ``ClassifierHead``."""

    def __init__(self, pre_logits: nn.Module, head: nn.Module):
        super().__init__()
        self.pre_logits, self.head = pre_logits, head

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(self.pre_logits(x), pre_logits=pre_logits)


class _TokenHead(nn.Module):
    """ViT head: mean over tokens -> ``fc_norm`` -> dropout -> linear classifier."""

    def __init__(self, fc_norm: nn.Module, head_drop: nn.Module, head: nn.Module):
        super().__init__()
        self.fc_norm, self.head_drop, self.head = fc_norm, head_drop, head

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.fc_norm(x.mean(dim=1)))
        return x if pre_logits else self.head(x)


class _VitEmbed(nn.Module):
    """ViT stem without prefix tokens: patch embedding + position embedding -> ``(B, N, D)``."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.patch_embed, self.pos_drop = net.patch_embed, net.pos_drop
        self.patch_drop, self.norm_pre = net.patch_drop, net.norm_pre
        self.pos_embed = net.pos_embed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pos_drop(self.patch_embed(x) + self.pos_embed)
        return self.norm_pre(self.patch_drop(x))


class _Permute(nn.Module):
    """``x.permute(*dims)`` (NHWC <-> NCHW for Swin)."""

    def __init__(self, *dims: int):
        super().__init__()
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)


class _TokensToMap(nn.Module):
    """``(B, gh*gw, D)`` tokens -> ``(B, D, s, s)`` map (bilinear resize when ``(gh, gw) != (s, s)``)."""

    def __init__(self, grid: tuple[int, int], side: int):
        super().__init__()
        self.grid, self.side = grid, side

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2).reshape(x.shape[0], x.shape[2], *self.grid)
        if self.grid != (self.side, self.side):
            x = F.interpolate(x, size=(self.side, self.side), mode="bilinear", align_corners=False)
        return x


class _MapToTokens(nn.Module):
    """``(B, D, h, w)`` map -> ``(B, gh*gw, D)`` tokens (bilinear resize to the grid when needed)."""

    def __init__(self, grid: tuple[int, int]):
        super().__init__()
        self.grid = grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.grid:
            x = F.interpolate(x, size=self.grid, mode="bilinear", align_corners=False)
        return x.flatten(2).transpose(1, 2)


class Submodule2(nn.Module):
    """Stages ``k+1..4`` and the head: map ``(B, C, h, w)`` -> logits or pooled embedding."""

    def __init__(self, stages: nn.Sequential, head: nn.Module):
        super().__init__()
        self.stages, self.head = stages, head

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(self.stages(x), pre_logits=pre_logits)


def _group_by_pools(features: nn.Sequential) -> list[nn.Module]:
    """VGG ``features`` -> 4 stages ending after max-pools 2, 3, 4, 5 (strides 4, 8, 16, 32)."""
    pools = [i for i, m in enumerate(features) if isinstance(m, nn.MaxPool2d)]
    if len(pools) != 5:
        raise DcinetError(f"VGG backbone with {len(pools)} pooling layers is not supported (need 5)")
    layers = list(features)
    bounds = [0] + [p + 1 for p in pools[1:]]
    return [nn.Sequential(*layers[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _efficientnet_stages(net: nn.Module) -> list[nn.Module]:
    """Stem + ``blocks`` grouped so that stages end at reductions 4, 8, 16, 32 (timm feature_info)."""
    ends = {}
    for info in net.feature_info:
        name = info["module"]
        if name.startswith("blocks.") and info["reduction"] in (4, 8, 16, 32):
            ends[info["reduction"]] = int(name.split(".")[1])
    if sorted(ends) != [4, 8, 16, 32]:
        raise DcinetError("EfficientNet backbone without stages at reductions 4, 8, 16, 32 is not supported")
    blocks = list(net.blocks)
    starts = [0] + [ends[r] + 1 for r in (4, 8, 16)]
    stages = [nn.Sequential(*blocks[a:ends[r] + 1]) for a, r in zip(starts, (4, 8, 16, 32), strict=True)]
    stages[0] = nn.Sequential(net.conv_stem, net.bn1, *stages[0])
    stages[3] = nn.Sequential(*stages[3], net.conv_head, net.bn2)
    return stages


def _vit_parts(net: nn.Module, name: str) -> tuple[list[nn.Module], nn.Module, nn.Module, nn.Module]:
    if net.num_prefix_tokens or net.pos_embed is None or net.dynamic_img_size or net.attn_pool is not None:
        raise DcinetError(f"backbone '{name}': only ViTs without prefix tokens, with absolute position "
                          f"embeddings and average pooling are supported")
    groups = np.array_split(np.arange(len(net.blocks)), 4)
    stages = [nn.Sequential(*(net.blocks[int(i)] for i in g)) for g in groups]
    stages[0] = nn.Sequential(_VitEmbed(net), *stages[0])
    stages[3] = nn.Sequential(*stages[3], net.norm)
    grid = tuple(int(g) for g in net.patch_embed.grid_size)
    side = max(2, *grid)
    return stages, _TokenHead(net.fc_norm, net.head_drop, net.head), _TokensToMap(grid, side), _MapToTokens(grid)


def split_backbone(net: nn.Module, family: str, name: str):
    """``(stages[4], head, to_map, from_map)`` of a timm model; stages run in the family's native
    layout, ``to_map`` / ``from_map`` convert it to / from an NCHW map, ``head(x, pre_logits)``."""
    identity = nn.Identity()
    if family == "resnet":
        stem = nn.Sequential(net.conv1, net.bn1, net.act1, net.maxpool, net.layer1)
        stages = [stem, net.layer2, net.layer3, net.layer4]
        return stages, _PoolHead(net.global_pool, net.fc, net.drop_rate), identity, identity
    if family == "resnetv2":
        stages = [nn.Sequential(net.stem, net.stages[0]), net.stages[1], net.stages[2],
                  nn.Sequential(net.stages[3], net.norm)]
        return stages, net.head, identity, identity
    if family == "vgg":
        return _group_by_pools(net.features), _PreLogitsHead(net.pre_logits, net.head), identity, identity
    if family == "efficientnet":
        head = _PoolHead(net.global_pool, net.classifier, net.drop_rate)
        return _efficientnet_stages(net), head, identity, identity
    if family == "swin":
        stages = [nn.Sequential(net.patch_embed, net.layers[0]), net.layers[1], net.layers[2],
                  nn.Sequential(net.layers[3], net.norm)]
        return stages, net.head, _Permute(0, 3, 1, 2), _Permute(0, 2, 3, 1)
    return _vit_parts(net, name)


def backbone_family(name: str) -> str:
    """The CCRN family (:data:`FAMILIES`) of the timm model ``name``.

    Raises:
        DcinetError: ``name`` is not a timm model, or not of a supported family.
    """
    if not timm.models.is_model(name):
        raise DcinetError(f"unknown backbone '{name}': not a timm model name")
    family = FAMILIES.get(timm.models.model_entrypoint(name).__module__)
    if family is None:
        raise DcinetError(f"backbone '{name}' is not supported; use a resnet*, resnetv2*, vgg*, "
                          f"efficientnet*, swin* or vit* timm model")
    return family


def create_backbone(name: str, num_classes: int, img_size: int, **timm_kwargs) -> nn.Module:
    """The timm model ``name`` as the CCRN splits it (ViT: no class token, average pooling;
    ViT / Swin: built for ``img_size``); ``timm_kwargs`` go to :func:`timm.create_model`
    (default ``pretrained=False``)."""
    family = backbone_family(name)
    kwargs: dict = {"pretrained": False, **timm_kwargs}
    if family == "vit":
        kwargs.update(img_size=img_size, class_token=False, global_pool="avg")
    elif family == "swin":
        kwargs.update(img_size=img_size)
    return timm.create_model(name, num_classes=num_classes, **kwargs)


class CCRN(nn.Module):
    """The shared network for every modality, split at stage ``layer`` (1..4).

    Args:
        backbone: timm model name (``resnet50``, ``resnet18``, ``resnetv2_50x1_bit``, ``vgg16``,
            ``vgg19``, ``vit_tiny_patch16_224``, ``swin_tiny_patch4_window7_224``,
            ``efficientnet_lite0``...).
        num_classes: classifier width.
        layer: CMSI/CMCI sit after stage ``layer``.
        img_size: input side in pixels; fixes the token grid of ViT/Swin, free for CNNs.
        net: the timm model to split, as :func:`create_backbone` makes it (the factory passes one
            holding pretrained weights); ``None`` = a new randomly initialised one.
    """

    def __init__(self, backbone: str = "resnet50", num_classes: int = 200, layer: int = 4,
                 img_size: int = 448, net: nn.Module | None = None):
        super().__init__()
        if layer not in (1, 2, 3, 4):
            raise DcinetError(f"layer must be 1..4 (the stage CMSI/CMCI follow), got {layer}")
        self.family = backbone_family(backbone)
        if net is None:
            net = create_backbone(backbone, num_classes, img_size)
        stages, head, to_map, from_map = split_backbone(net, self.family, backbone)
        self.backbone, self.layer, self.img_size = backbone, layer, img_size
        self.submodule1 = nn.Sequential(*stages[:layer], to_map)
        self.submodule2 = Submodule2(nn.Sequential(from_map, *stages[layer:]), head)

    @torch.no_grad()
    def map_shape(self) -> tuple[int, int, int]:
        """``(C, h, w)`` of sub-module 1's map for a ``(1, 3, img_size, img_size)`` input (one
        forward pass in eval mode; the training mode is restored)."""
        was_training = self.training
        self.eval()
        try:
            param = next(self.parameters())
            x = torch.zeros(1, 3, self.img_size, self.img_size, dtype=param.dtype, device=param.device)
            return tuple(self.forward_features(x).shape[1:])
        finally:
            self.train(was_training)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Sub-module 1: float ``(B, 3, H, W)`` -> feature map ``(B, C, h, w)`` after stage ``layer``."""
        return self.submodule1(x)

    def forward_head(self, maps: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Sub-module 2: ``(B, C, h, w)`` -> logits ``(B, num_classes)``, or with ``pre_logits``
        the pooled embedding ``(B, D)`` fed to the classifier."""
        return self.submodule2(maps, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Both sub-modules: ``(B, 3, H, W)`` -> logits ``(B, num_classes)``."""
        return self.forward_head(self.forward_features(x))
