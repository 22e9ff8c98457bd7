"""How training uses its device (dcinet.train.device), checked on the CPU: the refusals made
before any work, cuDNN's autotuner, the AMP dtype and its scaler, compile, the global batch under
torchrun, and the CUDA RNG left alone by a CPU run."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

import dcinet.train.loop
from dcinet.app.cli import main
from dcinet.config import Config, load_config
from dcinet.distributed import DistInfo
from dcinet.errors import DcinetError
from dcinet.models import DCINet
from dcinet.train import device as device_module
from dcinet.train.checkpoint import rng_state
from dcinet.train.device import (
    amp_dtype,
    batch_line,
    check_device_config,
    compile_halves,
    configure_backends,
    make_scaler,
    per_rank_batch,
    wrap_for_training,
)
from dcinet.train.loop import fit

CUDA = DistInfo(device=torch.device("cuda", 0))  # a description only: nothing runs on it


def test_deterministic_on_cuda_is_refused_in_one_line_before_any_work(tiny_builtin: Path,
                                                                     tmp_path: Path, monkeypatch,
                                                                     capsys, tiny_overrides):
    def no_work(*_args, **_kwargs):
        raise AssertionError("the dataset was read before the refusal")

    monkeypatch.setattr(dcinet.train.loop, "init_distributed", lambda device: CUDA)
    monkeypatch.setattr(dcinet.train.loop, "prepare", no_work)
    run = tmp_path / "run"
    code = main(["train", "--config", "cpu-tiny", "--data", str(tiny_builtin), "--out", str(run),
                 *tiny_overrides])  # tiny_overrides hold deterministic=true
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'deterministic'" in err[0] and "CPU only" in err[0]
    assert not run.exists()
    # deterministic=false passes the check (and reaches the dataset)
    with pytest.raises(AssertionError, match="dataset was read"):
        fit(load_config("cpu-tiny", [*tiny_overrides, "deterministic=false"]), tiny_builtin, run)


def test_sync_bn_under_torchrun_needs_cuda():
    cfg = Config(sync_bn=True)
    with pytest.raises(DcinetError, match="'sync_bn'.*needs CUDA"):
        check_device_config(cfg, DistInfo(ddp=True))
    check_device_config(cfg, DistInfo())  # one process: nothing to synchronise, accepted
    check_device_config(cfg, DistInfo(device=torch.device("cuda", 0), ddp=True))


def test_cudnn_autotuner_is_on_for_cuda_only(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    configure_backends(Config(), torch.device("cpu"))
    assert torch.backends.cudnn.benchmark is False
    configure_backends(Config(), torch.device("cuda", 0))
    assert torch.backends.cudnn.benchmark is True


@pytest.mark.parametrize("key, bf16_supported, expected", [
    ("auto", True, torch.bfloat16), ("auto", False, torch.float16),
    ("bf16", False, torch.bfloat16), ("fp16", True, torch.float16),
])
def test_amp_dtype_on_cuda(monkeypatch, key, bf16_supported, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16_supported)
    assert amp_dtype(Config(amp_dtype=key), torch.device("cuda", 0)) is expected
    assert amp_dtype(Config(amp_dtype=key, amp=False), torch.device("cuda", 0)) is None
    assert amp_dtype(Config(amp_dtype=key), torch.device("cpu")) is None


def test_only_float16_gets_a_grad_scaler(monkeypatch):
    made = []
    monkeypatch.setattr(torch.amp, "GradScaler", lambda device, enabled: made.append(enabled))
    for dtype in (torch.float16, torch.bfloat16, None):
        make_scaler(dtype)
    assert made == [True, False, False]


def test_the_batch_is_global_and_shared_by_the_ranks():
    cfg = Config(batch_per_modality=8, sampler="class_aware", samples_per_class=2)
    assert [per_rank_batch(cfg, 3, w) for w in (1, 2, 4)] == [8, 4, 2]
    with pytest.raises(DcinetError, match=r"multiple of the 3 ranks"):
        per_rank_batch(cfg, 3, 3)
    with pytest.raises(DcinetError, match=r"8 / 8 ranks = 1 is not a multiple"):
        per_rank_batch(cfg, 3, 8)
    with pytest.raises(DcinetError, match=r"CMSI.*each of 2 ranks \(1 per modality x 3 "):
        per_rank_batch(replace(cfg, batch_per_modality=2, samples_per_class=1), 3, 2)
    per_rank_batch(replace(cfg, batch_per_modality=2, samples_per_class=1, interaction="cmci"), 3, 2)


def test_the_run_prints_its_global_batch_and_steps():
    cfg = Config(batch_per_modality=8, accum_steps=2, compile=True)
    loader = list(range(750))
    line = batch_line(cfg, loader, 3, DistInfo(world_size=4))
    assert line == ("global batch 24 (8 per modality x 3 modalities; 2 per modality on each of 4 "
                    "ranks), 750 steps per epoch, an optimizer step every 2 (48 samples); cpu, "
                    "float32, compiled")
    assert batch_line(Config(), loader, 2, DistInfo()).startswith(
        "global batch 16 (8 per modality x 2 modalities), 750 steps per epoch; cpu, float32")


def test_compiling_the_halves_keeps_the_weights_names_and_the_losses():
    torch.manual_seed(0)
    model = DCINet(4, ["image", "audio"], backbone="resnet10t", layer=3, interaction="cmci",
                   img_size=32)
    keys = list(model.state_dict())
    inputs = {m: torch.randn(4, 3, 32, 32) for m in ("image", "audio")}
    labels = {m: torch.tensor([0, 1, 2, 3]) for m in inputs}
    model.eval()  # batch statistics would move between the two passes
    eager = model(inputs, labels)["loss"]
    torch._dynamo.reset()
    compile_halves(model, backend="eager")  # dynamo's tracing, without inductor's C++ build
    try:
        compiled = model(inputs, labels)["loss"]
        model.train()
        trained = model(inputs, labels)  # CMCI's host matching between the compiled halves
    finally:
        torch._dynamo.reset()
    assert list(model.state_dict()) == keys
    assert torch.allclose(compiled, eager, atol=1e-5)
    assert torch.isfinite(trained["loss"]) and "l_dual" in trained["parts"]


def test_wrap_for_training_compiles_and_wraps_only_under_torchrun(monkeypatch):
    compiled = []
    monkeypatch.setattr(device_module, "compile_halves", compiled.append)
    model = torch.nn.Linear(2, 2)
    assert wrap_for_training(model, Config(compile=True), DistInfo()) is model
    assert compiled == [model]
    assert wrap_for_training(model, Config(), DistInfo()) is model and compiled == [model]


def test_a_cpu_run_never_reads_the_cuda_generators(monkeypatch):
    def initialises_cuda():
        raise AssertionError("CUDA RNG read in a process that never used CUDA")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", initialises_cuda)
    assert "cuda" not in rng_state()
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [torch.zeros(3, dtype=torch.uint8)])
    assert torch.equal(rng_state()["cuda"][0], torch.zeros(3, dtype=torch.uint8))
