"""``make bench``: run every benchmark of ``bench/`` and write ``BENCHMARKS.md`` from their output.

Each benchmark runs in its own process and writes JSON; this script only formats those figures
(nothing here is typed in by hand). ``--quick`` runs the small variants (to check the pipeline),
``--only step,metrics`` a subset; ``--work DIR`` keeps the JSON figures, and
``--render-only --work DIR`` rewrites ``BENCHMARKS.md`` from them (sections without figures are
left out). The demo's peak memory is the peak RSS of a real
``dcinet demo`` run. GPU figures come from ``bench/gpu.sh`` on a CUDA machine and are included
when ``bench/gpu_results.json`` exists.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PY = sys.executable


def run_json(script: str, args: list[str], work: Path, name: str | None = None) -> dict:
    """Run ``bench/<script> ... --json F`` and return F's content (F: ``work/<name or the
    script's stem>.json``)."""
    out = work / f"{name or Path(script).stem}.json"
    cmd = [PY, str(BENCH / script), *args, "--json", str(out)]
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)
    return json.loads(out.read_text())


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {platform.system()} "
            f"{platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}")


def section_step(r: dict) -> list[str]:
    return [
        "## Training step: DCINet vs the plain shared backbone (`bench/bench_step.py`)", "",
        f"{r['backbone']}, {r['img_size']} px, batch {r['batch']}, interaction after layer{r['layer']}, "
        f"{r['threads']} threads, median of {r['reps']} interleaved steps.", "",
        "| step | median s | ratio to plain |", "|---|---|---|",
        f"| plain (interaction none: L_img + L_aud + L_txt) | {r['plain_step_s']:.3f} | 1.00 |",
        f"| DCINet (CMSI + CMCI, second head pass, L_dual) | {r['dcinet_step_s']:.3f} | {r['ratio']:.2f} |",
        f"| plain + CMSI/CMCI tensor work only | {r['plain_step_s'] + r['interaction_only_s']:.3f} | "
        f"{r['interaction_only_ratio']:.3f} |", "",
        "The target is a ratio <= 1.10 at layer4. The interactions themselves cost the last row; "
        "the rest of the gap is the second pass through sub-module 2 (layer4 + head, forward and "
        "backward) that §3.1 prescribes, whose share of the step is the share of layer4 in the "
        "backbone's compute.", "",
        f"Peak RSS of the benchmark process: {r['peak_rss_mb_both_models']:.0f} MiB.", ""]


def section_metrics(r: dict) -> list[str]:
    sizes = ", ".join(f"{m} {n:,}" for m, n in r["sizes"].items())
    first = r["fast_runs_s"][0]
    return [
        "## Evaluation: all nine directions at PKU FG-XMedia size (`bench/bench_metrics.py`)", "",
        f"Test items {sizes}; {r['classes']} classes; {r['dim']}-d features.", "",
        "| path | seconds | dcinet is faster by |", "|---|---|---|",
        "| naive: per query a stable argsort, then a Python loop over the ranking comparing one "
        f"label at a time (the reference evaluations' style) | {r['naive_s']:.2f} | "
        f"**{r['ratio']:.1f}x** |",
        "| vectorised: the same argsort, numpy for the label comparison and running precision | "
        f"{r['vectorised_s']:.2f} | {r['ratio_vectorised']:.1f}x |",
        f"| stable sort of every score row only (no AP) | {r['bare_sort_s']:.2f} | "
        f"{r['bare_sort_s'] / r['fast_s']:.1f}x |",
        f"| score matrix products only | {r['score_products_s']:.2f} | |",
        f"| dcinet (exact, rank counting, compiled kernel) | {r['fast_s']:.2f} | |", "",
        f"dcinet's time is the best of {len(r['fast_runs_s'])} runs; the first run in a process "
        f"took {first:.2f} s (it loads the compiled kernel from numba's cache, or compiles it once "
        "per machine). Agreement with the naive loop and the vectorised baseline: max |ΔAP| = "
        f"{r['max_abs_diff_ap']:.1e}, max |ΔmAP| = {r['max_abs_diff_map']:.1e} (target < 1e-9). "
        f"Target speed-up over the naive loop >= 30x. Peak RSS of the fast path: "
        f"{r['peak_rss_mib_fast']:.0f} MiB.", ""]


