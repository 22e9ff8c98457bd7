"""The FGCrossNet baseline: create_model, its three losses, gradients, encode, and a CLI run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dcinet.app.cli import main
from dcinet.config import load_config
from dcinet.errors import DcinetError
from dcinet.losses import center_loss, modality_cross_entropy, quadruplet_loss
from dcinet.models import DCINet, FGCrossNet, create_model
from dcinet.rundir import read_metrics

K, SIDE = 4, 64
ALL = ["image", "audio", "text"]


def _cfg(*extra: str):
    return load_config("cpu-tiny", ["method=fgcrossnet", f"img_size={SIDE}", "resize=72",
                                     "text_len=16", *extra])


def _batch(cfg, modalities: list[str] = ALL, b: int = 4, seed: int = 1):
    from dcinet.data.text import VOCAB_SIZE

    g = torch.Generator().manual_seed(seed)
    inputs = {m: (torch.randint(1, VOCAB_SIZE, (b, cfg.text_len), generator=g) if m == "text"
                  else torch.randn(b, 3, SIDE, SIDE, generator=g)) for m in modalities}
    labels = {m: torch.arange(b) % K for m in modalities}  # every class in every modality
    return inputs, labels


def test_build_model_picks_fgcrossnet_by_method():
    cfg = _cfg("w_center=0.01", "w_quadruplet=0.5", "quadruplet_margin1=2.0", "quadruplet_margin2=0.25")
    model = create_model(cfg, K, ["text", "image"])
    assert type(model) is FGCrossNet and model.modalities == ["image", "text"]
    assert model.ccrn.backbone == "resnet10t" and model.ccrn.layer == 4
    assert (model.w_center, model.w_quadruplet, model.margin1, model.margin2) == (0.01, 0.5, 2.0, 0.25)
    assert model.centres.shape == (K, 512)  # resnet10t's pooled width
    assert type(create_model(load_config("cpu-tiny"), K, ["image"])) is DCINet


def test_default_loss_weights_are_the_public_codes():
    # w_quadruplet=1.0 collapsed the embedding on the built-in dataset (docs/fgcrossnet.md); the
    # public code weights the ranking loss by 0.1 and the center loss by 0.001
    model = create_model(_cfg(), K, ["image", "text"])
    assert (model.w_center, model.w_quadruplet) == (0.001, 0.1)
    # the class built directly (Python API) has the same defaults as the config
    direct = FGCrossNet(K, ["image"], backbone="resnet18", img_size=SIDE)
    assert (direct.w_center, direct.w_quadruplet) == (0.001, 0.1)


@pytest.mark.parametrize("backbone,side", [("efficientnet_lite0", 32), ("vit_tiny_patch16_224", 32)])
def test_centres_have_the_embedding_width(backbone, side):
    model = FGCrossNet(K, ["image"], backbone=backbone, img_size=side).eval()
    with torch.no_grad():
        emb = model.encode(torch.randn(2, 3, side, side), "image", feature="embedding")
    assert model.centres.shape == (K, emb.shape[1])


def test_forward_parts_are_the_three_losses_on_the_shared_embedding():
    cfg = _cfg("w_center=0.1", "w_quadruplet=2.0")
    torch.manual_seed(0)
    model = create_model(cfg, K, ALL).eval()  # eval: batch norm statistics, encode gives the same
    inputs, labels = _batch(cfg)
    with torch.no_grad():
        out = model(inputs, labels)
        emb = torch.cat([model.encode(inputs[m], m, feature="embedding") for m in ALL])
        logits = torch.cat([model.encode(inputs[m], m, feature="logits") for m in ALL])
    y = torch.cat([labels[m] for m in ALL])
    modality_ids = torch.arange(3).repeat_interleave(4)
    expected = {"l_cls": modality_cross_entropy(logits, y), "l_center": center_loss(emb, y, model.centres),
                "l_rank": quadruplet_loss(emb, y, modality_ids, 1.0, 0.5)}
    assert set(out["parts"]) == set(expected)
    for name, value in expected.items():
        assert torch.allclose(out["parts"][name], value, rtol=1e-5), name
    assert out["parts"]["l_rank"] > 0  # random features violate the margins
    total = out["parts"]["l_cls"] + 0.1 * out["parts"]["l_center"] + 2.0 * out["parts"]["l_rank"]
    assert torch.allclose(out["loss"], total)


def test_every_trainable_parameter_gets_a_gradient_and_centres_the_unweighted_one():
    cfg = _cfg("w_center=0.01")
    torch.manual_seed(0)
    model = create_model(cfg, K, ALL)
    for module in model.modules():  # timm zero-inits the last BN gamma of each block
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(module.weight)
    inputs, labels = _batch(cfg)
    model(inputs, labels)["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    # the centres' gradient is that of L_center alone (w_center = 0.01 does not scale it); the
    # embedding is recomputed in the same (training) mode, so batch norm gives the same values
    _, x, y, _ = model.concat_batch(inputs, labels)
    with torch.no_grad():
        emb = model.ccrn.forward_head(model.ccrn.forward_features(x), pre_logits=True)
    centres = model.centres.detach().clone().requires_grad_()
    center_loss(emb, y, centres).backward()
    assert torch.allclose(model.centres.grad, centres.grad, atol=1e-6)


def test_encode_shapes_and_single_modality_batches():
    cfg = _cfg()
    model = create_model(cfg, K, ["image", "audio"]).eval()
    inputs, labels = _batch(cfg, ["image", "audio"], b=3)
    with torch.no_grad():
        assert model.encode(inputs["audio"], "audio").shape == (3, K)
        assert torch.allclose(model.encode(inputs["image"], "image").sum(dim=1), torch.ones(3))
        assert model.encode(inputs["image"], "image", feature="embedding").shape == (3, 512)
        # one modality: positives may share it; the three parts still come back finite
        out = model({"image": inputs["image"]}, {"image": labels["image"]})
    assert all(torch.isfinite(v) for v in out["parts"].values())
    with pytest.raises(DcinetError, match="not 'text'"):
        model.encode(inputs["image"], "text")
    with pytest.raises(DcinetError, match="w_center"):
        FGCrossNet(K, ["image"], backbone="resnet18", w_center=-1.0)
    with pytest.raises(DcinetError, match="quadruplet_margin2"):
        _cfg("quadruplet_margin2=-0.5")


def test_one_epoch_cli_run_then_evaluate(tiny_builtin: Path, tmp_path: Path, tiny_overrides, capsys):
    run = tmp_path / "run"
    assert main(["train", "--config", "cpu-tiny", "--data", str(tiny_builtin), "--out", str(run),
                 "--quiet", "method=fgcrossnet", *tiny_overrides]) == 0
    row = read_metrics(run)[0]
    assert {"loss", "l_cls", "l_center", "l_rank"} <= set(row) and "l_dual" not in row
    assert row["loss"] == pytest.approx(row["l_cls"] + 0.001 * row["l_center"] + row["l_rank"], rel=1e-4)
    capsys.readouterr()
    assert main(["evaluate", str(run)]) == 0
    table = capsys.readouterr().out
    assert "i2t" in table and "|" in table
