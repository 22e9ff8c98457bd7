"""``torchrun -m dcinet evaluate|embed`` with 2 gloo ranks on the CPU: the items are shared, the
results equal one process's, bit for bit (same batches, one thread each), and embed resumes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # the same kernels in every process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dcinet(*args: str, ranks: int = 1) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "dcinet"] if ranks == 1 else [
        sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={ranks}",
        f"--master_port={_free_port()}", "--master_addr=127.0.0.1", "-m", "dcinet"]
    proc = subprocess.run([*launcher, *args], capture_output=True, text=True, timeout=600, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_two_ranks_evaluate_as_one_process(tiny_run: Path, tiny_builtin: Path, tmp_path: Path):
    results = {}
    for ranks in (1, 2):
        out = tmp_path / f"r{ranks}"
        # batch 3: 8 items per modality make batches of 3, 3, 2, dealt to the ranks in turn
        proc = _dcinet("evaluate", str(tiny_run), "--data", str(tiny_builtin), "--device", "cpu",
                       "--batch-size", "3", "--json", str(out / "result.json"),
                       "--save-features", str(out / "features"), ranks=ranks)
        results[ranks] = json.loads((out / "result.json").read_text())
        assert proc.stdout.count("Bimodal") <= 1  # one table, printed by rank 0
    assert results[1] == results[2]
    for modality in ("image", "audio", "text"):
        one = np.load(tmp_path / "r1" / "features" / f"{modality}_features.npy")
        two = np.load(tmp_path / "r2" / "features" / f"{modality}_features.npy")
        assert one.shape == (8, 4)
        np.testing.assert_array_equal(one, two)


def test_two_ranks_embed_as_one_process_and_resume(tiny_run: Path, tiny_builtin: Path,
                                                   tmp_path: Path):
    common = ["--data", str(tiny_builtin), "--device", "cpu", "--batch-size", "2",
              "--chunk-size", "2"]
    _dcinet("embed", str(tiny_run), "--out", str(tmp_path / "one"), *common)
    two = tmp_path / "two"
    _dcinet("embed", str(tiny_run), "--out", str(two), *common, ranks=2)
    for modality in ("image", "audio", "text"):
        a, b = (np.load(d / f"{modality}.npy") for d in (tmp_path / "one", two))
        np.testing.assert_array_equal(a, b)
        assert (tmp_path / "one" / f"{modality}.jsonl").read_text() == \
            (two / f"{modality}.jsonl").read_text()
    manifest = json.loads((two / "embed.json").read_text())
    assert manifest["complete"] and not (two / "chunks").exists()

    # a rank's part resumes: drop the assembled files, keep every chunk but one of rank 1
    part = tmp_path / "part"
    _dcinet("embed", str(tiny_run), "--out", str(part), *common, ranks=2)
    stored = json.loads((part / "embed.json").read_text())
    for modality in ("image", "audio", "text"):
        (part / f"{modality}.npy").unlink()
        (part / f"{modality}.jsonl").unlink()
    (part / "embed.json").write_text(json.dumps({"job": stored["job"], "complete": False}))
    chunks = part / "chunks"
    chunks.mkdir()
    for modality in ("image", "audio", "text"):
        rows = np.load(tmp_path / "one" / f"{modality}.npy")
        for start in range(0, len(rows), 2):
            if (modality, start) != ("audio", 2):  # chunk 1 of audio (rank 1's) is missing
                np.save(chunks / f"{modality}-{start:012d}.npy", rows[start:start + 2])
    _dcinet("embed", str(tiny_run), "--out", str(part), *common, ranks=2)
    for modality in ("image", "audio", "text"):
        np.testing.assert_array_equal(np.load(part / f"{modality}.npy"),
                                      np.load(tmp_path / "one" / f"{modality}.npy"))
