"""Long recordings as fixed windows of their dB spectrogram.

A recording's whole dB spectrogram (:func:`~dcinet.data.audio.spectrogram_db`, cached on disk) is
cut into windows of ``seconds`` every ``hop_seconds`` (config keys ``audio_seconds``,
``audio_hop_seconds``); each window is rendered as one model input, so a 40 s recording keeps its
time resolution instead of being squeezed into one picture. Windows much quieter than the loudest
one (``audio_energy_floor_db``) are skipped; the loudest is always kept. ``seconds = 0`` keeps
today's protocol: the whole recording is one window, whatever its length.

Sizes are in STFT frames of ``hop_length`` samples at ``sample_rate`` Hz: a window is
``round(seconds * sample_rate / hop_length)`` frames (at least 1). The dB values stay relative to
the recording's loudest bin (not re-referenced per window), so a quiet window looks quiet.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dcinet.data.audio import TOP_DB, is_picture, recording_db, spectrogram_image
from dcinet.data.image import load_image
from dcinet.data.views import pick_view


@dataclass(frozen=True)
class Windowing:
    """How a recording is cut.

    Attributes:
        seconds: window length in seconds; 0 = the whole recording is the one window.
        hop_seconds: seconds between window starts; None = ``seconds`` (no overlap).
        floor_db: windows whose mean power is more than this many dB below the loudest window's
            are skipped; None = every window is kept.
    """

    seconds: float = 0.0
    hop_seconds: float | None = None
    floor_db: float | None = None

    @property
    def whole(self) -> bool:
        """True when the whole recording is one window (``seconds == 0``)."""
        return self.seconds <= 0

    def sizes(self, sample_rate: int, hop_length: int) -> tuple[int, float]:
        """``(window, hop)`` in STFT frames (only when not :attr:`whole`): the window rounded to
        a whole number of frames (at least 1), the hop kept exact (at least 1 frame) so that
        window ``k`` starts at ``k * hop_seconds`` to the nearest frame, without drift."""
        per_second = sample_rate / hop_length
        hop = self.seconds if self.hop_seconds is None else self.hop_seconds
        return max(1, _nearest(self.seconds * per_second)), max(1.0, hop * per_second)


def _nearest(x: float) -> int:
    """``x`` rounded half up (not to even), so that window positions are easy to predict."""
    return math.floor(x + 0.5)


def window_starts(n_frames: int, size: int, hop: float) -> list[int]:
    """First frame of each window of ``size`` frames, one every ``hop`` frames (a hop may be
    fractional: window ``k`` starts at ``k * hop`` rounded half up), covering a spectrogram of
    ``n_frames`` frames.

    A centred STFT of ``N`` samples has ``N // hop_length + 1`` frames, one more than the
    recording's length in frames: that last, half-padded frame does not add a window. There are
    ``1 + ceil(max(0, n_frames - 1 - size) / hop)`` windows; the last one is moved back so that it
    ends at the last frame (no window runs past the end, nothing is left out). A spectrogram of at
    most ``size + 1`` frames is one window at 0 (padded by :func:`cut_window` when shorter than
    ``size``). A 40 s recording at 16 kHz, hop 128, cut into 4 s windows every 2 s: 5001 frames,
    size 500, hop 250 -> 19 windows.
    """
    if n_frames <= 0 or size <= 0 or hop <= 0:
        raise ValueError(f"need positive sizes, got n_frames={n_frames}, size={size}, hop={hop}")
    count = 1 + math.ceil(max(0, n_frames - 1 - size) / hop - 1e-9)  # 1e-9: float noise in hop
    last = max(0, n_frames - size)
    return [min(_nearest(k * hop), last) for k in range(count)]


def cut_window(db: np.ndarray, start: int, size: int) -> np.ndarray:
    """Frames ``start .. start + size - 1`` of a dB spectrogram ``(freq, frames)``, right-padded
    with silence (``-TOP_DB``) where the recording is shorter. Returns float32 ``(freq, size)``."""
    part = np.asarray(db[:, start:start + size], dtype=np.float32)
    if part.shape[1] == size:
        return part
    pad = np.full((db.shape[0], size - part.shape[1]), -TOP_DB, dtype=np.float32)
    return np.concatenate([part, pad], axis=1)


def window_power_db(db: np.ndarray, starts: list[int], size: int) -> np.ndarray:
    """Mean power of each window (padding counted as silence), in dB relative to the recording's
    loudest bin: ``10 log10(mean(10^(db / 10)))`` over the window's bins. Returns float64
    ``(len(starts),)`` in ``[-TOP_DB, 0]``."""
    frame_power = np.mean(np.power(10.0, np.asarray(db, dtype=np.float64) / 10.0), axis=0)
    silence = 10.0 ** (-TOP_DB / 10.0)
    total = np.concatenate([[0.0], np.cumsum(frame_power)])
    n = frame_power.shape[0]
    sums = []
    for s in starts:
        end = min(s + size, n)
        sums.append(total[end] - total[s] + (s + size - end) * silence)
    return 10.0 * np.log10(np.maximum(np.asarray(sums) / size, silence))


def audible_windows(db: np.ndarray, windowing: Windowing, sample_rate: int,
                    hop_length: int) -> tuple[list[np.ndarray], int]:
    """The windows of a recording that are kept, in time order, and how many were cut in all.

    Args:
        db: float32 ``(freq, frames)`` dB spectrogram of the whole recording.
        windowing: how to cut it; :attr:`Windowing.whole` returns ``[db]``.
        sample_rate, hop_length: of the STFT that made ``db``.

    Returns:
        ``(windows, total)``: float32 ``(freq, size)`` arrays (at least one: the loudest window is
        always kept) and the number of windows before the energy floor.
    """
    if windowing.whole:
        return [np.asarray(db, dtype=np.float32)], 1
    size, hop = windowing.sizes(sample_rate, hop_length)
    starts = window_starts(db.shape[1], size, hop)
    if windowing.floor_db is not None and len(starts) > 1:
        power = window_power_db(db, starts, size)
        starts = [s for s, p in zip(starts, power, strict=True)
                  if p >= power.max() - windowing.floor_db]
        total = len(power)
    else:
        total = len(starts)
    return [cut_window(db, s, size) for s in starts], total


def load_audio_window(src: Path | str | bytes, img_size: int, sample_rate: int, n_fft: int,
                      hop_length: int, windowing: Windowing, key: tuple[int, ...] | None = None, *,
                      cache_dir: Path | str | None = None, name: str | None = None,
                      cache: bool = True) -> torch.Tensor:
    """One kept window of a recording (:func:`~dcinet.data.views.pick_view` of ``key``; the
    middle kept window for None) as a normalised float32 image ``(3, img_size, img_size)``.

    With :attr:`Windowing.whole` this is :func:`~dcinet.data.audio.load_audio`. A ready-made
    spectrogram picture (:func:`~dcinet.data.audio.is_picture`) is not cut: it is the one view.
    ``name``, ``cache_dir``, ``cache``: as for :func:`~dcinet.data.audio.load_audio`.
    """
    if is_picture(src):
        return load_image(src, img_size, img_size)
    db = recording_db(src, sample_rate, n_fft, hop_length, cache_dir, name, cache)
    windows, _ = audible_windows(db, windowing, sample_rate, hop_length)
    return spectrogram_image(windows[pick_view(len(windows), key)], img_size)


def load_audio_windows(src: Path | str | bytes, img_size: int, sample_rate: int, n_fft: int,
                       hop_length: int, windowing: Windowing, *,
                       cache_dir: Path | str | None = None, name: str | None = None,
                       cache: bool = True) -> torch.Tensor:
    """Every kept window of a recording (:func:`audible_windows`), in time order, as normalised
    images: float32 ``(V, 3, img_size, img_size)``, ``V >= 1`` (1 for a picture or with
    :attr:`Windowing.whole`). Arguments as for :func:`load_audio_window`."""
    if is_picture(src):
        return load_image(src, img_size, img_size)[None]
    db = recording_db(src, sample_rate, n_fft, hop_length, cache_dir, name, cache)
    windows, _ = audible_windows(db, windowing, sample_rate, hop_length)
    return torch.stack([spectrogram_image(w, img_size) for w in windows])


def count_windows(src: Path | str | bytes, sample_rate: int, n_fft: int, hop_length: int,
                  windowing: Windowing, *, cache_dir: Path | str | None = None,
                  name: str | None = None) -> tuple[int, int]:
    """``(kept, total)`` windows of a recording (:func:`audible_windows`, through the spectrogram
    cache); ``(1, 1)`` for a picture or with :attr:`Windowing.whole`."""
    if is_picture(src) or windowing.whole:
        return 1, 1
    db = recording_db(src, sample_rate, n_fft, hop_length, cache_dir, name)
    windows, total = audible_windows(db, windowing, sample_rate, hop_length)
    return len(windows), total
