"""bench/gpu.sh can fail and keeps what it measured: every step runs, each exit code and every
figure written before a failure reach the summary, the script exits 1; its steps fit its budget.
Run on the CPU with a stand-in for Python that plays each step's part."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GPU_SH = REPO / "bench" / "gpu.sh"

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">
<testcase classname="tests.train.test_gpu" name="test_amp_steps_of_dcinet[bf16]" time="1"/>
<testcase classname="tests.train.test_gpu" name="test_one_rank_nccl_ddp_step" time="2">
<failure message="NCCL error">boom</failure></testcase>
<testcase classname="tests.train.test_gpu" name="test_amp_steps_of_dcinet[fp16]" time="0">
<skipped message="no"/></testcase>
</testsuite></testsuites>"""

STAND_IN = f"""#!/usr/bin/env bash
# the part each step's Python plays: measure something, then fail
case "$1" in
  -c) echo "torch 9.9 12.8 True"; exit 0 ;;
  bench/gpu_throughput.py)
    echo '{{"device": "Fake GPU", "median_step_s": 0.2, "dcinet_over_plain": 1.25, "loop_over_model": 0.95}}' > "${{@: -1}}"
    echo "CUDA out of memory" >&2; exit 1 ;;
  bench/gpu_check.py)
    echo '{{"device": "cuda", "synth_s": 3.0, "projected_pku_evaluate_min": 4.5}}' > "${{@: -1}}"
    exit 3 ;;
  -m) for a in "$@"; do case "$a" in --junitxml=*) cat > "${{a#--junitxml=}}" <<'XML'
{JUNIT}
XML
    esac; done; exit 1 ;;
  bench/gpu_summary.py) exec {sys.executable} "$@" ;;
esac
exit 99
"""


def test_every_step_runs_and_is_recorded_when_the_earlier_ones_fail(tmp_path: Path):
    python = tmp_path / "python"
    python.write_text(STAND_IN)
    python.chmod(0o755)
    out = tmp_path / "gpu.json"
    proc = subprocess.run(["bash", str(GPU_SH), str(out)], capture_output=True, text=True,
                          env={**os.environ, "PY": str(python)}, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = json.loads(out.read_text())
    assert summary["exit_codes"] == {"env": 0, "throughput": 1, "cli": 3, "tests": 1}
    # the figures measured before each failure are kept
    assert summary["median_step_s"] == 0.2 and summary["device"] == "Fake GPU"
    assert summary["cli"] == {"device": "cuda", "synth_s": 3.0, "projected_pku_evaluate_min": 4.5}
    assert summary["tests"] == {
        "tests.train.test_gpu::test_amp_steps_of_dcinet[bf16]": "passed",
        "tests.train.test_gpu::test_one_rank_nccl_ddp_step": "failed",
        "tests.train.test_gpu::test_amp_steps_of_dcinet[fp16]": "skipped"}
    verdicts = {name: (value, verdict) for name, value, verdict in summary["targets"]}
    assert verdicts["DCINet step <= 1.10 x the plain network's"] == ("1.250", "missed")
    assert verdicts["real loop >= 90 % of the model-only step rate"] == ("0.950", "met")
    assert verdicts["bf16 at least as fast as fp16 (bf16 / fp16 step time <= 1)"][1] == "not measured"
    md = out.with_suffix(".md").read_text()
    assert "| throughput | 1 |" in md and "| cli | 3 |" in md and "| `tests.train.test_gpu::" \
        "test_one_rank_nccl_ddp_step` | failed |" in md
    logs = tmp_path / "gpu-logs"
    assert "CUDA out of memory" in (logs / "throughput.log").read_text()
    assert "CUDA out of memory" in proc.stdout  # each step's output is shown too
    assert "FAILED: step throughput (exit 1), step cli (exit 3), step tests (exit 1), test " \
           "tests.train.test_gpu::test_one_rank_nccl_ddp_step (failed)" in proc.stdout


def test_a_clean_run_exits_0(tmp_path: Path):
    python = tmp_path / "python"
    python.write_text(STAND_IN.replace("exit 1 ;;", "exit 0 ;;").replace("exit 3 ;;", "exit 0 ;;")
                      .replace('<failure message="NCCL error">boom</failure>', ""))
    python.chmod(0o755)
    proc = subprocess.run(["bash", str(GPU_SH), str(tmp_path / "gpu.json")], capture_output=True,
                          text=True, env={**os.environ, "PY": str(python)}, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all passed" in proc.stdout


def test_the_steps_fit_the_budget_and_nothing_is_swallowed():
    script = GPU_SH.read_text()
    code = "\n".join(line for line in script.splitlines() if not line.lstrip().startswith("#"))
    budget = int(re.search(r"^BUDGET_S=(\d+)$", code, re.M)[1])
    limits = [int(s) for s in re.findall(r"^step \w+ (\d+) ", code, re.M)]
    grace = int(re.search(r"--kill-after=(\d+)", code)[1])
    assert len(limits) == 4 and sum(limits) + grace * len(limits) + 10 <= budget <= 480
    assert "set -e" not in code and "|| true" not in code and "| tail" not in code