def section_search(r: dict) -> list[str]:
    s = r["search"]
    lines = ["## Search (`bench/bench_search.py`)", "",
             f"End to end (model forward + index lookup), {s['backbone']} at {s['img_size']} px, "
             f"gallery {s['gallery']}:", "",
             "| query | QPS | p50 ms | p95 ms | lookup-only p50 ms |", "|---|---|---|---|---|"]
    for m, v in s["per_modality"].items():
        lines.append(f"| {m} | {v['search']['qps']} | {v['search']['p50_ms']} | {v['search']['p95_ms']} | "
                     f"{v['lookup_only']['p50_ms']} |")
    lk = r["lookup"]
    n, dim = lk["gallery"]
    lines += ["", f"Index lookup alone, synthetic {n:,} x {dim} gallery, k = {lk['k']}:", "",
              "| index | build s | QPS | p50 ms | p95 ms | recall@10 vs flat |", "|---|---|---|---|---|---|",
              f"| flat (exact) | {lk['flat']['build_s']} | {lk['flat']['qps']} | {lk['flat']['p50_ms']} | "
              f"{lk['flat']['p95_ms']} | 1 |"]
    for nprobe, v in lk["ivf"]["by_nprobe"].items():
        lines.append(f"| ivf nlist={lk['ivf']['nlist']} nprobe={nprobe} | {lk['ivf']['build_s']} | {v['qps']} | "
                     f"{v['p50_ms']} | {v['p95_ms']} | {v['recall_at_10']} |")
    return [*lines, ""]


def section_server(r: dict) -> list[str]:
    v, bad = r["valid"], r["invalid"]
    return ["## Server under load (`bench/bench_server.py`)", "",
            "Concurrent mixed requests (valid searches and malformed / oversized / hostile ones) "
            "against `dcinet serve` on loopback:", "",
            "| requests/s | valid p50 / p95 ms | invalid p50 / p95 ms | server RSS before / after / peak MiB | unexpected statuses |",
            "|---|---|---|---|---|",
            f"| {r['requests_per_s']:.0f} | {v['p50_ms']:.0f} / {v['p95_ms']:.0f} | {bad['p50_ms']:.0f} / "
            f"{bad['p95_ms']:.0f} | {r['rss_before_mib']:.0f} / {r['rss_after_mib']:.0f} / "
            f"{r['peak_rss_mib']:.0f} | {', '.join(r['unexpected_status']) or 'none'} |", ""]


def _runs(r: dict) -> str:
    """' (median of N runs from nothing: a, b, c s)' when the demo was repeated."""
    runs = r.get("wall_runs_s", [])
    if len(runs) < 2:
        return ""
    return f" (median of {len(runs)} runs from nothing: {', '.join(f'{w:.0f}' for w in runs)} s)"


def section_demo(r: dict) -> list[str]:
    res, q = r["results"], r["quality"]
    settings = f" ({' '.join(r['overrides'])})" if r["overrides"] else ""
    return ["## Demo (`dcinet demo`, the main job)", "",
            f"`bench/bench_demo.py` on {r['cpu']} ({r['usable_cores']} usable cores; load average "
            f"{r['load_average'][0]:.2f} at the start, {r['load_average'][1]:.2f} at the end): a "
            f"first `dcinet demo`{settings} in its own process (new data, run folder and "
            f"spectrogram cache) took {r['wall_s']:.0f} s wall{_runs(r)}, peak RSS "
            f"{r['peak_rss_mib']:.0f} MiB; average bimodal mAP {res['average_bimodal']:.3f}, "
            f"multimodal {res['average_multimodal']:.3f}"
            f"{'' if r.get('repeats_match', True) else ' (the repeats DIFFER)'}.", "",
            f"Its config trained and evaluated for seeds {', '.join(map(str, r['seeds']))}: average "
            f"bimodal mAP {q['average_bimodal']['mean']:.3f} ± {q['average_bimodal']['std']:.3f}, "
            f"multimodal {q['average_multimodal']['mean']:.3f} ± "
            f"{q['average_multimodal']['std']:.3f} (mean ± std); seed 0 reproduces the demo's "
            f"figures: {'yes' if r['seed0_matches_demo'] else 'NO'}. Float bits differ across CPUs, "
            "so the mAPs reproduce on the same machine, not everywhere.", ""]


