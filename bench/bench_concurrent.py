"""Benchmark: two ``dcinet train`` runs at once against one alone, with the CLI's thread settings.

The built-in dataset (``dcinet data synth``, ``--classes`` x ``--per-class``) is trained with
``cpu-tiny`` at the test suite's small sizes (64 px, batch 4 per modality, no loader workers) for
``--epochs`` epochs: once alone, then twice at once (two ``dcinet train`` processes started
together). Each run's per-epoch seconds come from the ``seconds`` column of its ``metrics.csv``;
the figure of a run is its median epoch (the middle epochs are the ones both runs train through).

The runs see no OpenMP setting of the calling environment, so the CLI chooses (a short spin,
``GOMP_SPINCOUNT=1000``, with ``OMP_WAIT_POLICY=PASSIVE``, and one thread per usable core); then
the same is measured with immediate sleeps (``OMP_WAIT_POLICY=PASSIVE`` alone: libgomp then spins
0 times), with a long spin (``GOMP_SPINCOUNT=100000``) and with ``OMP_WAIT_POLICY=ACTIVE`` (always
spin), unless ``--no-active``. Two runs on the cores of one should each take at most about twice as
long as one alone (target ratio <= ~2); spinning threads of one run steal the other's time slices,
and a run alone is faster with them.

Run: ``python bench/bench_concurrent.py [--quick] [--epochs 3] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "dcinet.app.cli"]
# cpu-tiny at the test suite's small sizes: a few seconds per epoch on 2 cores.
TRAIN_OVERRIDES = ["img_size=64", "resize=72", "text_len=48", "batch_per_modality=4",
                   "samples_per_class=2", "num_workers=0", "log_every=1000"]
THREAD_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
RUN_LIMIT_S = 900  # a run still going after this long is killed and the benchmark fails


def cpu_model() -> str:
    """The ``model name`` of /proc/cpuinfo, or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def epoch_seconds(run_dir: Path) -> list[float]:
    """The ``seconds`` column of a run's ``metrics.csv``, one value per epoch."""
    with (run_dir / "metrics.csv").open(newline="") as f:
        return [float(row["seconds"]) for row in csv.DictReader(f)]


def train_together(data: Path, runs: list[Path], epochs: int, env: dict[str, str]
                   ) -> list[tuple[float, list[float]]]:
    """Start one ``dcinet train`` per run directory at once; (wall s, epoch seconds) of each."""
    logs = [run.with_name(f"{run.name}.stderr") for run in runs]
    started = time.perf_counter()
    procs = []
    for run, log in zip(runs, logs, strict=True):
        with log.open("w") as err:
            procs.append(subprocess.Popen(
                [*CLI, "train", "--config", "cpu-tiny", "--data", str(data), "--out", str(run),
                 "--quiet", f"epochs={epochs}", *TRAIN_OVERRIDES],
                env=env, stdout=subprocess.DEVNULL, stderr=err))
    walls: list[float | None] = [None] * len(procs)
    while None in walls:
        time.sleep(0.1)
        elapsed = time.perf_counter() - started
        for i, proc in enumerate(procs):
            if walls[i] is None and proc.poll() is not None:
                walls[i] = elapsed
            elif walls[i] is None and elapsed > RUN_LIMIT_S:
                proc.kill()
    for proc, log in zip(procs, logs, strict=True):
        if proc.wait():
            raise SystemExit(f"dcinet train failed ({proc.returncode}): "
                             f"{log.read_text().strip()[-2000:]}")
    return [(wall, epoch_seconds(run)) for wall, run in zip(walls, runs, strict=True)]


def measure(data: Path, work: Path, epochs: int, env: dict[str, str], label: str) -> dict:
    """One run alone, then two at once, under ``env``; median epoch seconds and their ratio."""
    (alone_wall, alone), = train_together(data, [work / f"{label}-alone"], epochs, env)
    pair = train_together(data, [work / f"{label}-a", work / f"{label}-b"], epochs, env)
    alone_s = statistics.median(alone)
    together_s = [statistics.median(seconds) for _, seconds in pair]
    figures = {
        "omp_waits": " ".join(f"{k}={env[k]}" for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
                              if k in env) or "dcinet's default",
        "alone_epoch_s": alone_s, "concurrent_epoch_s": together_s,
        "ratio": max(together_s) / alone_s,
        "alone_epochs_s": alone, "concurrent_epochs_s": [seconds for _, seconds in pair],
        "alone_wall_s": alone_wall, "concurrent_wall_s": [wall for wall, _ in pair],
    }
    print(f"{label}: alone {alone_s:.2f} s/epoch; two at once "
          f"{', '.join(f'{s:.2f}' for s in together_s)} s/epoch; ratio {figures['ratio']:.2f}x "
          f"(walls {alone_wall:.0f} s alone, "
          f"{', '.join(f'{w:.0f}' for w in figures['concurrent_wall_s'])} s together)", flush=True)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 epochs of 4 classes x 8 items, no spinning comparison")
    parser.add_argument("--classes", type=int, default=8)
    parser.add_argument("--per-class", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--no-active", action="store_true",
                        help="skip the comparisons with other waits (PASSIVE alone, long spins, ACTIVE)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--work", type=Path, help="keep the data and runs here (default: a temp "
                                                  "folder, removed)")
    args = parser.parse_args(argv)
    if args.quick:
        args.classes, args.per_class, args.epochs, args.no_active = 4, 8, 2, True

    work = args.work or Path(tempfile.mkdtemp(prefix="dcinet-concurrent-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    load_before = os.getloadavg()[0]
    print(f"{cpu_model()}, {len(os.sched_getaffinity(0))} usable cores; {args.classes} classes x "
          f"{args.per_class} items, {args.epochs} epochs; load average {load_before:.2f}", flush=True)
    try:
        data = work / "data"
        subprocess.run([*CLI, "data", "synth", "--out", str(data), "--classes", str(args.classes),
                        "--per-class", str(args.per_class)], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        policies = {"default": measure(data, work, args.epochs, env, "default")}
        if not args.no_active:
            for label, setting in (("passive", {"OMP_WAIT_POLICY": "PASSIVE"}),
                                   ("spin", {"GOMP_SPINCOUNT": "100000"}),
                                   ("active", {"OMP_WAIT_POLICY": "ACTIVE"})):
                policies[label] = measure(data, work, args.epochs, {**env, **setting}, label)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    figures = {
        "cpu": cpu_model(), "usable_cores": len(os.sched_getaffinity(0)),
        "classes": args.classes, "per_class": args.per_class, "epochs": args.epochs,
        "quick": args.quick, "train_overrides": TRAIN_OVERRIDES, "policies": policies,
        "load_average": [load_before, os.getloadavg()[0]],
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
