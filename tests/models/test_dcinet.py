"""DCINet: the training step of §3.1, the test-time encoder, create_model and DDP."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dcinet.config import load_config
from dcinet.errors import DcinetError
from dcinet.losses import modality_cross_entropy, soft_target_cross_entropy
from dcinet.models import DCINet, create_model
from dcinet.models import interaction as interaction_module
from dcinet.models.interaction import cmci, cmsi

VOCAB, TEXT_LEN, SIDE, LAYER, K = 12, 10, 32, 3, 4  # 32 px: 2 x 2 maps after layer3
ALL = ["image", "audio", "text"]


def _model(interaction: str = "cmsi+cmci", backbone: str = "resnet18", layer: int = LAYER,
           modalities: list[str] = ALL, img_size: int = SIDE, seed: int = 0) -> DCINet:
    torch.manual_seed(seed)
    return DCINet(K, modalities, backbone=backbone, layer=layer, interaction=interaction,
                  vocab_size=VOCAB, text_len=TEXT_LEN, img_size=img_size, text_channels=4)


def _batch(modalities: list[str] = ALL, b: int = 4, side: int = SIDE, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    inputs = {m: (torch.randint(0, VOCAB, (b, TEXT_LEN), generator=g) if m == "text"
                  else torch.randn(b, 3, side, side, generator=g)) for m in modalities}
    labels = {m: torch.randint(0, K, (b,), generator=g) for m in modalities}
    return inputs, labels


def _seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


@pytest.mark.parametrize("modalities,interaction,expected", [
    (ALL, "cmsi+cmci", {"l_img", "l_aud", "l_txt", "l_dual"}),
    (["image", "text"], "cmsi", {"l_img", "l_txt", "l_dual"}),
    (["audio", "text"], "cmci", {"l_aud", "l_txt", "l_dual"}),
    (ALL, "none", {"l_img", "l_aud", "l_txt"}),
    (["image"], "cmsi+cmci", {"l_img", "l_dual"}),
])
def test_loss_parts_and_eq8_sum(modalities, interaction, expected):
    model = _model(interaction, modalities=modalities)
    model.w_modal, model.w_dual = 0.5, 2.0
    _seed(2)
    out = model(*_batch(modalities))
    assert set(out["parts"]) == expected
    modal = sum(v for k, v in out["parts"].items() if k != "l_dual")
    total = 0.5 * modal + 2.0 * out["parts"].get("l_dual", 0.0)
    assert torch.allclose(out["loss"], total)


def test_modal_losses_are_per_modality_cross_entropy_in_batch_order():
    model = _model("none").eval()
    inputs, labels = _batch()
    with torch.no_grad():
        out = model(inputs, labels)
        for modality, name in (("image", "l_img"), ("audio", "l_aud"), ("text", "l_txt")):
            logits = model.encode(inputs[modality], modality, feature="logits")
            assert torch.allclose(out["parts"][name], modality_cross_entropy(logits, labels[modality]))


def test_dual_loss_is_cmsi_then_cmci_then_submodule2():
    model = _model("cmsi+cmci")
    inputs, labels = _batch()
    _seed(5)
    out = model(inputs, labels)
    # the same step by hand (train-mode batch norm depends on the current batch only)
    x = torch.cat([model.to_image(inputs[m], m) for m in ALL])
    y = torch.cat([labels[m] for m in ALL])
    modality_ids = torch.arange(3).repeat_interleave(4)
    _seed(5)
    maps = model.ccrn.forward_features(x)
    mixed, soft, perm, _, _ = cmsi(maps, y, K)
    mixed, soft, _ = cmci(mixed, soft, y[perm], modality_ids[perm])
    expected = soft_target_cross_entropy(model.ccrn.forward_head(mixed), soft)
    assert torch.allclose(out["parts"]["l_dual"], expected, atol=1e-6)


def test_dual_loss_without_cmsi_uses_one_hot_targets():
    model = _model("cmci")
    inputs, labels = _batch()
    out = model(inputs, labels)
    x = torch.cat([model.to_image(inputs[m], m) for m in ALL])
    y = torch.cat([labels[m] for m in ALL])
    maps, soft, _ = cmci(model.ccrn.forward_features(x), F.one_hot(y, K).float(), y,
                      torch.arange(3).repeat_interleave(4))
    expected = soft_target_cross_entropy(model.ccrn.forward_head(maps), soft)
    assert torch.allclose(out["parts"]["l_dual"], expected, atol=1e-6)


def _known_batch():
    """b = 4 per modality with labels whose CMCI matches are known (ids: image 0-3, audio 4-7,
    text 8-11): label 0 -> triple (0, 4, 8), audio 6, 7 left over; label 1 -> pair (1, 5);
    label 2 -> pair (2, 9), text 10, 11 left over; label 3 (image 3) alone."""
    inputs, _ = _batch()
    labels = {"image": torch.tensor([0, 1, 2, 3]), "audio": torch.tensor([0, 1, 0, 0]),
              "text": torch.tensor([0, 2, 2, 2])}
    return inputs, labels


@pytest.mark.parametrize("mode,changed", [
    ("paper", {"image": 3, "audio": 1, "text": 1}),      # 0, 1, 2 | 5 | 9
    ("symmetric", {"image": 3, "audio": 2, "text": 2}),  # and the triple's 4 and 8
])
def test_cmci_fired_counts_per_modality_on_a_hand_built_batch(mode, changed):
    model = _model("cmci")
    model.cmci.mode = mode
    out = model(*_known_batch())
    assert out["fired"] == {"cmci": {m: {"maps": 4, "changed": c} for m, c in changed.items()}}


def test_cmsi_fired_counts_follow_lambda_and_the_modality_of_each_box(monkeypatch):
    seen = []
    real = interaction_module.cmsi

    def recording(*args, **kwargs):
        seen.append(real(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(interaction_module, "cmsi", recording)
    model = _model("cmsi+cmci")
    _seed(6)
    fired = model(*_known_batch())["fired"]
    _, _, perm, lam, _ = seen[-1]
    assert lam == 0.75  # a 1 x 1 box on the 2 x 2 maps: every map changed
    modality = [i // 4 for i in perm.tolist()]  # the base map's modality: 0 image, 1 audio, 2 text
    for k, name in enumerate(ALL):
        cross = sum(1 for i in range(12) if modality[i] == k and modality[11 - i] != k)
        assert fired["cmsi"][name] == {"maps": 4, "changed": 4, "cross_modal": cross,
                                       "same_modality": 4 - cross}
        assert fired["cmci"][name]["maps"] == 4
    model.cmsi.settings = dataclasses.replace(model.cmsi.settings, prob=0.0)  # never mixes
    fired = model(*_known_batch())["fired"]
    assert seen[-1][3] == 1.0
    assert all(c == {"maps": 4, "changed": 0, "cross_modal": 0, "same_modality": 0}
               for c in fired["cmsi"].values())
    assert "fired" not in _model("none")(*_known_batch())
    assert "fired" not in model.eval()(*_known_batch())


def test_interaction_none_runs_submodule2_once_and_dual_twice():
    counts = {}
    for interaction in ("none", "cmsi+cmci"):
        calls = []
        model = _model(interaction)
        model.ccrn.submodule2.register_forward_hook(lambda *_, seen=calls: seen.append(1))
        model(*_batch())
        counts[interaction] = len(calls)
    assert counts == {"none": 1, "cmsi+cmci": 2}


def _touch_bn_gammas(model: torch.nn.Module) -> None:
    """timm zero-initialises the last BN of each residual block, which zeroes the gradients of
    the rest of that block at init; unit gammas make a missing gradient detectable."""
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.ones_(module.weight)


@pytest.mark.parametrize("backbone,layer,side", [
    ("resnet18", 4, 64), ("resnet18", 2, 32), ("resnetv2_18", 4, 64), ("efficientnet_lite0", 3, 32),
    ("vit_tiny_patch16_224", 4, 32), ("swin_tiny_patch4_window7_224", 4, 64),
    pytest.param("vgg16", 4, 64, marks=pytest.mark.slow),
    pytest.param("resnetv2_50x1_bit", 4, 64, marks=pytest.mark.slow),
])
def test_every_trainable_parameter_gets_a_gradient(backbone, layer, side):
    model = _model("cmsi+cmci", backbone=backbone, layer=layer, img_size=side)
    _touch_bn_gammas(model)
    _seed(3)
    inputs, labels = _batch(side=side)
    model(inputs, labels)["loss"].backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def test_test_time_never_runs_the_interactions(monkeypatch):
    def forbidden(*_args, **_kwargs):
        raise AssertionError("CMSI/CMCI called at test time")

    monkeypatch.setattr(interaction_module, "cmsi", forbidden)
    monkeypatch.setattr(interaction_module, "cmci", forbidden)
    inputs, labels = _batch()
    features = {}
    for interaction in ("none", "cmsi", "cmci", "cmsi+cmci"):
        model = _model(interaction).eval()
        with torch.no_grad():
            out = model(inputs, labels)
            features[interaction] = {m: model.encode(inputs[m], m) for m in ALL}
        assert "l_dual" not in out["parts"]
    for interaction in ("cmsi", "cmci", "cmsi+cmci"):
        for m in ALL:
            assert torch.equal(features[interaction][m], features["none"][m])
    with pytest.raises(AssertionError, match="test time"):
        _model("cmsi").train()(inputs, labels)  # the guard is live


def test_encode_features():
    model = _model().eval()
    inputs, _ = _batch()
    with torch.no_grad():
        probs = model.encode(inputs["text"], "text")
        logits = model.encode(inputs["text"], "text", feature="logits")
        emb = model.encode(inputs["audio"], "audio", feature="embedding")
    assert torch.allclose(probs, logits.softmax(dim=1)) and torch.allclose(probs.sum(1), torch.ones(4))
    assert emb.shape == (4, 512)
    with pytest.raises(DcinetError, match="feature"):
        model.encode(inputs["image"], "image", feature="pooled")
    with pytest.raises(DcinetError, match="not 'video'"):
        model.encode(inputs["image"], "video")


def test_bad_batches_are_user_errors():
    model = _model("cmsi")
    inputs, labels = _batch(b=3)
    with pytest.raises(DcinetError, match="even number"):
        model({"image": inputs["image"]}, {"image": labels["image"]})
    with pytest.raises(DcinetError, match="serves"):
        _model(modalities=["image", "audio"])(inputs, labels)
    with pytest.raises(DcinetError, match="interaction"):
        _model("both")


def test_build_model_maps_the_config():
    cfg = load_config("cpu-tiny", ["img_size=32", "resize=40", "text_len=16", "layer=3",
                                   "interaction=cmci", "text_embedding=embedding"])
    model = create_model(cfg, 5, ["text", "image"])
    assert model.modalities == ["image", "text"] and model.interaction == "cmci"
    assert model.ccrn.backbone == "resnet10t" and model.ccrn.layer == 3
    assert model.cmsi is None and model.cmci is not None and model.text.embed is not None
    assert model.text.text_len == 16 and model.text.img_size == 32
    cfg.method = "nope"  # past validation: create_model itself must refuse it
    with pytest.raises(DcinetError, match="method"):
        create_model(cfg, 5, ["image"])


def test_build_model_maps_the_variant_keys():
    tiny = ["img_size=32", "resize=40", "text_len=16", "layer=3"]
    paper = create_model(load_config("cpu-tiny", tiny), 5, ALL)
    assert paper.cmci.mode == "paper" and paper.cmsi.settings.box == "minmax"
    assert paper.cmsi.settings.label_smoothing == 0.0 and paper.cmsi.settings.pairs == "flip"
    cfg = load_config("cpu-tiny", [*tiny, "cmci_mode=symmetric", "cmsi_box=beta",
                                   "label_smoothing=0.1", "cmsi_pairs=cross"])
    model = create_model(cfg, 5, ALL)
    assert model.cmci.mode == "symmetric" and model.cmsi.settings.box == "beta"
    assert model.cmsi.settings.label_smoothing == 0.1 and model.cmsi.settings.pairs == "cross"
    with pytest.raises(DcinetError, match="cmsi_pairs"):
        load_config("cpu-tiny", [*tiny, "cmsi_pairs=nearest"])


def test_cmsi_cross_fired_counts_have_no_same_modality_box():
    model = _model("cmsi")
    model.cmsi.settings = dataclasses.replace(model.cmsi.settings, pairs="cross")
    for seed in range(3):
        _seed(seed)
        fired = model(*_known_batch())["fired"]
        assert all(c == {"maps": 4, "changed": 4, "cross_modal": 4, "same_modality": 0}
                   for c in fired["cmsi"].values())


def test_forward_through_distributed_data_parallel(tmp_path):
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = _model()
        net = DistributedDataParallel(model)
        _seed(4)
        net(*_batch())["loss"].backward()
        assert all(p.grad is not None for p in model.parameters())
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("method", ["dcinet", "fgcrossnet"])
def test_ce_label_smoothing_reaches_the_per_modality_losses(method: str):
    cfg = load_config("cpu-tiny", ["img_size=32", "resize=32", "text_len=10", "text_channels=4",
                                   "ce_label_smoothing=0.3", f"method={method}",
                                   "interaction=none"])
    torch.manual_seed(0)
    model = create_model(cfg, K, ALL).eval()
    inputs, labels = _batch(b=4)
    with torch.no_grad():
        parts = model(inputs, labels)["parts"]
        logits = {m: model.encode(inputs[m], m, feature="logits") for m in ALL}
    if method == "dcinet":
        for m, name in zip(ALL, ["l_img", "l_aud", "l_txt"], strict=True):
            expected = F.cross_entropy(logits[m], labels[m], label_smoothing=0.3)
            assert torch.allclose(parts[name], expected, atol=1e-6), name
            assert not torch.allclose(parts[name], F.cross_entropy(logits[m], labels[m]))
    else:
        joined = torch.cat([logits[m] for m in ALL])
        y = torch.cat([labels[m] for m in ALL])
        expected = F.cross_entropy(joined, y, label_smoothing=0.3)
        assert torch.allclose(parts["l_cls"], expected, atol=1e-6)


@pytest.mark.parametrize("method", ["dcinet", "fgcrossnet"])
def test_new_layers_are_the_classifier_and_the_text_module(method: str):
    cfg = load_config("cpu-tiny", ["img_size=32", "resize=32", "text_len=10", "text_channels=4",
                                   f"method={method}", "layer=3"])
    model = create_model(cfg, K, ALL)
    names = {id(p): n for n, p in model.named_parameters()}
    new = sorted(names[id(p)] for p in model.new_layers())
    expected = ["ccrn.submodule2.head.fc.bias", "ccrn.submodule2.head.fc.weight"]
    expected += [n for n, _ in model.text.named_parameters(prefix="text")]
    expected += ["centres"] if method == "fgcrossnet" else []
    assert new == sorted(expected)
