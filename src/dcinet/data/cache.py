"""Fill the spectrogram cache once, before training (``dcinet data cache``), instead of during the
first epoch: every waveform of a collection through :func:`~dcinet.data.audio.cached_spectrogram_db`
with a config's ``sample_rate``, ``n_fft`` and ``hop_length``, in worker processes."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from dcinet.config import Config
from dcinet.data.audio import cached_spectrogram_db, is_picture, spectrogram_cache_file
from dcinet.data.problems import DecodeError
from dcinet.data.records import Sample


@dataclass(frozen=True)
class CacheReport:
    """What :func:`fill_spectrogram_cache` did: spectrograms computed now, found already cached,
    and ready-made spectrogram pictures (which need none)."""

    computed: int
    cached: int
    pictures: int

    def format(self) -> str:
        return (f"{self.computed} spectrograms computed, {self.cached} already cached, "
                f"{self.pictures} spectrogram pictures (no cache needed)")


def fill_spectrogram_cache(samples: list[Sample], cfg: Config, cache_dir: Path | None = None,
                           workers: int = 1, progress: bool = False) -> CacheReport:
    """Compute and cache the spectrogram of every audio waveform among ``samples``.

    Raises:
        DcinetError: naming a file that cannot be read or decoded.
    """
    waves = [s for s in samples if s.modality == "audio" and s.path is not None]
    pictures = [s for s in waves if is_picture(s.path)]
    todo, cached = [], 0
    for sample in waves:
        if is_picture(sample.path):
            continue
        data = sample.path.read_bytes()
        target = spectrogram_cache_file(data, cfg.sample_rate, cfg.n_fft, cfg.hop_length, cache_dir)
        if target.is_file():
            cached += 1
        else:
            todo.append(sample.path)
    jobs = [(path, cfg.sample_rate, cfg.n_fft, cfg.hop_length, cache_dir) for path in todo]
    # spawned, not forked: a fork of a process whose OpenMP pool (torch's) is running can hang
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=context) as pool:
        for error in tqdm(pool.map(_compute, jobs), total=len(jobs), desc="spectrograms",
                          unit="file", disable=not progress):
            if error is not None:
                raise DecodeError(*error)
    return CacheReport(len(todo), cached, len(pictures))


def _compute(job: tuple[Path, int, int, int, Path | None]) -> tuple[str, str, str] | None:
    """Cache one file's spectrogram; the error as ``(name, kind, reason)`` (plain values cross
    process boundaries), or None."""
    path, sample_rate, n_fft, hop_length, cache_dir = job
    try:
        cached_spectrogram_db(path.read_bytes(), str(path), sample_rate, n_fft, hop_length,
                              cache_dir)
    except DecodeError as exc:
        return exc.name, exc.kind, exc.reason
    except OSError as exc:
        return str(path), "bad_audio", f"cannot read file ({exc.strerror or exc})"
    return None
