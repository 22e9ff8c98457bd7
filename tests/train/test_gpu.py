"""The CUDA path, run where a GPU is (``pytest -m gpu``; ``bash bench/gpu.sh`` runs these and
records each one's outcome). Each test fails when CUDA breaks something the CPU tests cannot see.

Tolerances, and why:

* ``--resume`` on CUDA: the final weights of a crashed-and-resumed run differ from the
  uninterrupted run's by at most ``max(RESUME_REL, 4 x`` the difference between two uninterrupted
  runs``)`` (relative L2 over all weights), and its epoch-2 loss by at most 2 %. CUDA's
  backward is not deterministic (atomics in the pooling and index backward), so two uninterrupted
  runs differ in their last bits too; a lost optimizer state, schedule or RNG stream would change
  the second epoch's batches and steps far beyond that.
* ``evaluate --device cuda`` against ``--device cpu``: every mAP within 0.02 with float16
  autocast (rankings of near-tied items may swap), within 1e-3 with ``--no-amp``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dcinet.app.cli import main
from dcinet.config import load_config
from dcinet.models.interaction import cmci
from dcinet.rundir import read_metrics, read_pointer
from dcinet.train.checkpoint import load_checkpoint
from dcinet.train.loop import fit

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

GPU = ["img_size=64", "resize=72", "text_len=48", "batch_per_modality=4", "samples_per_class=2",
       "num_workers=0", "log_every=1000"]  # cpu-tiny at 64 px: DCINet with CMSI + CMCI
RESUME_REL = 1e-2


def _cfg(*extra: str):
    return load_config("cpu-tiny", [*GPU, *extra])


def _weights_distance(a: dict, b: dict) -> float:
    """Relative L2 distance of two state dicts' floating-point tensors, all together."""
    keys = [k for k in a if a[k].is_floating_point()]
    diff = torch.cat([(a[k].double() - b[k].double()).flatten() for k in keys])
    norm = torch.cat([a[k].double().flatten() for k in keys])
    return float(diff.norm() / norm.norm())


@pytest.mark.parametrize("amp_dtype", ["bf16", "fp16", "auto"])
def test_amp_steps_of_dcinet(tiny_builtin: Path, tmp_path: Path, amp_dtype: str):
    if amp_dtype == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    run = tmp_path / "run"
    result = fit(_cfg("epochs=1", f"amp_dtype={amp_dtype}"), tiny_builtin, run, progress=False,
                 device="cuda")
    row = result.history[0]
    assert all(torch.isfinite(torch.tensor(row[k])) for k in ("loss", "l_img", "l_txt", "l_dual"))
    assert next(result.model.parameters()).is_cuda
    _, state = load_checkpoint(run)
    scaled = amp_dtype == "fp16" or (amp_dtype == "auto" and not torch.cuda.is_bf16_supported())
    assert bool(state["scaler"]) == scaled  # a GradScaler for float16 only
    fired = json.loads((run / "run.json").read_text())["interactions_fired"]
    assert sum(c["changed"] for c in fired["cmci"].values()) > 0
    assert sum(c["changed"] for c in fired["cmsi"].values()) > 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cmci_targets_stay_float32_and_maps_channels_last_on_cuda(dtype):
    g = torch.Generator().manual_seed(0)
    maps = torch.randn(6, 7, 3, 3, generator=g).cuda().contiguous(memory_format=torch.channels_last)
    soft = torch.softmax(torch.randn(6, 5, generator=g), dim=1).cuda()
    labels, ids = torch.tensor([0, 1, 2, 0, 1, 0]), torch.tensor([0, 0, 0, 1, 1, 2])
    reference = cmci(maps.cpu(), soft.cpu(), labels, ids)
    with torch.autocast("cuda", dtype=dtype):
        mixed, targets, changed = cmci(maps.to(dtype), soft, labels, ids)
    assert targets.dtype == torch.float32 and mixed.dtype == dtype
    assert mixed.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(targets.sum(1), torch.ones(6, device="cuda"), atol=1e-6)
    assert torch.allclose(targets.cpu(), reference[1], atol=1e-6)
    assert torch.equal(mixed.float().cpu(), reference[0].to(dtype).float())
    assert torch.equal(changed, reference[2])


