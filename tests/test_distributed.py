"""Devices: ``--device auto|cpu|cuda[:N]``, refused in one line where it is not there."""

from __future__ import annotations

import pytest
import torch

from dcinet.app.cli import main
from dcinet.distributed import resolve_device
from dcinet.errors import DcinetError


def test_auto_and_cpu():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device(" CPU ") == torch.device("cpu")


@pytest.mark.parametrize("spec", ["gpu", "cuda:", "cpu:0", "auto:1", "cuda:x", ""])
def test_unknown_values_are_refused(spec):
    with pytest.raises(DcinetError, match="--device must be auto, cpu, cuda or cuda:N"):
        resolve_device(spec)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("spec", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_without_cuda_is_one_line(spec):
    with pytest.raises(DcinetError, match="CUDA is not available on this machine"):
        resolve_device(spec)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.gpu
def test_cuda_devices():
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda", local_rank=0) == torch.device("cuda", 0)
    with pytest.raises(DcinetError, match="CUDA device"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
@pytest.mark.parametrize("verb", [
    ["evaluate", "RUN"], ["embed", "RUN", "--out", "OUT"], ["train", "--data", "D", "--out", "OUT",
                                                            "--config", "cpu-tiny"],
])
def test_every_model_verb_refuses_a_missing_gpu(verb, tmp_path, capsys):
    args = [a.replace("RUN", str(tmp_path / "run")).replace("OUT", str(tmp_path / "out"))
            .replace("D", str(tmp_path)) if a in ("RUN", "OUT", "D") else a for a in verb]
    assert main([*args, "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDA is not available" in err[0]
    assert not (tmp_path / "out").exists()


def test_torchrun_with_one_rank_joins_a_group_and_leaves_it_at_exit(monkeypatch):
    """Under torchrun, even as its only rank, a process joins a (gloo) group, so training wraps
    the model in DDP; the group is destroyed at exit (registered with atexit), at most once."""
    import atexit
    import socket

    import torch.distributed as torch_dist

    from dcinet.distributed import init_distributed, shutdown

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"TORCHELASTIC_RUN_ID": "test", "WORLD_SIZE": "1", "RANK": "0", "LOCAL_RANK": "0",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    at_exit = []
    monkeypatch.setattr(atexit, "register", at_exit.append)
    assert not torch_dist.is_initialized()
    try:
        info = init_distributed("cpu")
        assert info.ddp and not info.enabled and torch_dist.is_initialized()
        assert torch_dist.get_backend() == "gloo" and at_exit == [shutdown]
        assert init_distributed("cpu").ddp and at_exit == [shutdown]  # joined once
    finally:
        shutdown()
    assert not torch_dist.is_initialized()
    shutdown()  # again: nothing to destroy, no error
    monkeypatch.delenv("TORCHELASTIC_RUN_ID")
    assert not init_distributed("cpu").ddp  # WORLD_SIZE=1 without torchrun: no group
    assert not torch_dist.is_initialized()
