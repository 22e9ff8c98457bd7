"""How many windows a folder of recordings makes, and how many each energy floor skips.

    python bench/audio_windows.py [ROOT] [--config paper] [key=value ...] [--floors 20,30,40]

``ROOT`` (default ``../shared/data/birdsong``) is searched for audio files (wav, flac, ogg, mp3);
``audio_seconds`` / ``audio_hop_seconds`` come from the config (default here: 5 s every 2.5 s).
Every file is decoded and its spectrogram computed (no cache), then cut with
:func:`~dcinet.data.audio_windows.audible_windows` at each floor. Prints the counts (``--json F``
writes them) and the decode time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from dcinet.config import load_config
from dcinet.data.audio import read_audio, spectrogram_db
from dcinet.data.audio_windows import Windowing, audible_windows

SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
DEFAULT_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "birdsong"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--config", default="paper")
    parser.add_argument("--floors", default="20,30,40", help="comma-separated floors in dB")
    parser.add_argument("--json", type=Path)
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)
    files = sorted(p for p in args.root.rglob("*") if p.suffix.lower() in SUFFIXES)
    if not files:
        print(f"no audio files under {args.root}", file=sys.stderr)
        return 2
    cfg = load_config(args.config, ["audio_seconds=5", "audio_hop_seconds=2.5", *args.overrides])
    floors = [float(f) for f in args.floors.split(",")]
    start = time.perf_counter()
    spectrograms = [spectrogram_db(*read_audio(p), cfg.sample_rate, cfg.n_fft, cfg.hop_length)
                    for p in files]
    seconds = time.perf_counter() - start
    windowing = Windowing(cfg.audio_seconds, cfg.audio_hop_seconds, None)
    total = sum(audible_windows(db, windowing, cfg.sample_rate, cfg.hop_length)[1]
                for db in spectrograms)
    kept = {f: sum(len(audible_windows(db, replace(windowing, floor_db=f), cfg.sample_rate,
                                       cfg.hop_length)[0]) for db in spectrograms) for f in floors}
    figures = {"root": str(args.root), "recordings": len(files), "audio_seconds": cfg.audio_seconds,
               "audio_hop_seconds": cfg.audio_hop_seconds, "sample_rate": cfg.sample_rate,
               "n_fft": cfg.n_fft, "hop_length": cfg.hop_length, "windows": total,
               "skipped_by_floor_db": {str(f): total - k for f, k in kept.items()},
               "decode_and_stft_seconds": round(seconds, 2)}
    print(f"{len(files)} recordings, {total} windows of {cfg.audio_seconds:g} s every "
          f"{cfg.audio_hop_seconds:g} s ({cfg.sample_rate} Hz, n_fft {cfg.n_fft}, hop "
          f"{cfg.hop_length}); decode + STFT {seconds:.1f} s")
    for f, k in kept.items():
        print(f"  floor {f:g} dB: {total - k} skipped, {k} kept")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
