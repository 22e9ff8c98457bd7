"""Benchmark: index backends on synthetic galleries, every build and every search in a process
of its own (so that each peak RSS is that step's alone).

1. A clustered gallery of 1M x 256 float32 (``--quick``: 100k; ``--gallery N``), written as an
   ``embed`` folder (1,000 overlapping Gaussian centres, SPREAD, 200 classes): FAISS flat, ivf,
   ivfpq and Milvus Lite flat, ivf (Milvus Lite on its own size, ``--milvus-gallery N``), each
   built by ``dcinet index`` (``build_index``) and searched through its Gallery one query at a
   time, k = 10: build seconds and peak RSS; QPS, p50 / p95 latency, recall@10 against exact
   search (float64 numpy) and the search process's peak RSS; p50 with a class filter.
2. A large IVF-PQ build, 10M x 128 (``--quick``: 1M; ``--large N``): the vectors generated in
   blocks into a memory-mapped ``.npy`` on disk first; build seconds and peak RSS (target
   <= 4 GiB), then the same search figures.

Run: ``python bench/bench_index.py [--quick] [--gallery N] [--milvus-gallery N] [--large N]
[--work DIR] [--json FILE]`` (``--gallery 0`` skips part 1, ``--large 0`` part 2). Disk: 4 bytes x N x D + ~100 bytes
of metadata per item, twice (the ``embed`` folder and the index).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dcinet.app.cli import configure_threads

SPREAD = 1.5
"""Per-coordinate spread around unit-variance centres: clusters overlap (as in bench_search)."""
CENTRES, CLASSES, K, BLOCK = 1000, 200, 10, 100_000
SUITE = [("faiss", "flat"), ("faiss", "ivf"), ("faiss", "ivfpq"), ("milvus", "flat"),
         ("milvus", "ivf")]


def peak_rss_mib() -> float:
    """This process's peak RSS in MiB: ``VmHWM``, the high-water mark of its own address space
    (``ru_maxrss`` would start at the parent's RSS when it forked)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def write_gallery(emb: Path, n: int, dim: int, n_queries: int, seed: int = 0) -> None:
    """An ``embed`` folder of ``n`` clustered ``dim``-d image vectors written in blocks (never in
    memory at once), plus ``queries.npy`` (perturbed gallery vectors) and ``exact.npy`` (their
    exact top-K rows) beside it."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CENTRES, dim), dtype=np.float32)
    emb.mkdir(parents=True)
    vectors = np.lib.format.open_memmap(emb / "image.npy", "w+", np.float32, (n, dim))
    with open(emb / "image.jsonl", "w", encoding="utf-8") as fh:
        for start in range(0, n, BLOCK):
            stop = min(n, start + BLOCK)
            c = rng.integers(0, CENTRES, stop - start)
            vectors[start:stop] = centres[c] + SPREAD * rng.standard_normal((stop - start, dim),
                                                                            dtype=np.float32)
            fh.writelines(f'{{"row": {start + i}, "modality": "image", "label": {x % CLASSES}, '
                          f'"class_name": "class_{x % CLASSES:03d}", "path": null, "text": null, '
                          '"source": "synthetic"}\n' for i, x in enumerate(c.tolist()))
    vectors.flush()
    (emb / "embed.json").write_text(json.dumps({
        "complete": True, "modalities": {"image": {"count": n, "dim": dim}},
        "classes": [f"class_{i:03d}" for i in range(CLASSES)], "run_dir": "", "weights": "",
        "weights_sha256": "synthetic", "feature": "embedding", "split": "test", "data_root": ""}))
    picks = np.sort(rng.choice(n, n_queries, replace=False))
    queries = unit(np.asarray(vectors[picks]))
    queries = unit(queries + 0.3 * rng.standard_normal(queries.shape, dtype=np.float32) / np.sqrt(dim))
    np.save(emb.parent / "queries.npy", queries)
    np.save(emb.parent / "exact.npy", exact_top_k(vectors, queries))
    del vectors


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def exact_top_k(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """``(n_queries, K)`` rows of the exact cosine top-K (float64), the gallery read in blocks."""
    best_s = np.full((len(queries), K), -np.inf)
    best_i = np.zeros((len(queries), K), np.int64)
    q = queries.astype(np.float64)
    for start in range(0, len(vectors), BLOCK):
        block = np.asarray(vectors[start:start + BLOCK], np.float64)
        scores = q @ (block / np.linalg.norm(block, axis=1, keepdims=True)).T
        s = np.concatenate([best_s, scores], axis=1)
        i = np.concatenate([best_i, np.arange(start, start + len(block))[None].repeat(len(q), 0)], 1)
        top = np.argpartition(-s, K - 1, axis=1)[:, :K]
        best_s, best_i = np.take_along_axis(s, top, 1), np.take_along_axis(i, top, 1)
    return best_i


def latency_stats(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000.0
    return {"qps": round(1000.0 / ms.mean(), 1), "p50_ms": round(float(np.percentile(ms, 50)), 3),
            "p95_ms": round(float(np.percentile(ms, 95)), 3)}


def imported_rss_mib() -> float:
    """Peak RSS once torch (the normalisation) and the index code are imported, before any work."""
    import torch  # noqa: F401

    import dcinet.retrieval.index  # noqa: F401

    return round(peak_rss_mib())


def child_build(spec: dict) -> dict:
    from dcinet.retrieval.index import build_index

    imported = imported_rss_mib()
    started = time.perf_counter()
    info = build_index(Path(spec["emb"]), Path(spec["out"]), spec["kind"], backend=spec["backend"],
                       nlist=spec.get("nlist"), nprobe=spec.get("nprobe", 8))
    return {"build_s": round(time.perf_counter() - started, 2), "imported_rss_mib": imported,
            "build_peak_rss_mib": round(peak_rss_mib()), "params": info.get("ivf", {}).get("image") or
            {k: v for k, v in info.get("milvus", {}).items() if k in ("index_type", "nlist", "nprobe")}}


def child_search(spec: dict) -> dict:
    from dcinet.retrieval.index import open_gallery

    started = time.perf_counter()
    gallery = open_gallery(Path(spec["out"]))
    opened = time.perf_counter() - started
    queries, exact = np.load(spec["queries"]), np.load(spec["exact"])
    for q in queries[:5]:  # warm-up
        gallery.lookup(q, K, ["image"])
    times, recall = [], []
    for q, want in zip(queries, exact, strict=True):
        start = time.perf_counter()
        found = gallery.lookup(q, K, ["image"])
        times.append(time.perf_counter() - start)
        recall.append(len({it["row"] for _, it in found} & set(want.tolist())) / K)
    filtered = []
    for i, q in enumerate(queries[:50]):
        start = time.perf_counter()
        gallery.lookup(q, K, ["image"], label=i % CLASSES)
        filtered.append(time.perf_counter() - start)
    return {"open_s": round(opened, 2), **latency_stats(times),
            "recall_at_10": round(float(np.mean(recall)), 4),
            "class_filter_p50_ms": latency_stats(filtered)["p50_ms"],
            "search_peak_rss_mib": round(peak_rss_mib())}


def run_child(step: str, spec: dict, work: Path) -> dict:
    spec_file, out_file = work / f"spec-{os.getpid()}.json", work / f"result-{os.getpid()}.json"
    spec_file.write_text(json.dumps(spec))
    print(f"  {step} {spec['backend']} {spec['kind']} ...", file=sys.stderr, flush=True)
    env = dict(os.environ)
    configure_threads(env)  # as every `dcinet` command runs: short OpenMP spins, then sleep
    subprocess.run([sys.executable, __file__, "--child", step, "--spec", str(spec_file),
                    "--json", str(out_file)], check=True, env=env)
    return json.loads(out_file.read_text())


def bench_suite(work: Path, n: int, dim: int, n_queries: int, configs: list[tuple[str, str]],
                nlist: int) -> dict:
    """Part 1 (or 2 with one config): build + search each ``(backend, kind)`` on one gallery."""
    started = time.perf_counter()
    write_gallery(work / "emb", n, dim, n_queries)
    out = {"gallery": [n, dim], "queries": n_queries, "k": K, "nlist": nlist, "nprobe": 8,
           "generate_s": round(time.perf_counter() - started, 1), "configs": {}}
    for backend, kind in configs:
        spec = {"emb": str(work / "emb"), "out": str(work / f"{backend}-{kind}"), "kind": kind,
                "backend": backend, "queries": str(work / "queries.npy"),
                "exact": str(work / "exact.npy")}
        if kind != "flat":
            spec["nlist"] = nlist
        result = run_child("build", spec, work)
        result.update(run_child("search", spec, work))
        result["index_mib"] = round(sum(f.stat().st_size for f in Path(spec["out"]).rglob("*")
                                        if f.is_file()) / 2**20)
        out["configs"][f"{backend} {kind}"] = result
        shutil.rmtree(spec["out"])
    shutil.rmtree(work / "emb")
    return out


def report(results: dict) -> str:
    lines = []
    for part in ("suite", "milvus", "large"):
        r = results.get(part)
        if not r:
            continue
        n, dim = r["gallery"]
        lines += [f"## {n:,} x {dim}, {r['queries']} queries, k = {r['k']}, nlist {r['nlist']}, "
                  f"nprobe {r['nprobe']}", "",
                  "| index | build s | build RSS MiB | QPS | p50 ms | p95 ms | recall@10 | "
                  "class-filter p50 ms | search RSS MiB |", "|---|---|---|---|---|---|---|---|---|"]
        for name, c in r["configs"].items():
            lines.append(f"| {name} | {c['build_s']} | {c['build_peak_rss_mib']} | {c['qps']} | "
                         f"{c['p50_ms']} | {c['p95_ms']} | {c['recall_at_10']} | "
                         f"{c['class_filter_p50_ms']} | {c['search_peak_rss_mib']} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k gallery, 1M large build")
    parser.add_argument("--gallery", type=int, help="part 1 size (default 1M, quick 100k; 0: skip)")
    parser.add_argument("--milvus-gallery", type=int,
                        help="Milvus Lite's size when not part 1's (0: leave Milvus out)")
    parser.add_argument("--large", type=int, help="part 2 size (default 10M, quick 1M; 0: skip)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temp folder)")
    parser.add_argument("--json", type=Path, help="write the results as JSON")
    parser.add_argument("--child", choices=("build", "search"), help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.spec.read_text())
        result = (child_build if args.child == "build" else child_search)(spec)
        args.json.write_text(json.dumps(result))
        return

    work = args.work or Path(tempfile.mkdtemp(prefix="dcinet-bench-index-"))
    n = (100_000 if args.quick else 1_000_000) if args.gallery is None else args.gallery
    milvus_n = n if args.milvus_gallery is None else args.milvus_gallery
    large = (1_000_000 if args.quick else 10_000_000) if args.large is None else args.large
    nlist = 256 if args.quick else 1024
    sizes = [f"--{name.replace('_', '-')} {value}" for name, value in (
        ("gallery", args.gallery), ("milvus_gallery", args.milvus_gallery), ("large", args.large),
        ("queries", None if args.queries == 200 else args.queries)) if value is not None]
    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "load_average_before": round(os.getloadavg()[0], 2)},
               "command": " ".join(["--quick"] * args.quick + sizes)}
    suite = [c for c in SUITE if c[0] == "faiss" or (milvus_n == n and milvus_n)]
    if n:
        results["suite"] = bench_suite(work / "suite", n, 256, args.queries, suite, nlist)
    if milvus_n and milvus_n != n:
        results["milvus"] = bench_suite(work / "milvus", milvus_n, 256, args.queries,
                                        [c for c in SUITE if c[0] == "milvus"], nlist)
    if large:
        results["large"] = bench_suite(work / "large", large, 128, args.queries,
                                       [("faiss", "ivfpq")], nlist)
    results["machine"]["load_average_after"] = round(os.getloadavg()[0], 2)
    print(report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if not args.work:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