def section_concurrent(r: dict) -> list[str]:
    lines = ["## Two trainings at once (`bench/bench_concurrent.py`)", "",
             f"`cpu-tiny` at 64 px on the built-in dataset ({r['classes']} classes x "
             f"{r['per_class']} items, {r['epochs']} epochs), {r['usable_cores']} usable cores "
             f"({r['cpu']}); median epoch seconds from each run's `metrics.csv`.", "",
             "| OpenMP waits | alone s/epoch | two at once s/epoch | ratio |", "|---|---|---|---|"]
    for p in r["policies"].values():
        lines.append(f"| {p['omp_waits']} | {p['alone_epoch_s']:.2f} | "
                     f"{' / '.join(f'{s:.2f}' for s in p['concurrent_epoch_s'])} | "
                     f"{p['ratio']:.2f} |")
    return [*lines, "", "Target: ratio <= ~2 (two runs sharing the cores of one). Load average "
            f"{r['load_average'][0]:.2f} before, {r['load_average'][1]:.2f} after.", ""]


def section_index(r: dict) -> list[str]:
    lines = ["## Index backends: FAISS and Milvus Lite (`bench/bench_index.py`)", "",
             f"`python bench/bench_index.py {r['command']}`; each build and each search in its own "
             "process (peak RSS = that process's; "
             f"{next(iter(r['suite']['configs'].values()))['imported_rss_mib']} MiB of it once "
             "torch and dcinet are imported, before any work); one "
             "query at a time through the index's Gallery, k = 10; recall@10 against exact "
             "float64 search. Synthetic clustered galleries (1,000 overlapping centres, 200 "
             f"classes); ivfpq stores dim / 8 one-byte codes per vector and does not re-rank; "
             f"load average {r['machine']['load_average_before']} before, "
             f"{r['machine']['load_average_after']} after.", ""]
    for part in ("suite", "milvus", "large"):
        if part in r:
            lines += _index_table(r[part], part)
    return lines


def section_index_large(r: dict) -> list[str]:
    p = r["large"]
    c = next(iter(p["configs"].values()))
    return ["## Large index build (`bench/bench_index.py`)", "",
            f"`python bench/bench_index.py {r['command']}`: the vectors written in blocks to a "
            "memory-mapped `.npy` first, then `dcinet index --kind ivfpq` in a process of its own "
            f"({c['imported_rss_mib']} MiB of its peak RSS once torch and dcinet are imported); the "
            "embeddings are read in blocks with positioned reads, never all in memory; load average "
            f"{r['machine']['load_average_before']} before, {r['machine']['load_average_after']} "
            "after.", "", *_index_table(p, "large")]


