"""The paper preset through the real command line on one GPU: train, ``kill -9``, ``--resume``,
``evaluate --device cuda``; figures as JSON.

On a synthetic dataset made by ``dcinet data synth`` (the most classes it has, 448 px inputs
after the preset's resize and crop): ``dcinet train --config paper`` for two epochs (no hub
weights: the GPU machine has no network), killed with SIGKILL once the first checkpoint is written,
resumed with ``--resume`` to the end; then ``dcinet evaluate --device cuda`` on the test split, its
seconds per item projected to PKU FG-XMedia's 15,794 test items (decoding included: the projection
holds while decoding keeps pace). ``--device cpu --per-class 4 --img-size 64`` smoke-tests it on
any machine. Run with ``bash bench/gpu.sh``.

The JSON is rewritten after every step, so what was measured survives a later step's failure; a
failure is recorded as ``error`` (the step and its message) and the script exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PKU_TEST_ITEMS = 5794 + 6000 + 4000


def dcinet(*args: str, timeout: float) -> float:
    """Run ``python -m dcinet ARGS``; returns its wall seconds (raises on failure)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dcinet", *args], check=True, timeout=timeout, cwd=REPO)
    return time.perf_counter() - started


def kill_after_first_checkpoint(cmd: list[str], run: Path, timeout: float) -> float:
    """Start ``cmd``, SIGKILL it once ``run`` holds its first checkpoint; returns the seconds."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO)
    try:
        while not (run / "checkpoint.json").exists():
            if proc.poll() is not None:
                raise RuntimeError(f"training ended (exit {proc.returncode}) before a checkpoint")
            if time.perf_counter() - started > timeout:
                raise TimeoutError("no checkpoint in time")
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--classes", type=int, default=48)
    ap.add_argument("--per-class", type=int, default=12)
    ap.add_argument("--img-size", type=int, default=448)
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--json", help="write the figures as JSON")
    args = ap.parse_args()
    out: dict = {"device": args.device, "classes": args.classes, "per_class": args.per_class}
    try:
        check(args, out)
    except (subprocess.SubprocessError, OSError, RuntimeError, TimeoutError, KeyError,
            ValueError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
        print(f"gpu_check failed: {out['error']}", file=sys.stderr)
    finally:
        for k, v in out.items():
            print(f"{k:>28}: {v:.3f}" if isinstance(v, float) else f"{k:>28}: {v}")
        _write(out, args.json)
    sys.exit(1 if "error" in out else 0)


def _write(out: dict, path: str | None) -> None:
    if path:
        Path(path).write_text(json.dumps(out, indent=1))


def check(args: argparse.Namespace, out: dict) -> None:
    """The steps, each adding its figures to ``out`` (written to ``--json`` at once)."""
    work = Path(tempfile.mkdtemp(prefix="dcinet-gpu-check-"))
    data, run = work / "data", work / "run"
    out["synth_s"] = dcinet("data", "synth", "--out", str(data), "--classes", str(args.classes),
                            "--per-class", str(args.per_class), timeout=300)
    _write(out, args.json)
    cfg = ["--config", "paper", "--data", str(data), "--out", str(run), "--device", args.device,
           "--quiet", "epochs=2", "pretrained=null", f"num_workers={args.workers}",
           f"img_size={args.img_size}", f"resize={max(args.img_size, round(args.img_size * 510 / 448))}"]
    train = [sys.executable, "-m", "dcinet", "train", *cfg]
    out["until_killed_s"] = kill_after_first_checkpoint(train, run, timeout=600)
    _write(out, args.json)
    out["resume_s"] = dcinet("train", *cfg, "--resume", timeout=600)
    pointer = json.loads((run / "checkpoint.json").read_text())
    rows = (run / "metrics.csv").read_text().splitlines()[1:]
    out["resumed_to_epoch"], out["metrics_rows"] = pointer["epoch"], len(rows)
    out["resume_ok"] = pointer["epoch"] == 2 and len(rows) == 2
    _write(out, args.json)
    result = work / "result.json"
    out["evaluate_s"] = dcinet("evaluate", str(run), "--data", str(data), "--device", args.device,
                               "--workers", str(args.workers), "--batch-size", "128", "--json",
                               str(result), timeout=600)
    items = sum(json.loads(result.read_text())["counts"].values())
    out["evaluate_items"] = items
    out["projected_pku_evaluate_min"] = out["evaluate_s"] / items * PKU_TEST_ITEMS / 60
    if not out["resume_ok"]:
        raise RuntimeError(f"the resumed run ended at epoch {pointer['epoch']} with "
                           f"{len(rows)} metrics rows, not 2 and 2")


if __name__ == "__main__":
    main()