def test_crash_and_resume_on_cuda_match_the_uninterrupted_run(tiny_builtin: Path, tmp_path: Path,
                                                              crash_after_first_epoch):
    cfg = _cfg("epochs=2", "amp_dtype=fp16")  # fp16: the GradScaler's state is resumed too
    fit(cfg, tiny_builtin, tmp_path / "a", progress=False, device="cuda")
    fit(cfg, tiny_builtin, tmp_path / "a2", progress=False, device="cuda")
    crash_after_first_epoch(fit, cfg, tiny_builtin, tmp_path / "b", progress=False, device="cuda")
    assert read_pointer(tmp_path / "b")["epoch"] == 1
    fit(cfg, tiny_builtin, tmp_path / "b", resume=True, progress=False, device="cuda")
    a, b, a2 = (load_checkpoint(tmp_path / n)[0] for n in ("a", "b", "a2"))
    noise = _weights_distance(a, a2)
    assert _weights_distance(a, b) <= max(RESUME_REL, 4 * noise), noise
    loss_a, loss_b = (read_metrics(tmp_path / n)[1]["loss"] for n in ("a", "b"))
    assert abs(loss_a - loss_b) <= 0.02 * abs(loss_a)


@pytest.mark.parametrize("first, then", [("cuda", "cpu"), ("cpu", "cuda")])
def test_a_checkpoint_resumes_on_the_other_device(tiny_builtin: Path, tmp_path: Path,
                                                  crash_after_first_epoch, first, then):
    cfg = _cfg("epochs=2")
    crash_after_first_epoch(fit, cfg, tiny_builtin, tmp_path / "run", progress=False, device=first)
    result = fit(cfg, tiny_builtin, tmp_path / "run", resume=True, progress=False, device=then)
    assert [r["epoch"] for r in result.history] == [1, 2]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in result.history)
    assert next(result.model.parameters()).device.type == then
    weights, state = load_checkpoint(tmp_path / "run")
    assert state["epoch"] == 2 and all(torch.isfinite(v).all() for v in weights.values()
                                       if v.is_floating_point())


def test_evaluate_on_cuda_equals_the_cpu(tiny_builtin: Path, tmp_path: Path):
    run = tmp_path / "run"
    fit(_cfg("epochs=1"), tiny_builtin, run, progress=False, device="cpu")
    maps = {}
    for name, extra in (("cpu", ["--device", "cpu"]), ("cuda", ["--device", "cuda"]),
                        ("cuda-fp32", ["--device", "cuda", "--no-amp"])):
        out = tmp_path / f"{name}.json"
        assert main(["evaluate", str(run), "--data", str(tiny_builtin), "--json", str(out),
                     *extra]) == 0
        maps[name] = json.loads(out.read_text())["directions"]
    assert maps["cpu"].keys() == maps["cuda"].keys() and len(maps["cpu"]) >= 6
    for direction, value in maps["cpu"].items():
        assert abs(maps["cuda"][direction] - value) <= 0.02, direction
        assert abs(maps["cuda-fp32"][direction] - value) <= 1e-3, direction


def test_one_rank_nccl_ddp_step(tiny_builtin: Path, tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    worker = Path(__file__).with_name("ddp_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1",
           f"--master_port={port}", "--master_addr=127.0.0.1", str(worker), str(tiny_builtin),
           str(tmp_path / "run"), str(tmp_path), *GPU, "epochs=1", "sync_bn=true",
           "accum_steps=2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "rank 0: wrapped in DistributedDataParallel" in proc.stdout
    assert "cuda:0" in proc.stdout and "sync_bn" in proc.stdout  # the run's start line
    assert "destroy_process_group" not in proc.stderr  # NCCL warns when it was left
    weights = load_file(str(tmp_path / "rank0.safetensors"))
    assert all(torch.isfinite(v).all() for v in weights.values())


def test_compiled_halves_train_on_cuda(tiny_builtin: Path, tmp_path: Path):
    result = fit(_cfg("epochs=1", "compile=true"), tiny_builtin, tmp_path / "run",
                 progress=False, device="cuda")
    assert torch.isfinite(torch.tensor(result.history[0]["loss"]))
    weights, _ = load_checkpoint(tmp_path / "run")
    assert not any(k.startswith("_orig_mod") or "._orig_mod." in k for k in weights)
