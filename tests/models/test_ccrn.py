"""The CCRN split: shapes for every backbone family and layer, and equality with timm's model."""

from __future__ import annotations

import pytest
import timm
import torch

from dcinet.errors import DcinetError
from dcinet.models.ccrn import CCRN, _MapToTokens, _TokensToMap

VIT = "vit_tiny_patch16_224"
SWIN = "swin_tiny_patch4_window7_224"
CNN_SIDES = (8, 4, 2, 1)  # 32 px input, strides 4, 8, 16, 32
# backbone -> (channels after stages 1..4, map side at 32 px for stages 1..4, embedding width)
FAMILIES = {
    "resnet18": ((64, 128, 256, 512), CNN_SIDES, 512),
    "resnetv2_18": ((64, 128, 256, 512), CNN_SIDES, 512),  # pre-activation
    "efficientnet_lite0": ((24, 40, 112, 1280), CNN_SIDES, 1280),
    VIT: ((192,) * 4, (2,) * 4, 192),  # 2 x 2 token grid at every stage
}
SLOW = {  # seconds to initialise four times (VGG's 4096-wide ConvMlp above all)
    "resnet50": ((256, 512, 1024, 2048), CNN_SIDES, 2048),
    "resnetv2_50x1_bit": ((256, 512, 1024, 2048), CNN_SIDES, 2048),  # the paper preset's
    SWIN: ((96, 192, 384, 768), CNN_SIDES, 768),
    "vgg16": ((128, 256, 512, 512), CNN_SIDES, 4096),
    "vgg19": ((128, 256, 512, 512), CNN_SIDES, 4096),
}
CASES = [pytest.param(name, spec, id=name) for name, spec in FAMILIES.items()] + [
    pytest.param(name, spec, id=name, marks=pytest.mark.slow) for name, spec in SLOW.items()]


@pytest.mark.parametrize("name,spec", CASES)
def test_shapes_at_every_layer(name, spec):
    channels, sides, width = spec
    x = torch.randn(2, 3, 32, 32)
    for layer in (1, 2, 3, 4):
        ccrn = CCRN(name, num_classes=5, layer=layer, img_size=32).eval()
        with torch.no_grad():
            maps = ccrn.forward_features(x)
            side = sides[layer - 1]
            assert maps.shape == (2, channels[layer - 1], side, side), (name, layer)
            assert ccrn.forward_head(maps).shape == (2, 5)
            assert ccrn.forward_head(maps, pre_logits=True).shape == (2, width)


def _reference(name: str, img_size: int) -> torch.nn.Module:
    kwargs = {}
    if name == VIT:
        kwargs = {"img_size": img_size, "class_token": False, "global_pool": "avg"}
    elif name == SWIN:
        kwargs = {"img_size": img_size}
    return timm.create_model(name, pretrained=False, num_classes=5, **kwargs)


@pytest.mark.parametrize("name,img_size", [
    ("resnet18", 32), ("resnetv2_50x1_bit", 32), ("efficientnet_lite0", 32), (SWIN, 32), (VIT, 32),
    (VIT, 16),  # 1 x 1 token grid: resized to a 2 x 2 map and back, still exact
    pytest.param("vgg16", 32, marks=pytest.mark.slow),
])
def test_split_computes_exactly_what_the_timm_model_computes(name, img_size):
    torch.manual_seed(0)
    net = _reference(name, img_size).eval()
    torch.manual_seed(0)
    ccrn = CCRN(name, num_classes=5, layer=2, img_size=img_size).eval()
    assert sum(p.numel() for p in ccrn.parameters()) == sum(p.numel() for p in net.parameters())
    x = torch.randn(2, 3, img_size, img_size)
    with torch.no_grad():
        assert torch.allclose(ccrn(x), net(x), atol=1e-5)
        embedding = net.forward_head(net.forward_features(x), pre_logits=True)
        assert torch.allclose(ccrn.forward_head(ccrn.forward_features(x), pre_logits=True),
                              embedding, atol=1e-5)


def test_vit_small_grid_becomes_a_two_by_two_map():
    ccrn = CCRN(VIT, num_classes=3, layer=4, img_size=16)
    maps = ccrn.forward_features(torch.randn(2, 3, 16, 16))
    assert maps.shape == (2, 192, 2, 2)
    assert torch.allclose(maps, maps[:, :, :1, :1].expand_as(maps))  # bilinear from 1 x 1


def test_token_map_round_trip_for_a_non_square_grid():
    tokens = torch.randn(2, 6, 8)  # grid 2 x 3
    maps = _TokensToMap((2, 3), 3)(tokens)
    assert maps.shape == (2, 8, 3, 3)
    back = _MapToTokens((2, 3))(maps)
    assert back.shape == tokens.shape
    same = _MapToTokens((2, 2))(_TokensToMap((2, 2), 2)(tokens[:, :4]))
    assert torch.equal(same, tokens[:, :4])  # square grids are only reshaped


def test_unsupported_backbones_and_layers_are_user_errors():
    with pytest.raises(DcinetError, match="layer must be 1..4"):
        CCRN("resnet18", num_classes=3, layer=5)
    with pytest.raises(DcinetError, match="unknown backbone 'resnet_nope'"):
        CCRN("resnet_nope", num_classes=3)
    with pytest.raises(DcinetError, match="backbone 'convnext_atto' is not supported"):
        CCRN("convnext_atto", num_classes=3)
