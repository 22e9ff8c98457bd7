"""``ablate --jobs N``: a grid's runs trained side by side, each in its own process."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dcinet.app.cli import main
from dcinet.config import load_config, parse_overrides
from dcinet.errors import DcinetError
from dcinet.train.loop import fit
from dcinet.train.parallel import check_jobs, threads_per_job, train_runs


def weights(run_dir: Path) -> torch.Tensor:
    """A finished tiny run's weights, flattened into one vector."""
    state = load_file(run_dir / "model-1.safetensors")
    return torch.cat([state[k].double().flatten() for k in sorted(state)])


def test_jobs_are_refused_below_one_and_off_the_cpu():
    check_jobs(1, torch.device("cuda"), distributed=True)  # one job runs anywhere
    check_jobs(4, torch.device("cpu"), distributed=False)
    with pytest.raises(DcinetError, match="--jobs must be >= 1, not 0"):
        check_jobs(0, torch.device("cpu"), distributed=False)
    with pytest.raises(DcinetError, match="side by side on the CPU; on cuda leave it at 1"):
        check_jobs(2, torch.device("cuda"), distributed=False)
    with pytest.raises(DcinetError, match="; under torchrun leave it at 1"):
        check_jobs(2, torch.device("cpu"), distributed=True)
    assert threads_per_job(10 ** 6) == 1


def test_bad_jobs_is_one_line_and_exit_2_before_any_work(tiny_builtin: Path, tmp_path: Path,
                                                          capsys):
    out = tmp_path / "grid"
    code = main(["ablate", "--grid", "components", "--config", "cpu-tiny", "--data",
                 str(tiny_builtin), "--out", str(out), "--jobs", "0"])
    assert code == 2 and not out.exists()
    assert capsys.readouterr().err.strip() == "error: --jobs must be >= 1, not 0"


@pytest.mark.slow
def test_a_grid_trained_two_at_a_time_is_the_grid_trained_in_turn(tiny_builtin: Path,
                                                                  tmp_path: Path, tiny_overrides,
                                                                  capsys):
    out = tmp_path / "grid"
    assert main(["ablate", "--grid", "components", "--config", "cpu-tiny", "--data",
                 str(tiny_builtin), "--out", str(out), "--row", "resnet10t+CMSI+CMCI", "--seeds",
                 "2", "--jobs", "2", *tiny_overrides]) == 0
    printed = capsys.readouterr().out
    folders = ["resnet10t-s0", "resnet10t-s1", "resnet10t_CMSI_CMCI-s0", "resnet10t_CMSI_CMCI-s1"]
    for name in folders:
        assert f"ready: {out / name} (" in printed  # trained by a worker ...
        assert f"reusing the finished run in {out / name}" in printed  # ... evaluated after
    assert "| resnet10t+CMSI+CMCI |" in (out / "components.md").read_text()

    # the worker's run is the run one process trains with the same threads
    cfg = load_config("cpu-tiny", parse_overrides(tiny_overrides))
    cfg = replace(cfg, interaction="cmsi+cmci", seed=1).validate()
    threads = torch.get_num_threads()
    torch.set_num_threads(threads_per_job(2))
    try:
        fit(cfg, tiny_builtin, tmp_path / "in-turn", progress=False, device="cpu")
    finally:
        torch.set_num_threads(threads)
    in_turn, worker = weights(tmp_path / "in-turn"), weights(out / folders[3])
    assert torch.allclose(in_turn, worker, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(worker, weights(out / folders[2]), rtol=1e-3, atol=1e-4)  # seed 0

    # a worker's error reaches the caller as one DcinetError naming the run
    with pytest.raises(DcinetError, match="resnet10t_CMSI_CMCI-s1 holds a finished run of another "
                                          r"configuration \(lr"):
        train_runs([(replace(cfg, lr=cfg.lr * 2), out / folders[3])], tiny_builtin, jobs=2)
