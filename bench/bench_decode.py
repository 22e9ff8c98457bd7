"""Benchmark: decode throughput of one DataLoader worker, and how many workers feed one GPU.

Every item goes through the project's real path, :meth:`dcinet.data.decode.SampleDecoder.decode`
with the ``paper`` preset's sizes (448 px inputs, images resized to 510 x 510 and center-cropped,
text_len 448, 16 kHz / n_fft 512 / hop 128 spectrograms), in one process with one torch thread,
as a DataLoader worker runs (torch sets one thread in each worker). The inputs are generated in a
temporary folder (``--files`` distinct files per kind, decoded in turn, from the page cache):

- ``image_jpeg``: a 680 x 510 JPEG (shorter side 510, quality 90) of smooth noise with detail;
- ``audio_png``: a spectrogram picture as PKU FG-XMedia ships audio (448 x 448 grey PNG, rendered
  from a recording by ``dcinet data prepare-fgxmedia --convert-audio``'s renderer);
- ``audio_wav`` / ``audio_ogg``: a ``--audio-s`` second 44.1 kHz mono recording (16-bit WAV,
  Ogg Vorbis) -> resampled, STFT, picture: ``_uncached`` computes the spectrogram (the first
  epoch, or ``decode(cache=False)``), ``_cached`` reads it from the spectrogram cache (later
  epochs, or after ``dcinet data cache``);
- ``text``: a two-line description of about 400 characters -> 448 character ids.

Figures: items per CPU second of each kind (``time.process_time``: what a worker with a core of
its own decodes; on a shared machine wall-clock rates fall with the other jobs' load, so they are
kept beside, not used), the median of ``--reps`` repeats of at least ``--seconds`` CPU seconds
each, and the CPU time to collate one paper batch (8 items x 3 modalities). One worker spends
``t_step = b * sum_m 1 / r_m + t_collate`` seconds on a step (``b`` = 8 items of each modality
``m`` decoded at ``r_m`` items per CPU second), so ``S`` steps/s take ``24 S`` items/s and
``ceil(S * t_step)`` workers, one core each. GPU step rates are not assumed here: the table is
over ``--steps-per-s``, and uses the measured rate of ``bench/gpu_results.json``
(``bench/gpu.sh``) when that file exists.

Run: ``python bench/bench_decode.py [--quick] [--reps 7] [--seconds 1] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from bench_concurrent import cpu_model
from PIL import Image

from dcinet.config import load_config
from dcinet.data.dataset import collate_by_modality
from dcinet.data.decode import SampleDecoder
from dcinet.sources.fgxmedia_prepare import render_spectrogram_picture

BENCH = Path(__file__).resolve().parent
GPU_RESULTS = BENCH / "gpu_results.json"
AUDIO_RATE = 44_100
TEXT = ("This small songbird has a bright red crown, a short conical bill and brown wings with two "
        "pale wing bars; its breast is buff with fine dark streaks.\nIt is often seen in marshes "
        "and reed beds, where it climbs the stems and sings a fast, buzzy trill from the tops of "
        "the reeds in spring. The tail is short and notched, the legs are pink.")
PAPER_MODALITIES = ("image", "audio", "text")


def smooth_noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """An RGB uint8 picture ``(height, width, 3)``: noise at four scales, coarse to fine."""
    out = np.zeros((height, width, 3), dtype=np.float32)
    for cells, weight in ((4, 0.45), (16, 0.3), (64, 0.15), (width, 0.1)):
        small = rng.random((max(2, cells * height // width), cells, 3), dtype=np.float32)
        grid = Image.fromarray((small * 255).astype(np.uint8)).resize((width, height), Image.BICUBIC)
        out += weight * np.asarray(grid, dtype=np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def recording(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A mono float32 ``seconds`` long at 44.1 kHz: rising chirps (a trill) over soft noise."""
    t = np.arange(int(seconds * AUDIO_RATE)) / AUDIO_RATE
    phase = 2 * np.pi * (2000 + 1500 * ((t * 6) % 1.0)) * t
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 3 * t + rng.uniform(0, np.pi)))
    return (0.4 * envelope * np.sin(phase) + rng.normal(0, 0.02, t.shape)).astype(np.float32)