def _index_table(p: dict, part: str) -> list[str]:
    engines = {"faiss": "FAISS", "milvus": "Milvus Lite"}
    title = " and ".join(dict.fromkeys(engines[c.split()[0]] for c in p["configs"]))
    if part == "large":
        title = "Large IVF-PQ build (target peak RSS <= 4 GiB; `--large N`, default 10M)"
    lines = [f"{title}, {p['gallery'][0]:,} x {p['gallery'][1]} (written in "
             f"{p['generate_s']} s), nlist {p['nlist']}, nprobe {p['nprobe']}:", "",
             "| index | build s | build peak RSS MiB | index MiB | QPS | p50 ms | p95 ms | "
             "recall@10 | class-filter p50 ms | search peak RSS MiB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, c in p["configs"].items():
        lines.append(f"| {name} | {c['build_s']} | {c['build_peak_rss_mib']} | "
                     f"{c['index_mib']} | {c['qps']} | {c['p50_ms']} | {c['p95_ms']} | "
                     f"{c['recall_at_10']} | {c['class_filter_p50_ms']} | "
                     f"{c['search_peak_rss_mib']} |")
    return [*lines, ""]


DECODE_KINDS = {
    "image_jpeg": "image: {jpeg[0]} x {jpeg[1]} JPEG -> resize 510 x 510, center crop 448",
    "audio_png": "audio: {png[0]} x {png[1]} spectrogram PNG (PKU FG-XMedia style) -> 448",
    "audio_wav_uncached": "audio: {audio_s:g} s WAV ({wav_kib:.0f} KiB) -> spectrogram computed",
    "audio_wav_cached": "audio: the same WAV, spectrogram from the cache",
    "audio_ogg_uncached": "audio: {audio_s:g} s Ogg Vorbis ({ogg_kib:.0f} KiB) -> spectrogram computed",
    "audio_ogg_cached": "audio: the same Ogg, spectrogram from the cache",
    "text": "text: ~400 characters -> 448 ids",
}


def section_decode(r: dict) -> list[str]:
    p, sizes = r["preset"], {**r["inputs"], "audio_s": r["audio_s"]}
    lines = ["## Decoding: what one DataLoader worker delivers (`bench/bench_decode.py`)", "",
             f"`SampleDecoder.decode` with the `paper` preset ({p['img_size']} px, text_len "
             f"{p['text_len']}, {p['sample_rate']} Hz / n_fft {p['n_fft']} / hop {p['hop_length']}), "
             f"one process, {r['torch_threads']} torch thread (as in a worker), files from the page "
             f"cache; on {r['cpu']} ({r['usable_cores']} usable cores, shared with other jobs: load "
             f"average {r['load_average'][0]:.1f} at the start, {r['load_average'][1]:.1f} at the "
             "end). Rates are items per CPU second of the process (what a worker with a core of its "
             "own decodes), the median of "
             f"{r['reps']} repeats of at least {r['min_seconds_per_rep']:g} CPU s; the wall-clock "
             "rate, lowered by the other jobs, is beside it. Even per CPU second the figures are "
             "noisy here (shared cores and caches; see the range of the repeats).", "",
             "| input | items / CPU s (median) | range | items / wall s |", "|---|---|---|---|"]
    for kind, label in DECODE_KINDS.items():
        runs = r["runs"][kind]["cpu"]
        lines.append(f"| {label.format(**sizes)} | {r['items_per_cpu_s'][kind]:,.0f} | "
                     f"{min(runs):,.0f}-{max(runs):,.0f} | {r['items_per_wall_s'][kind]:,.0f} |")
    rates = list(r["feeding"][0]["workers_needed"])
    lines += ["", f"Collating one batch ({p['batch_per_modality']} x {len(p['modalities'])} items): "
              f"{r['collate_batch_cpu_s'] * 1e3:.1f} ms CPU. A step of the paper preset takes "
              f"{r['items_per_step']} items, so S steps/s need {r['items_per_step']} S items/s; one "
              "worker builds a whole batch, in `t_step = b (1/r_image + 1/r_audio + 1/r_text) + "
              "t_collate` CPU seconds, and S steps/s need `ceil(S t_step)` workers with a core each "
              "(assuming workers scale with cores; memory bandwidth and the main process's pinning "
              "and copies are not counted). The step rates below are what-ifs, not GPU "
              "measurements:", "",
              "| audio decoded as | t_step ms | steps/s per worker | "
              + " | ".join(f"workers at {s} steps/s" for s in rates) + " |",
              "|---|---|---|" + "---|" * len(rates)]
    audio_as = {"audio_png": "spectrogram PNG", "audio_wav_cached": "WAV, spectrogram cached",
                "audio_wav_uncached": "WAV, spectrogram computed (first epoch)",
                "audio_ogg_uncached": "Ogg, spectrogram computed (first epoch)"}
    for f in r["feeding"]:
        lines.append(f"| {audio_as.get(f['audio'], f['audio'])} | {f['worker_step_s'] * 1e3:.1f} | "
                     f"{f['steps_per_s_per_worker']:.1f} | "
                     + " | ".join(str(n) for n in f["workers_needed"].values()) + " |")
    gpu = r.get("gpu_measured")
    lines.append("")
    if gpu:
        lines += [f"Measured on {gpu['device']} (`bench/gpu.sh`): {gpu['steps_per_s']:.2f} train "
                  "steps/s, which needs "
                  + ", ".join(f"{f['workers_for_measured_gpu']} ({f['audio']})" for f in r["feeding"])
                  + " workers.", ""]
    else:
        lines += ["No GPU step rate is measured yet (`bench/gpu.sh` writes it); with one, this "
                  "section gives the workers it needs.", ""]
    return lines


def section_gpu(r: dict) -> list[str]:
    return ["## GPU: paper preset (`bench/gpu.sh`)", "", "```",
            *[f"{k}: {v}" for k, v in r.items()], "```", ""]


def split_sections(lines: list[str]) -> list[list[str]]:
    """Markdown lines cut before each ``## `` heading (part 0: the lines before the first)."""
    parts: list[list[str]] = [[]]
    for line in lines:
        if line.startswith("## "):
            parts.append([])
        parts[-1].append(line)
    return parts


def update_sections(old: str, new: list[str]) -> list[str]:
    """``old`` with each ``## `` section that ``new`` also holds replaced by ``new``'s; a section
    ``old`` lacks goes before its GPU section (or at the end). Everything else is kept."""
    parts = split_sections(old.splitlines())
    for section in split_sections(new)[1:]:
        at = next((i for i, p in enumerate(parts) if p[:1] == section[:1]), None)
        if at is not None:
            parts[at] = section
        else:
            gpu = next((i for i, p in enumerate(parts) if p[:1] and p[0].startswith("## GPU")), None)
            parts.insert(len(parts) if gpu is None else gpu, section)
    return [line for part in parts for line in part]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small variants, to check the pipeline")
    ap.add_argument("--only", help="comma-separated subset of: step, metrics, search, server, demo, "
                                   "concurrent, index, index_large, decode")
    ap.add_argument("--out", type=Path, default=REPO / "BENCHMARKS.md")
    ap.add_argument("--work", type=Path, help="folder for the figures (JSON); default: a new temp folder")
    ap.add_argument("--render-only", action="store_true",
                    help="run nothing: write BENCHMARKS.md from the JSON figures already in --work")
    ap.add_argument("--update", action="store_true",
                    help="replace only the sections with figures in --work (e.g. those of "
                         "--only demo) in the existing --out file, keeping its others and its header")
    args = ap.parse_args()
    chosen = set(args.only.split(",")) if args.only else {"step", "metrics", "search", "server", "demo",
                                                          "concurrent", "index", "index_large",
                                                          "decode"}
    quick = ["--quick"] if args.quick else []
    work = args.work or Path(tempfile.mkdtemp(prefix="dcinet-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    runs = {
        "step": lambda: run_json("bench_step.py", ["--img-size", "112", "--reps", "5"] if args.quick else [], work),
        "metrics": lambda: run_json("bench_metrics.py", quick, work),
        "search": lambda: run_json("bench_search.py", [*quick, "--work", str(work / "search")], work),
        "server": lambda: run_json("bench_server.py", quick, work),
        "demo": lambda: run_json("bench_demo.py", [*quick, "--work",
                                                   tempfile.mkdtemp(dir=work, prefix="demo-")], work),
        "concurrent": lambda: run_json("bench_concurrent.py", quick, work),
        "index": lambda: run_json("bench_index.py", [*quick, "--large", "0"], work),  # see index_large
        "index_large": lambda: run_json("bench_index.py", [*quick, "--gallery", "0"], work,
                                        "bench_index_large"),
        "decode": lambda: run_json("bench_decode.py", quick, work),
    }
    saved = {"step": "bench_step.json", "metrics": "bench_metrics.json", "search": "bench_search.json",
             "server": "bench_server.json", "demo": "bench_demo.json", "concurrent": "bench_concurrent.json",
             "index": "bench_index.json", "index_large": "bench_index_large.json",
             "decode": "bench_decode.json"}
    render = {"step": section_step, "metrics": section_metrics, "search": section_search,
              "server": section_server, "demo": section_demo, "concurrent": section_concurrent,
              "index": section_index, "index_large": section_index_large, "decode": section_decode}
    sections: list[str] = []
    for name, run in runs.items():
        if name in chosen and not args.render_only:
            run()
        if (work / saved[name]).exists():
            sections += render[name](json.loads((work / saved[name]).read_text()))
    gpu = BENCH / "gpu_results.json"
    sections += section_gpu(json.loads(gpu.read_text())) if gpu.exists() else [
        "## GPU", "", "Not measured yet: no CUDA machine was available. `bash bench/gpu.sh` measures "
        "the paper preset's throughput and projected 150-epoch time on one.", ""]
    header = ["# Benchmarks", "", f"Generated by `make bench` (`python bench/run_all.py"
              f"{' --quick' if args.quick else ''}`) on {time.strftime('%Y-%m-%d')}.", "",
              f"Machine: {machine()}.", "",
              "Times on a shared 2-core machine are noisy: each figure is a median or best of "
              "repeated runs and every comparison is a ratio measured in the same process.", ""]
    if args.update and args.out.exists():
        args.out.write_text("\n".join(update_sections(args.out.read_text(), sections)) + "\n")
    else:
        args.out.write_text("\n".join(header + sections))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
