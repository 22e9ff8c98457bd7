"""Benchmark: the fast mAP of all nine directions against the naive per-query loop.

Synthetic softmax-like features at PKU FG-XMedia test size (image 5,794, text 4,000, audio 6,000
items, 200 classes, 200-d), seeded. Same features, same process:

* fast: :func:`dcinet.retrieval.directions.evaluate_directions` (all nine directions);
* naive: :func:`dcinet.retrieval.naive.average_precision_naive` once per direction, the reference
  evaluations' style (a stable argsort per query, then a Python loop over the ranking comparing
  one item's label at a time);
* vectorised: the same per-query argsort with numpy doing the label comparison and the running
  precision (a cumulative sum) instead of the Python loop: the common faster rewrite;
* the max |difference| of every query's AP between fast and each of the two (must be < 1e-9);
* the bootstrap intervals of every metric, average and per-class AP (B = 1000 resamples of the
  queries) on top of the fast path: the seconds they add;
* for scale: the float32 score products alone, and a stable torch sort of every score row;
* peak memory (resident set) of the fast path.

Run: ``python bench/bench_metrics.py [--quick] [--json FILE] [--threads N]``. On a shared machine
the fast path (many short multi-threaded torch operations) suffers more from other processes'
load than the single-threaded naive loop: the load average is recorded with the figures, and CPU
times are reported next to wall times (with ``--threads 1`` their ratio is the work ratio).
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a shared machine, spinning threads of the
# many short parallel torch operations fight other processes (3x slower at load average 5).
# Must be set before torch loads OpenMP; an explicit setting in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dcinet.retrieval.bootstrap import RESAMPLES  # noqa: E402
from dcinet.retrieval.directions import (  # noqa: E402
    TABLE_ORDER,
    bimodal_directions,
    evaluate_directions,
)
from dcinet.retrieval.metrics import average_precision_parts  # noqa: E402
from dcinet.retrieval.naive import average_precision_naive  # noqa: E402
from dcinet.retrieval.scores import (  # noqa: E402
    SCORE_BLOCK,
    l2_normalize,
    normalized_scores,
    score_blocks,
)

PKU_SIZES = {"image": 5794, "text": 4000, "audio": 6000}
# How peaked each modality's class evidence is (mAPs land near the paper's range).
PEAK = {"image": 6.0, "text": 5.0, "audio": 7.0}


def synthetic_features(sizes: dict[str, int], classes: int, dim: int, seed: int
                       ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Per modality: (N, dim) float32 softmax of (peak * one-hot(class) + 2 * noise), labels."""
    rng = np.random.default_rng(seed)
    feats, labels = {}, {}
    for m, n in sizes.items():
        lab = rng.permutation(np.arange(n) % classes)
        logits = 2.0 * rng.standard_normal((n, dim))
        logits[np.arange(n), lab % dim] += PEAK[m]
        e = np.exp(logits - logits.max(1, keepdims=True))
        feats[m], labels[m] = (e / e.sum(1, keepdims=True)).astype(np.float32), lab
    return feats, labels


def _directions(modalities: list[str]) -> list[tuple[str, str | None]]:
    """The bimodal pairs then the X->all directions (gallery None), in table order."""
    present = [m for m in TABLE_ORDER if m in modalities]
    return [*bimodal_directions(present), *((q, None) for q in present)]


def _gallery(feats, labels, gallery: str | None):
    if gallery is not None:
        return feats[gallery], labels[gallery]
    order = [m for m in TABLE_ORDER if m in feats]
    return np.concatenate([feats[m] for m in order]), np.concatenate([labels[m] for m in order])