def make_inputs(folder: Path, files: int, audio_s: float) -> dict[str, list[Path | str]]:
    """``files`` distinct inputs of each kind in ``folder`` (text: the strings of text files)."""
    rng = np.random.default_rng(0)
    kinds: dict[str, list[Path | str]] = {k: [] for k in ("jpeg", "png", "wav", "ogg", "text")}
    for i in range(files):
        jpeg = folder / f"image{i}.jpg"
        Image.fromarray(smooth_noise(rng, 510, 680)).save(jpeg, quality=90)
        wave = recording(rng, audio_s)
        wav, ogg, png = folder / f"audio{i}.wav", folder / f"audio{i}.ogg", folder / f"audio{i}.png"
        sf.write(wav, wave, AUDIO_RATE, subtype="PCM_16")
        sf.write(ogg, wave, AUDIO_RATE, format="OGG", subtype="VORBIS")
        render_spectrogram_picture(wav, png, size=448, cfg=load_config("paper"))
        text = folder / f"text{i}.txt"
        text.write_text(f"{TEXT} ({i})\n", encoding="utf-8")
        for kind, path in zip(kinds, (jpeg, png, wav, ogg, text), strict=True):
            kinds[kind].append(path)
    return kinds


def items_per_s(decode: Callable[[Path | str], torch.Tensor], inputs: list, reps: int,
                seconds: float) -> dict[str, list[float]]:
    """``reps`` repeats of decoding ``inputs`` in turn for at least ``seconds`` of CPU time each.

    Returns:
        ``{"cpu": [...], "wall": [...]}``: items per CPU second of this process (what one core
        of its own gives a worker; other jobs on the machine do not lower it) and per wall second.
    """
    decode(inputs[0])  # warm: imports, first-call set-up
    rates: dict[str, list[float]] = {"cpu": [], "wall": []}
    for _ in range(reps):
        count, cpu0, wall0 = 0, time.process_time(), time.perf_counter()
        while True:
            decode(inputs[count % len(inputs)])
            count += 1
            cpu = time.process_time() - cpu0
            if cpu >= seconds and count >= 3:
                break
        rates["cpu"].append(count / cpu)
        rates["wall"].append(count / (time.perf_counter() - wall0))
    return rates


def collate_seconds(decoder: SampleDecoder, inputs: dict[str, list], b: int, reps: int) -> list[float]:
    """CPU seconds to collate one batch of ``b`` decoded items per paper modality, ``reps`` times."""
    sources = {"image": inputs["jpeg"], "audio": inputs["png"], "text": inputs["text"]}
    items = [(decoder.decode(sources[m][j % len(sources[m])], m), 0, j)
             for m in PAPER_MODALITIES for j in range(b)]
    times = []
    for _ in range(reps):
        started = time.process_time()
        collate_by_modality(items, list(PAPER_MODALITIES))
        times.append(time.process_time() - started)
    return times


def feeding(rates: dict[str, float], audio_kind: str, collate_s: float, b: int,
            steps_per_s: list[float]) -> dict:
    """One worker's seconds per step with audio decoded as ``audio_kind``, and the workers that
    ``S`` steps/s need: ``ceil(S * t_step)``."""
    step_s = b * (1 / rates["image_jpeg"] + 1 / rates[audio_kind] + 1 / rates["text"]) + collate_s
    return {"audio": audio_kind, "worker_step_s": step_s, "steps_per_s_per_worker": 1 / step_s,
            "workers_needed": {f"{s:g}": math.ceil(s * step_s - 1e-9) for s in steps_per_s}}


