"""Benchmark: search latency and throughput, end to end and index lookup alone.

1. ``search`` (query decoding + preprocessing + model forward + FAISS lookup + metadata), one query
   at a time as the server runs it, on an index of the built-in dataset: ``--index INDEX_DIR``, or
   one built here (synthetic dataset, a 1-epoch ``cpu-tiny`` run, ``embed``, flat ``index``). The
   queries are the gallery's own test files (image and audio bytes, texts), k = 10, target all.
2. Index lookup alone on a synthetic gallery of 1M x 256 float32 vectors (``--quick``: 100k),
   clustered (an overlapping Gaussian mixture of 1,000 centres, see SPREAD) like real embeddings: flat (exact) vs ivf
   (nlist = 1024, or 256 with ``--quick``) at several nprobe, with ivf's recall@10 against flat.

Figures: queries per second (one query at a time, so QPS = 1 / mean latency) and p50 / p95
latency in milliseconds. Run: ``python bench/bench_search.py [--quick] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dcinet.retrieval.backends.faiss import build_faiss
from dcinet.retrieval.gallery import normalized

SPREAD = 1.5
"""Per-coordinate spread of the mixture around unit-variance centres: clusters overlap, so ivf
loses some true neighbours (as with real embeddings) instead of finding every one in one cell."""


def latency_stats(seconds: list[float]) -> dict:
    """QPS (1 / mean) and p50 / p95 latency in ms of single-query timings."""
    ms = np.asarray(seconds) * 1000.0
    return {"queries": len(ms), "qps": round(1000.0 / ms.mean(), 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p95_ms": round(float(np.percentile(ms, 95)), 3)}


def build_builtin_index(work: Path, quick: bool) -> Path:
    """Synthetic dataset -> 1-epoch cpu-tiny run -> embeddings -> flat index, under ``work``."""
    from dcinet.config import load_config
    from dcinet.retrieval.embed import embed_run
    from dcinet.retrieval.index import build_index
    from dcinet.sources.synth import synthesize
    from dcinet.train.loop import fit

    classes, per_class = (4, 8) if quick else (10, 20)
    data = synthesize(work / "data", classes=classes, per_class=per_class, seed=0, progress=False)
    overrides = ["epochs=1", "num_workers=0"] + (["img_size=32", "resize=36", "layer=3"] if quick else [])
    if not (work / "run" / "checkpoint.json").exists():
        print(f"training a 1-epoch cpu-tiny run on {classes} classes x {per_class} ...", file=sys.stderr)
        fit(load_config("cpu-tiny", overrides), data, work / "run", progress=False)
    embed_run(work / "run", data, work / "emb", progress=False)
    if not (work / "index" / "index.json").exists():
        build_index(work / "emb", work / "index")
    return work / "index"


def bench_search(index_dir: Path, repeats: int) -> dict:
    """End-to-end :meth:`Searcher.search` per query modality (gallery files as queries)."""
    from dcinet.retrieval.search import Searcher

    searcher = Searcher(index_dir)
    counts = searcher.gallery.info["counts"]
    out = {"index": str(index_dir), "gallery": counts,
           "backbone": searcher.trained.cfg.backbone, "img_size": searcher.trained.cfg.img_size,
           "feature": searcher.feature, "per_modality": {}}
    for modality in searcher.query_modalities:
        rows = [searcher.gallery.item(modality, row)
                for row in range(min(32, counts.get(modality, 0)))]
        queries = [r["text"] if modality == "text" else Path(r["path"]).read_bytes() for r in rows]
        if not queries:
            continue
        for q in queries[:3]:  # warm-up
            searcher.search(q, modality, 10)
        times, lookups = [], []
        vectors = [searcher.embed_query(q, modality) for q in queries]
        for _ in range(repeats):
            for q, v in zip(queries, vectors, strict=True):
                start = time.perf_counter()
                searcher.search(q, modality, 10)
                times.append(time.perf_counter() - start)
                start = time.perf_counter()
                searcher.search_vector(v, 10)
                lookups.append(time.perf_counter() - start)
        out["per_modality"][modality] = {"search": latency_stats(times),
                                         "lookup_only": latency_stats(lookups)}
    return out


def clustered_gallery(n: int, dim: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(gallery (n, dim), queries (n_queries, dim))`` float32, L2-normalised; queries are
    perturbed gallery vectors so that each has close neighbours."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((1000, dim)).astype(np.float32)
    gallery = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        gallery[start:stop] = centres[rng.integers(0, 1000, stop - start)]
        gallery[start:stop] += SPREAD * rng.standard_normal((stop - start, dim)).astype(np.float32)
    gallery = normalized(gallery)
    picks = gallery[rng.integers(0, n, n_queries)]
    queries = normalized(picks + 0.3 * rng.standard_normal(picks.shape).astype(np.float32) / np.sqrt(dim))
    return gallery, queries


def time_lookups(index, queries: np.ndarray, k: int = 10) -> tuple[dict, np.ndarray]:
    """One query at a time: latency stats and the (n_queries, k) ids found."""
    index.search(queries[:5], k)  # warm-up
    ids, times = np.empty((len(queries), k), np.int64), []
    for i, q in enumerate(queries):
        start = time.perf_counter()
        ids[i] = index.search(q[None], k)[1][0]
        times.append(time.perf_counter() - start)
    return latency_stats(times), ids


def bench_lookup(n: int, dim: int, n_queries: int, nlist: int, nprobes: list[int]) -> dict:
    """Flat vs ivf lookup on :func:`clustered_gallery`; ivf recall@10 against flat."""
    gallery, queries = clustered_gallery(n, dim, n_queries)
    started = time.perf_counter()
    flat = build_faiss(gallery, "flat")
    out = {"gallery": [n, dim], "queries": n_queries, "k": 10,
           "flat": {"build_s": round(time.perf_counter() - started, 2)}}
    stats, exact = time_lookups(flat, queries)
    out["flat"].update(stats)
    del flat
    started = time.perf_counter()
    ivf = build_faiss(gallery, "ivf", nlist=nlist)
    out["ivf"] = {"nlist": nlist, "build_s": round(time.perf_counter() - started, 2), "by_nprobe": {}}
    for nprobe in nprobes:
        ivf.nprobe = nprobe
        stats, found = time_lookups(ivf, queries)
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact, strict=True)])
        out["ivf"]["by_nprobe"][nprobe] = {**stats, "recall_at_10": round(float(recall), 4)}
    return out


def report(results: dict) -> str:
    lines = ["## search (decode + forward + lookup), one query at a time, k = 10", "",
             "| query | QPS | p50 ms | p95 ms | lookup-only p50 ms |", "|---|---|---|---|---|"]
    for m, r in results["search"]["per_modality"].items():
        s, lk = r["search"], r["lookup_only"]
        lines.append(f"| {m} | {s['qps']} | {s['p50_ms']} | {s['p95_ms']} | {lk['p50_ms']} |")
    lk = results["lookup"]
    lines += ["", f"## index lookup alone, {lk['gallery'][0]:,} x {lk['gallery'][1]} gallery, "
              f"{lk['queries']} queries, k = 10", "",
              "| index | build s | QPS | p50 ms | p95 ms | recall@10 vs flat |", "|---|---|---|---|---|---|",
              f"| flat | {lk['flat']['build_s']} | {lk['flat']['qps']} | {lk['flat']['p50_ms']} | "
              f"{lk['flat']['p95_ms']} | 1 |"]
    for nprobe, r in lk["ivf"]["by_nprobe"].items():
        lines.append(f"| ivf nlist={lk['ivf']['nlist']} nprobe={nprobe} | {lk['ivf']['build_s']} | "
                     f"{r['qps']} | {r['p50_ms']} | {r['p95_ms']} | {r['recall_at_10']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, help="a built-in-dataset index (default: build one)")
    parser.add_argument("--work", type=Path, help="folder for the index built here (default: temp)")
    parser.add_argument("--quick", action="store_true", help="100k gallery, tiny model")
    parser.add_argument("--gallery", type=int, help="synthetic gallery size (default 1M, quick 100k)")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, help="lookup queries (default 500, quick 200)")
    parser.add_argument("--json", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    torch.set_num_threads(min(4, os.cpu_count() or 1))

    index_dir = args.index or build_builtin_index(args.work or Path(tempfile.mkdtemp()), args.quick)
    results = {"machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                           "python": platform.python_version(), "torch": torch.__version__},
               "search": bench_search(index_dir, repeats=2 if args.quick else 5)}
    n = args.gallery or (100_000 if args.quick else 1_000_000)
    results["lookup"] = bench_lookup(n, args.dim, args.queries or (200 if args.quick else 500),
                                     nlist=256 if args.quick else 1024, nprobes=[1, 8, 32])
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
