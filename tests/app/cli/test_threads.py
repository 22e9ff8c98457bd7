"""The CLI's thread settings: short OpenMP spins, then sleep, and one thread per usable core, unless set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dcinet.app import cli
from dcinet.app.cli import configure_threads, usable_cores

# Runs the real entry point (torch not yet imported), then reports what torch ended up with.
CHILD = """
import json, os, sys
from dcinet.app.cli import main
code = main(["data", "synth", "--out", sys.argv[1], "--classes", "2", "--per-class", "2"])
import torch
print(json.dumps({"code": code, "policy": os.environ.get("OMP_WAIT_POLICY"),
                  "spin": os.environ.get("GOMP_SPINCOUNT"),
                  "omp_threads": os.environ.get("OMP_NUM_THREADS"),
                  "torch_threads": torch.get_num_threads()}))
"""


def _child(tmp_path: Path, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path / "data")], env={**clean, **env},
                          capture_output=True, text=True, timeout=120, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_command_sets_short_spins_and_one_thread_per_usable_core(tmp_path: Path):
    seen = _child(tmp_path)
    cores = len(os.sched_getaffinity(0))
    assert seen["code"] == 0 and (seen["policy"], seen["spin"]) == ("PASSIVE", str(cli.SPIN_COUNT))
    assert int(seen["omp_threads"]) == seen["torch_threads"] == usable_cores() <= cores


def test_a_command_keeps_the_users_settings(tmp_path: Path):
    seen = _child(tmp_path, OMP_WAIT_POLICY="ACTIVE", OMP_NUM_THREADS="1")
    assert (seen["policy"], seen["spin"], seen["omp_threads"], seen["torch_threads"]) == (
        "ACTIVE", None, "1", 1)


WAITS = {"GOMP_SPINCOUNT": "1000", "OMP_WAIT_POLICY": "PASSIVE"}


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, {**WAITS, "OMP_NUM_THREADS": "3"}),
    ({"OMP_WAIT_POLICY": "active"}, {"OMP_NUM_THREADS": "3"}),
    ({"GOMP_SPINCOUNT": "1000"}, {"OMP_NUM_THREADS": "3"}),
    ({"GOMP_SPINCOUNT": "0"}, {"OMP_NUM_THREADS": "3"}),
    ({"OMP_NUM_THREADS": "1"}, WAITS),
    ({"MKL_NUM_THREADS": "2"}, WAITS),
    ({"OMP_WAIT_POLICY": "", "OMP_NUM_THREADS": "4"}, {}),
])
def test_configure_threads_sets_only_what_the_user_left_unset(environ, expected, monkeypatch):
    monkeypatch.setattr(cli, "usable_cores", lambda: 3)
    before = dict(environ)
    assert configure_threads(environ) == expected
    assert environ == {**before, **expected}


@pytest.mark.parametrize(("cpu_max", "expected"), [
    ("max 100000\n", None), ("150000 100000\n", 2), ("50000 100000\n", 1), ("garbage", None)])
def test_usable_cores_follows_the_cgroup_quota(cpu_max, expected, tmp_path: Path, monkeypatch):
    quota = tmp_path / "cpu.max"
    quota.write_text(cpu_max)
    monkeypatch.setattr(cli, "CGROUP_CPU_MAX", quota)
    cores = len(os.sched_getaffinity(0))
    assert usable_cores() == (cores if expected is None else min(cores, expected))
