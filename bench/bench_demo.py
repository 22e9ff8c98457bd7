"""Benchmark: ``dcinet demo`` end to end, and the quality of the demo's config over seeds.

1. ``dcinet demo`` in its own process, as a newcomer's first run: a new data folder, run folder and
   spectrogram cache (``DCINET_CACHE``), ``--repeats`` times (default 3), each from nothing.
   Figures: the median and every wall time, the largest peak RSS, and the demo's mAPs (which
   every repeat must reproduce: ``repeats_match``).
2. Quality: for every seed of ``--seeds`` (default 0, 1, 2), ``dcinet train --config cpu-tiny
   seed=N`` then ``dcinet evaluate`` on the demo's dataset; mean ± std of the average bimodal and
   multimodal mAP. Seed 0 is the demo's own run, trained again: its mAPs must equal the demo's
   (``seed0_matches_demo``), which checks that the demo is reproducible.

``key=value`` arguments override ``cpu-tiny`` in both parts (e.g. an earlier preset's values, to
measure a baseline on the same machine). ``--quick``: one epoch and seed 0 only, to check the
pipeline. Run: ``python bench/bench_demo.py [--quick] [--repeats 3] [--seeds 0,1,2] [--work DIR]
[--json FILE] [key=value ...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_concurrent import cpu_model

CLI = [sys.executable, "-m", "dcinet.app.cli"]
AVERAGES = ("average_bimodal", "average_multimodal")
DEMO_CHILD = (
    "import json, resource, sys\n"
    "from dcinet.app.cli import main\n"
    "code = main(sys.argv[2:])\n"
    "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
    "open(sys.argv[1], 'w').write(json.dumps({'peak_rss_mib': peak}))\n"
    "sys.exit(code)\n"
)


def run_demo(work: Path, overrides: list[str], env: dict[str, str]) -> dict:
    """A real ``dcinet demo`` in its own process: wall time, that process's peak RSS (MiB) and
    the demo's ``results.json``."""
    work.mkdir(parents=True, exist_ok=True)
    peak_file = work / "demo_peak.json"
    args = ["demo", "--data", str(work / "builtin"), "--out", str(work / "demo"), *overrides]
    print("$ dcinet", " ".join(args), flush=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", DEMO_CHILD, str(peak_file), *args], check=True, env=env)
    wall = time.perf_counter() - started
    return {"wall_s": wall, "peak_rss_mib": json.loads(peak_file.read_text())["peak_rss_mib"],
            "results": json.loads((work / "demo" / "results.json").read_text())}


def train_and_evaluate(work: Path, seed: int, overrides: list[str], env: dict[str, str]) -> dict:
    """``dcinet train --config cpu-tiny seed=N`` on the demo's dataset, then ``dcinet evaluate``;
    returns the evaluation's JSON."""
    run, result = work / "seeds" / f"s{seed}", work / "seeds" / f"s{seed}.json"
    train = ["train", "--config", "cpu-tiny", "--data", str(work / "builtin"), "--out", str(run),
             "--quiet", *overrides, f"seed={seed}"]
    print("$ dcinet", " ".join(train), flush=True)
    subprocess.run([*CLI, *train], check=True, env=env)
    subprocess.run([*CLI, "evaluate", str(run), "--json", str(result)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    return json.loads(result.read_text())


def summarise(per_seed: dict[int, dict]) -> dict:
    """Mean and standard deviation (0 for one seed) of each average mAP over the seeds."""
    out = {}
    for key in AVERAGES:
        values = [r[key] for r in per_seed.values()]
        out[key] = {"mean": statistics.mean(values),
                    "std": statistics.stdev(values) if len(values) > 1 else 0.0, "values": values}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="epochs=1, one demo, seed 0 only")
    parser.add_argument("--repeats", type=int, default=3,
                        help="demos from nothing, for the median wall time (default 3)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds")
    parser.add_argument("--work", type=Path, help="keep the data and runs here (default: a new "
                                                  "temp folder, kept)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="cpu-tiny overrides")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    overrides = [*args.overrides, *(["epochs=1"] if args.quick else [])]
    work = args.work or Path(tempfile.mkdtemp(prefix="dcinet-bench-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    if any(work.iterdir()):
        raise SystemExit(f"{work} is not empty: the demo must start from nothing")
    env = {**os.environ, "DCINET_CACHE": str(work / "cache")}
    load_before = os.getloadavg()[0]
    print(f"{cpu_model()}, {len(os.sched_getaffinity(0))} usable cores, load average "
          f"{load_before:.2f}", flush=True)
    folders = [work / f"demo-{k}" for k in range(1 if args.quick else args.repeats)]
    demos = [run_demo(folder, overrides, {**env, "DCINET_CACHE": str(folder / "cache")})
             for folder in folders]
    demo = {"wall_s": statistics.median(d["wall_s"] for d in demos),
            "wall_runs_s": [d["wall_s"] for d in demos],
            "peak_rss_mib": max(d["peak_rss_mib"] for d in demos), "results": demos[0]["results"],
            "repeats_match": all(d["results"] == demos[0]["results"] for d in demos)}
    per_seed = {seed: train_and_evaluate(folders[0], seed, overrides, env) for seed in seeds}
    figures = {
        "cpu": cpu_model(), "usable_cores": len(os.sched_getaffinity(0)), "quick": args.quick,
        "overrides": overrides, **demo, "seeds": seeds, "quality": summarise(per_seed),
        "seed0_matches_demo": (0 in per_seed and all(per_seed[0][k] == demo["results"][k]
                                                     for k in AVERAGES)),
        "load_average": [load_before, os.getloadavg()[0]],
    }
    q = figures["quality"]
    print(f"demo: {demo['wall_s']:.0f} s wall (median of {', '.join(f'{w:.0f}' for w in demo['wall_runs_s'])}), peak RSS {demo['peak_rss_mib']:.0f} MiB; seeds "
          f"{seeds}: average bimodal mAP {q['average_bimodal']['mean']:.3f} ± "
          f"{q['average_bimodal']['std']:.3f}, multimodal {q['average_multimodal']['mean']:.3f} ± "
          f"{q['average_multimodal']['std']:.3f}; seed 0 = demo: {figures['seed0_matches_demo']}",
          flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
