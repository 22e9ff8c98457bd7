"""Two processes with the gloo backend on CPU (torchrun) end with identical weights."""

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


@pytest.mark.slow
def test_two_gloo_ranks_end_with_identical_weights(tiny_builtin: Path, tmp_path: Path,
                                                   tiny_overrides):
    worker = Path(__file__).with_name("ddp_worker.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={_free_port()}", "--master_addr=127.0.0.1", str(worker),
           str(tiny_builtin), str(tmp_path / "run"), str(tmp_path), *tiny_overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = load_file(str(tmp_path / "rank0.safetensors"))
    b = load_file(str(tmp_path / "rank1.safetensors"))
    assert a.keys() == b.keys() and len(a) > 10
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the run directory was written once, by rank 0
    assert (tmp_path / "run" / "checkpoint.json").exists()
    assert "epoch" in (tmp_path / "run" / "metrics.csv").read_text()
    # run.json counts the maps of both ranks: world size x steps per rank x b per modality
    from dcinet.config import load_config
    from dcinet.data.readers import read_configured
    from dcinet.data.sampler import MultiModalBatchSampler

    cfg = load_config("cpu-tiny", tiny_overrides)
    train = [s for s in read_configured(tiny_builtin, cfg).samples if s.split == "train"]
    steps = len(MultiModalBatchSampler(train, cfg.batch_per_modality, class_aware=True,
                                       samples_per_class=cfg.samples_per_class, world_size=2))
    fired = json.loads((tmp_path / "run" / "run.json").read_text())["interactions_fired"]
    for interaction in ("cmsi", "cmci"):
        assert {c["maps"] for c in fired[interaction].values()} == {2 * steps * cfg.batch_per_modality}
    assert fired["cmci"]["image"]["changed_fraction"] == 1.0  # class-aware triples, paper mode
    assert fired["cmci"]["audio"]["changed"] == fired["cmci"]["text"]["changed"] == 0