def _reset_peak_rss() -> bool:
    try:  # Linux: "5" resets VmHWM, the peak resident set size
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss_mib(field: str = "VmHWM") -> float:
    """Peak (VmHWM) or current (VmRSS) resident set size in MiB; ru_maxrss where no /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_fast(feats, labels, repeats: int
              ) -> tuple[list[tuple[float, float]], dict, dict, tuple[float, float]]:
    """(wall, CPU) seconds of each evaluate_directions run; per-query APs per direction; its mAPs;
    (RSS before, peak RSS during) in MiB."""
    times = []
    peak_reset = _reset_peak_rss()
    before = _rss_mib("VmRSS")
    for _ in range(repeats):
        start, cpu = time.perf_counter(), time.process_time()
        result = evaluate_directions(feats, labels, resamples=0)
        times.append((time.perf_counter() - start, time.process_time() - cpu))
    peak = (before, _rss_mib() if peak_reset else float("nan"))
    order = [m for m in TABLE_ORDER if m in feats]
    per_query = {}
    for q in order:
        whole, parts = average_precision_parts(feats[q], labels[q],
                                               [(feats[m], labels[m]) for m in order])
        per_query[(q, None)] = whole
        per_query.update({(q, g): ap for g, ap in zip(order, parts, strict=True) if g != q})
    return times, per_query, result.directions, peak


def time_bootstrap(feats, labels, repeats: int) -> list[float]:
    """Seconds of the intervals of every metric, average and per-class AP of one evaluation
    (:data:`RESAMPLES` resamples), the per-query values already computed; one per repeat."""
    times = []
    for _ in range(repeats):
        result = evaluate_directions(feats, labels, resamples=RESAMPLES)
        start = time.perf_counter()
        _ = result.intervals, result.per_class_intervals  # computed on first access
        times.append(time.perf_counter() - start)
    return times


def time_naive(feats, labels) -> tuple[tuple[float, float], dict]:
    """(wall, CPU) seconds of the naive loop over all directions; per-query APs per direction."""
    per_query, start, cpu = {}, time.perf_counter(), time.process_time()
    for q, g in _directions(list(feats)):
        per_query[(q, g)] = average_precision_naive(feats[q], labels[q], *_gallery(feats, labels, g))
    return (time.perf_counter() - start, time.process_time() - cpu), per_query


def average_precision_vectorised(query_feats, query_labels, gallery_feats, gallery_labels
                                  ) -> np.ndarray:
    """Per query: stable argsort of -score, then numpy for the relevance, hits and precision."""
    query, gallery = l2_normalize(query_feats), l2_normalize(gallery_feats)
    ranks = np.arange(1, gallery.shape[0] + 1, dtype=np.float64)
    ap = np.zeros(len(query_labels), dtype=np.float64)
    for start in range(0, len(query_labels), 2 * SCORE_BLOCK):
        scores = normalized_scores(query[start: start + 2 * SCORE_BLOCK], gallery).numpy()
        for i, row in enumerate(scores, start=start):
            relevant = gallery_labels[np.argsort(-row, kind="stable")] == query_labels[i]
            hits = np.cumsum(relevant)
            ap[i] = (hits[relevant] / ranks[relevant]).sum() / max(hits[-1], 1)
    return ap


def time_vectorised(feats, labels) -> tuple[float, dict]:
    """Wall seconds of the vectorised per-query baseline over all directions; per-query APs."""
    per_query, start = {}, time.perf_counter()
    for q, g in _directions(list(feats)):
        per_query[(q, g)] = average_precision_vectorised(feats[q], labels[q],
                                                         *_gallery(feats, labels, g))
    return time.perf_counter() - start, per_query


def time_products_and_sorts(feats, labels) -> tuple[float, float]:
    """Seconds for the float32 score products alone, and for a stable sort of every row."""
    mm = sort = 0.0
    for q, g in _directions(list(feats)):
        query, gallery = l2_normalize(feats[q]), l2_normalize(_gallery(feats, labels, g)[0])
        for start in range(0, len(query), 512):
            t0 = time.perf_counter()
            rows = score_blocks(query[start: start + 512], gallery)
            mm += time.perf_counter() - t0
            rows.neg_()
            t0 = time.perf_counter()
            torch.sort(rows, dim=1, stable=True)
            sort += time.perf_counter() - t0
    return mm, sort


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the items per modality")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--repeats", type=int, default=3, help="fast-path runs (best is quoted)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    sizes = {m: n // 4 for m, n in PKU_SIZES.items()} if args.quick else dict(PKU_SIZES)
    classes = 50 if args.quick else 200
    feats, labels = synthetic_features(sizes, classes, 200, args.seed)
    load_before = os.getloadavg()
    print(f"sizes {sizes}, {classes} classes, 200-d; torch threads {torch.get_num_threads()}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, "
          f"load average {load_before[0]:.2f}", flush=True)

    fast_runs, fast_ap, fast_maps, peak = time_fast(feats, labels, args.repeats)
    fast, fast_cpu = min(fast_runs)
    print(f"fast : {fast:7.2f} s wall, {fast_cpu:.2f} s CPU (best of {args.repeats}; walls "
          f"{', '.join(f'{w:.2f}' for w, _ in fast_runs)}); RSS {peak[0]:.0f} MiB before, "
          f"peak {peak[1]:.0f} MiB", flush=True)
    boot_runs = time_bootstrap(feats, labels, args.repeats)
    print(f"bootstrap intervals ({RESAMPLES} resamples, every metric, average and class): "
          f"+{min(boot_runs):.2f} s (best of {args.repeats}; "
          f"{', '.join(f'{t:.2f}' for t in boot_runs)}), {min(boot_runs) / fast:.0%} of the fast "
          f"path", flush=True)
    (naive, naive_cpu), naive_ap = time_naive(feats, labels)
    print(f"naive: {naive:7.2f} s wall, {naive_cpu:.2f} s CPU; ratio {naive / fast:.1f}x wall, "
          f"{naive_cpu / fast_cpu:.1f}x CPU", flush=True)
    vectorised, vectorised_ap = time_vectorised(feats, labels)
    print(f"vectorised per-query argsort: {vectorised:7.2f} s wall; ratio {vectorised / fast:.1f}x",
          flush=True)
    max_diff = max(float(np.abs(fast_ap[d] - ref[d]).max())
                   for ref in (naive_ap, vectorised_ap) for d in ref)
    map_diff = max(abs(fast_maps[name] - float(naive_ap[d].mean()))
                   for name, d in zip(fast_maps, _directions(list(feats)), strict=True))
    print(f"max |AP fast - AP naive or vectorised| over all queries {max_diff:.2e}; "
          f"|mAP fast - mAP naive| {map_diff:.2e}")
    mm, sort = time_products_and_sorts(feats, labels)
    print(f"float32 score products alone {mm:.2f} s; stable sort of every score row {sort:.2f} s")
    print("mAP " + " ".join(f"{k} {v:.3f}" for k, v in fast_maps.items()))

    figures = {
        "sizes": sizes, "classes": classes, "dim": 200, "seed": args.seed, "quick": args.quick,
        "fast_s": fast, "fast_cpu_s": fast_cpu, "fast_runs_s": [w for w, _ in fast_runs],
        "naive_s": naive, "naive_cpu_s": naive_cpu, "ratio": naive / fast,
        "ratio_cpu": naive_cpu / fast_cpu,
        "vectorised_s": vectorised, "ratio_vectorised": vectorised / fast,
        "max_abs_diff_ap": max_diff, "max_abs_diff_map": map_diff,
        "bootstrap_s": min(boot_runs), "bootstrap_runs_s": boot_runs,
        "bootstrap_resamples": RESAMPLES, "score_products_s": mm, "bare_sort_s": sort, "rss_mib_before_fast": peak[0],
        "peak_rss_mib_fast": peak[1],
        "map": fast_maps, "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_average": [load_before[0], os.getloadavg()[0]],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if max_diff >= 1e-9:
        print("FAIL: fast and naive (or vectorised) AP differ by 1e-9 or more", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
