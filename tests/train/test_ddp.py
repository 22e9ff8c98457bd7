"""DDP on the CPU (gloo, torchrun): two ranks end with identical weights and share the global
batch; one rank runs the DDP path too (a group, the wrapper, accumulation's no_sync)."""

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(ranks: int, tmp_path: Path, data: Path, overrides: list[str]):
    worker = Path(__file__).with_name("ddp_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={ranks}",
           f"--master_port={_free_port()}", "--master_addr=127.0.0.1", str(worker),
           str(data), str(tmp_path / "run"), str(tmp_path), *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def test_one_rank_under_torchrun_trains_through_ddp(tiny_builtin: Path, tmp_path: Path,
                                                    tiny_overrides):
    proc = _torchrun(1, tmp_path, tiny_builtin, [*tiny_overrides, "accum_steps=2"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wrapped in DistributedDataParallel" in proc.stdout
    weights = load_file(str(tmp_path / "rank0.safetensors"))
    assert all(torch.isfinite(v).all() for v in weights.values())
    assert (tmp_path / "run" / "checkpoint.json").exists()
    assert "destroy_process_group" not in proc.stderr  # destroyed at exit: no warning about it


@pytest.mark.slow
def test_two_gloo_ranks_end_with_identical_weights(tiny_builtin: Path, tmp_path: Path,
                                                   tiny_overrides):
    proc = _torchrun(2, tmp_path, tiny_builtin, tiny_overrides)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = load_file(str(tmp_path / "rank0.safetensors"))
    b = load_file(str(tmp_path / "rank1.safetensors"))
    assert a.keys() == b.keys() and len(a) > 10
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the run directory was written once, by rank 0
    assert (tmp_path / "run" / "checkpoint.json").exists()
    assert "epoch" in (tmp_path / "run" / "metrics.csv").read_text()
    # batch_per_modality is the global batch: each rank takes b / 2 per modality, and the epoch
    # has the steps of one process; run.json counts the maps of both ranks
    from dcinet.config import load_config
    from dcinet.data.readers import read_configured
    from dcinet.data.sampler import MultiModalBatchSampler

    cfg = load_config("cpu-tiny", tiny_overrides)
    train = [s for s in read_configured(tiny_builtin, cfg).samples if s.split == "train"]
    half = cfg.batch_per_modality // 2
    steps = len(MultiModalBatchSampler(train, half, class_aware=True,
                                       samples_per_class=cfg.samples_per_class, world_size=2))
    one_process = len(MultiModalBatchSampler(train, cfg.batch_per_modality, class_aware=True,
                                             samples_per_class=cfg.samples_per_class))
    assert steps == one_process
    assert f"global batch {3 * cfg.batch_per_modality} ({cfg.batch_per_modality} per modality x 3 " \
           f"modalities; {half} per modality on each of 2 ranks), {steps} steps per epoch" in proc.stdout
    fired = json.loads((tmp_path / "run" / "run.json").read_text())["interactions_fired"]
    for interaction in ("cmsi", "cmci"):
        assert {c["maps"] for c in fired[interaction].values()} == {2 * steps * half}
    assert fired["cmci"]["image"]["changed_fraction"] == 1.0  # class-aware triples, paper mode
    assert fired["cmci"]["audio"]["changed"] == fired["cmci"]["text"]["changed"] == 0