def measured_gpu_steps_per_s() -> dict | None:
    """The paper preset's measured train steps/s from ``bench/gpu_results.json``, if present."""
    if not GPU_RESULTS.exists():
        return None
    r = json.loads(GPU_RESULTS.read_text())
    if "median_step_s" not in r:
        return None
    return {"device": r.get("device"), "steps_per_s": 1 / r["median_step_s"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 repeats of 0.2 s, 2 files per kind")
    parser.add_argument("--reps", type=int, default=7, help="repeats per kind (median reported)")
    parser.add_argument("--seconds", type=float, default=1.0, help="minimum seconds per repeat")
    parser.add_argument("--files", type=int, default=6, help="distinct files per kind")
    parser.add_argument("--audio-s", type=float, default=5.0, help="seconds of each recording")
    parser.add_argument("--steps-per-s", default="1,2,4,8,16,32",
                        help="comma-separated train step rates to size the workers for")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.quick:
        args.reps, args.seconds, args.files = 2, 0.2, 2
    torch.set_num_threads(1)  # as in a DataLoader worker
    cfg = load_config("paper")
    b = cfg.batch_per_modality
    steps_per_s = [float(s) for s in args.steps_per_s.split(",")]
    load_before = os.getloadavg()[0]
    print(f"{cpu_model()}, {len(os.sched_getaffinity(0))} usable cores, load average "
          f"{load_before:.2f}", flush=True)
    with tempfile.TemporaryDirectory(prefix="dcinet-bench-decode-") as tmp:
        folder = Path(tmp)
        inputs = make_inputs(folder, args.files, args.audio_s)
        decoder = SampleDecoder(cfg, cache_dir=folder / "cache")
        for path in inputs["wav"] + inputs["ogg"]:
            decoder.decode(path, "audio")  # fill the spectrogram cache for the _cached kinds
        texts = [Path(p).read_text(encoding="utf-8") for p in inputs["text"]]
        cases: dict[str, tuple[Callable, list]] = {
            "image_jpeg": (lambda p: decoder.decode(p, "image"), inputs["jpeg"]),
            "audio_png": (lambda p: decoder.decode(p, "audio"), inputs["png"]),
            "audio_wav_uncached": (lambda p: decoder.decode(p, "audio", cache=False), inputs["wav"]),
            "audio_wav_cached": (lambda p: decoder.decode(p, "audio"), inputs["wav"]),
            "audio_ogg_uncached": (lambda p: decoder.decode(p, "audio", cache=False), inputs["ogg"]),
            "audio_ogg_cached": (lambda p: decoder.decode(p, "audio"), inputs["ogg"]),
            "text": (lambda p: decoder.decode(p, "text"), texts),
        }
        runs = {}
        for name, (decode, items) in cases.items():
            runs[name] = items_per_s(decode, items, args.reps, args.seconds)
            cpu = runs[name]["cpu"]
            print(f"{name:>20}: {statistics.median(cpu):8.1f} items per CPU s (median of "
                  f"{len(cpu)}; {min(cpu):.1f}-{max(cpu):.1f}), wall "
                  f"{statistics.median(runs[name]['wall']):.1f} items/s", flush=True)
        collate = statistics.median(collate_seconds(decoder, inputs, b, max(args.reps, 5)))
        sizes = {"jpeg": list(Image.open(inputs["jpeg"][0]).size),
                 "png": list(Image.open(inputs["png"][0]).size),
                 "wav_kib": os.path.getsize(inputs["wav"][0]) / 1024,
                 "ogg_kib": os.path.getsize(inputs["ogg"][0]) / 1024}
    rates = {name: statistics.median(r["cpu"]) for name, r in runs.items()}
    out = {
        "cpu": cpu_model(), "usable_cores": len(os.sched_getaffinity(0)), "torch_threads": 1,
        "quick": args.quick, "reps": args.reps, "min_seconds_per_rep": args.seconds,
        "files_per_kind": args.files, "audio_s": args.audio_s, "inputs": sizes,
        "preset": {"img_size": cfg.img_size, "resize": cfg.resize, "text_len": cfg.text_len,
                   "sample_rate": cfg.sample_rate, "n_fft": cfg.n_fft, "hop_length": cfg.hop_length,
                   "batch_per_modality": b, "modalities": list(PAPER_MODALITIES)},
        "items_per_cpu_s": rates, "runs": runs, "collate_batch_cpu_s": collate,
        "items_per_wall_s": {name: statistics.median(r["wall"]) for name, r in runs.items()},
        "items_per_step": b * len(PAPER_MODALITIES),
        "formula": "t_step = b * (1/r_image + 1/r_audio + 1/r_text) + t_collate; "
                   "workers(S steps/s) = ceil(S * t_step); items/s needed = 3 * b * S",
        "feeding": [feeding(rates, kind, collate, b, steps_per_s)
                    for kind in ("audio_png", "audio_wav_cached", "audio_wav_uncached",
                                 "audio_ogg_uncached")],
        "gpu_measured": measured_gpu_steps_per_s(),
        "load_average": [load_before, os.getloadavg()[0]],
    }
    if out["gpu_measured"]:
        s = out["gpu_measured"]["steps_per_s"]
        for f in out["feeding"]:
            f["workers_for_measured_gpu"] = math.ceil(s * f["worker_step_s"] - 1e-9)
    print(f"collate of one {b} x {len(PAPER_MODALITIES)} batch: {collate * 1e3:.1f} ms")
    for f in out["feeding"]:
        print(f"audio as {f['audio']}: one worker {f['steps_per_s_per_worker']:.2f} steps/s; workers "
              f"needed at {', '.join(f'{s} steps/s: {n}' for s, n in f['workers_needed'].items())}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
