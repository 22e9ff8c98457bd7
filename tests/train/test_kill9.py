"""``kill -9`` at the worst moments: mid-epoch training processes and checkpoint writes.

A real ``dcinet train`` process is SIGKILLed (before its first checkpoint, then mid-epoch 2) and
resumed with ``--resume``; its final weights must equal, bit for bit, those of an uninterrupted
run. Checkpoint writes are SIGKILLed at each step of :func:`~dcinet.train.checkpoint.save_checkpoint`;
the previous checkpoint must stay loadable and the litter must not break (and must not survive)
the next save.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import torch

from dcinet.rundir import read_pointer
from dcinet.train.checkpoint import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.slow

# cpu-tiny at 32 px (CMSI after stage 3 keeps 2 x 2 maps); one torch thread per process, so the
# uninterrupted and the interrupted runs can share the two cores and still compute identically.
RUN_ARGS = ["epochs=2", "img_size=32", "resize=36", "layer=3", "log_every=1"]
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
PROCESS_LIMIT_S = 240  # a process still running after this long is killed and the test fails


def train_command(data: Path, run: Path, overrides: list[str], resume: bool = False) -> list[str]:
    return [sys.executable, "-m", "dcinet.app.cli", "train", "--config", "cpu-tiny", "--data", str(data),
            "--out", str(run), *(["--resume"] if resume else []), *overrides]


def run_to_end(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, env=CHILD_ENV, capture_output=True, text=True,
                          timeout=PROCESS_LIMIT_S)


def kill_when(command: list[str], pattern: str) -> list[str]:
    """Start ``command``, SIGKILL it as soon as a stdout line matches ``pattern``; its lines."""
    proc = subprocess.Popen(command, env=CHILD_ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(PROCESS_LIMIT_S, proc.kill)
    watchdog.start()
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line)
            if re.search(pattern, line):
                os.kill(proc.pid, signal.SIGKILL)
                break
        proc.wait(timeout=30)
    finally:
        watchdog.cancel()
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, "".join(lines)
    return lines


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_kill9_mid_training_then_resume_equals_uninterrupted_run(tiny_builtin: Path, tmp_path: Path,
                                                                 tiny_overrides):
    overrides = [*tiny_overrides, *RUN_ARGS]
    straight = subprocess.Popen(train_command(tiny_builtin, tmp_path / "straight", overrides),
                                env=CHILD_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
    run = tmp_path / "killed"
    try:
        # 1. killed in epoch 1, before any checkpoint: --resume starts the run over
        kill_when(train_command(tiny_builtin, run, overrides), r"^epoch 1/2 step 1/")
        assert not (run / "checkpoint.json").exists()
        # 2. resumed, then killed after step 1 of epoch 2, with checkpoint 1 on disk
        lines = kill_when(train_command(tiny_builtin, run, overrides, resume=True),
                          r"^epoch 2/2 step 1/")
        assert any("no checkpoint yet" in line for line in lines)
        assert read_pointer(run)["epoch"] == 1
        load_checkpoint(run)
        # 3. what a kill inside a later save leaves behind must not get in the way
        litter = [run / f".model-2.safetensors.tmp-{2**22 + 1}", run / f".state-2.pt.tmp-{2**22 + 1}",
                  run / ".checkpoint.json.tmp-7", run / ".checkpoint.json.tmp-7-x1y_2z",
                  run / "model-2.safetensors"]
        for path in litter:
            path.write_bytes(b"half-written garbage")
        finished = run_to_end(train_command(tiny_builtin, run, overrides, resume=True))
        assert finished.returncode == 0, finished.stderr
        assert "resuming" in finished.stdout and "after epoch 1" in finished.stdout
        assert straight.wait(timeout=PROCESS_LIMIT_S) == 0, straight.stderr.read()
    finally:
        if straight.poll() is None:
            straight.kill()
            straight.wait()
        straight.stderr.close()
    assert read_pointer(run)["epoch"] == 2
    assert not any(path.exists() for path in litter[:3])
    assert sorted(p.name for p in run.iterdir() if "model" in p.name or "state" in p.name) == [
        "model-2.safetensors", "state-2.pt"]
    assert_same_weights(load_checkpoint(tmp_path / "straight")[0], load_checkpoint(run)[0])


# A child process that saves epoch 2 over a checkpoint of epoch 1 and SIGKILLs itself the moment
# save_checkpoint calls os.replace (dst) or Path.unlink (self) on the named file.
KILL_DURING_SAVE = textwrap.dedent("""
    import os, pathlib, signal, sys
    import torch
    from dcinet.train.checkpoint import save_checkpoint

    run, call, target = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]

    def deadly(fn, name_of):
        def wrapper(*args, **kwargs):
            if pathlib.Path(name_of(*args)).name == target:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*args, **kwargs)
        return wrapper

    if call == "replace":
        os.replace = deadly(os.replace, lambda src, dst: dst)
    else:
        pathlib.Path.unlink = deadly(pathlib.Path.unlink, lambda path: path)
    torch.manual_seed(2)
    save_checkpoint(run, torch.nn.Linear(4, 3), {"note": "second"}, epoch=2)
    raise SystemExit("not killed")
""")


def _linear(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Linear(4, 3)


@pytest.mark.parametrize(("call", "target", "pointer_after_kill"), [
    ("replace", "model-2.safetensors", 1),  # weights written to their temp file only
    ("replace", "state-2.pt", 1),           # weights in place, state in its temp file
    ("replace", "checkpoint.json", 1),      # both in place, new pointer in its temp file
    ("unlink", "model-1.safetensors", 2),   # pointer moved, old pair not yet deleted
])
def test_kill9_during_checkpoint_write(tmp_path: Path, call: str, target: str,
                                       pointer_after_kill: int):
    first = _linear(1)
    save_checkpoint(tmp_path, first, {"note": "first"}, epoch=1)
    child = subprocess.run([sys.executable, "-c", KILL_DURING_SAVE, str(tmp_path), call, target],
                           env=CHILD_ENV, capture_output=True, text=True, timeout=PROCESS_LIMIT_S)
    assert child.returncode == -signal.SIGKILL, child.stderr
    weights, state = load_checkpoint(tmp_path)
    assert state["epoch"] == pointer_after_kill
    expected = first if pointer_after_kill == 1 else _linear(2)
    assert_same_weights(weights, expected.state_dict())
    assert len(list(tmp_path.iterdir())) > 3  # the kill left something behind

    third = _linear(3)
    save_checkpoint(tmp_path, third, {"note": "third"}, epoch=3)
    weights, state = load_checkpoint(tmp_path)
    assert state["note"] == "third"
    assert_same_weights(weights, third.state_dict())
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint.json", "model-3.safetensors", "state-3.pt"]
