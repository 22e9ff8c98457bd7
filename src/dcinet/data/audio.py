"""Audio encoding: waveform -> dB spectrogram -> 3-channel image of the model's input size.

The paper (§4.1) turns each recording into a short-time Fourier transform spectrogram rendered as a
448 x 448 x 3 image. Here: decode with soundfile (libsndfile: wav / flac / ogg Vorbis or Opus /
mp3, any sample rate and channel count), average channels to mono (stereo downmix), resample to
``sample_rate`` (band-limited FFT resampling, e.g. 44.1 or 48 kHz to 16 kHz), Hann-window STFT magnitude, decibels relative to the
loudest bin and floored :data:`TOP_DB` below it, then :func:`spectrogram_image`.

PKU FG-XMedia ships its audio as ready-made spectrogram pictures (``.png``); files with a
:data:`PICTURE_SUFFIXES` suffix are loaded as images resized straight to the input size (no crop,
which would cut time or frequency).

Computed dB spectrograms are cached on disk as ``.npy`` files keyed by the sha256 of the file's
bytes and the STFT parameters, so a second epoch (or run) does not recompute them.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

from dcinet.data.image import load_image, normalize
from dcinet.data.problems import DecodeError
from dcinet.errors import DcinetError
from dcinet.files import atomic_save_npy

PICTURE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg")
TOP_DB = 80.0
"""Dynamic range kept below the loudest bin, in dB."""
MIN_SAMPLE_RATE = 1000
"""Lower sample rates are refused: a damaged header, and resampling up from them would explode."""
READABLE = "WAV, FLAC, OGG (Vorbis, Opus), MP3"
"""The audio formats named in errors (libsndfile reads a few rarer ones too)."""
_SHORTFALL_FRAMES = 1152
"""Frames (one mp3 frame) by which a lossy file may decode shorter than its header says."""
_CACHE_VERSION = "dcinet-spectrogram-v1"
_PICTURE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")


def default_cache_dir() -> Path:
    """``$DCINET_CACHE`` if set, else ``~/.cache/dcinet``."""
    env = os.environ.get("DCINET_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "dcinet"


def is_picture(src: Path | str | bytes) -> bool:
    """True for a ready-made spectrogram picture: a ``.png/.jpg/.jpeg`` path, or PNG/JPEG bytes."""
    if isinstance(src, bytes):
        return src.startswith(_PICTURE_MAGIC)
    return Path(src).suffix.lower() in PICTURE_SUFFIXES


def _read_bytes(path: Path | str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise DecodeError(str(path), "missing_file", "audio file not found") from None
    except OSError as exc:
        raise DecodeError(str(path), "bad_audio", f"cannot read audio file ({exc.strerror or exc})") from None


class _SeekGuard(io.BytesIO):
    """Bytes for soundfile whose seeks before the start fail by staying put instead of raising.

    soundfile calls ``seek`` from a C callback, where an exception cannot propagate: it is
    printed as "Exception ignored" and libsndfile goes on. Here the position is kept, which
    libsndfile sees as a failed seek, and the decode fails with a normal soundfile error.
    """

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.tell(), io.SEEK_END: len(self.getbuffer())}[whence]
        if base + offset < 0:
            return self.tell()
        return super().seek(offset, whence)


def declared_seconds(data: bytes) -> float | None:
    """The length an audio file's header declares, without decoding it.

    Returns:
        Seconds (``inf`` when the header gives no length), or None when the bytes are not an
        audio file soundfile can read the header of.
    """
    try:
        info = sf.info(_SeekGuard(data))
    except Exception:  # libsndfile's errors come as several types; any of them means "unknown"
        return None
    if info.samplerate <= 0:
        return None
    return float("inf") if info.frames >= 2**62 else info.frames / info.samplerate


def read_audio(src: Path | str | bytes, name: str | None = None) -> tuple[np.ndarray, int]:
    """Decode an audio file (or its bytes) to a mono waveform.

    Returns:
        ``(wave, sample_rate)``: float32 array ``(samples,)`` in [-1, 1], rate in Hz.

    Raises:
        DecodeError: naming the file when it is missing, in a format libsndfile does not read,
        undecodable, truncated (fewer samples decode than its header declares), empty, not finite
        or has a sample rate below :data:`MIN_SAMPLE_RATE`.
    """
    name = name or (str(src) if not isinstance(src, bytes) else "<audio bytes>")
    data = src if isinstance(src, bytes) else _read_bytes(src)
    if not data:
        raise DecodeError(name, "bad_audio", "zero-length audio file (0 bytes)")
    try:
        with sf.SoundFile(_SeekGuard(data)) as sound:
            declared, rate = sound.frames, sound.samplerate
            wave = sound.read(dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError, ValueError, TypeError) as exc:
        reason = getattr(exc, "error_string", None) or str(exc)
        if "not recognised" in reason:
            raise DecodeError(name, "bad_audio", "cannot decode audio: format not recognised (a corrupt "
                              f"file, or not one of {READABLE})") from None
        raise DecodeError(name, "bad_audio", f"cannot decode audio ({reason})") from None
    if wave.shape[0] == 0:
        raise DecodeError(name, "bad_audio", "zero-length audio (no samples decode: an empty or cut recording)")
    missing = _wav_missing_frames(data)
    short = declared - wave.shape[0] if declared < 2**62 else 0  # 2**62 and up: length unknown
    if short > _SHORTFALL_FRAMES + declared // 100:  # codec padding (an mp3 frame) is not a cut
        missing = max(missing, short)
    if missing > 0 and rate > 0:
        raise DecodeError(name, "bad_audio", f"truncated audio: {missing / rate:.2f} s of the "
                          f"{(wave.shape[0] + missing) / rate:.2f} s its header declares do not decode")
    if rate < MIN_SAMPLE_RATE:
        raise DecodeError(name, "bad_audio", f"implausible sample rate {rate} Hz (below {MIN_SAMPLE_RATE} Hz)")
    wave = wave.mean(axis=1, dtype=np.float32)
    if not np.isfinite(wave).all():
        raise DecodeError(name, "bad_audio", "audio contains NaN or infinite samples")
    return wave, int(rate)


def _wav_missing_frames(data: bytes) -> int:
    """Frames a RIFF WAVE file's ``data`` chunk declares beyond the bytes present (libsndfile
    reads a cut file up to its end without a word); 0 for other files, streamed WAVs whose size
    field is 0 or ``0xFFFFFFFF``, and files without a ``fmt `` chunk before ``data``."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return 0
    offset, frame_bytes = 12, 0
    while offset + 8 <= len(data):
        chunk, size = data[offset:offset + 4], int.from_bytes(data[offset + 4:offset + 8], "little")
        if chunk == b"fmt " and offset + 24 <= len(data):
            frame_bytes = int.from_bytes(data[offset + 20:offset + 22], "little")  # block align
        if chunk == b"data":
            if size in (0, 0xFFFFFFFF) or frame_bytes <= 0:
                return 0
            return max(0, size - (len(data) - offset - 8)) // frame_bytes
        offset += 8 + size + (size & 1)
    return 0


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Band-limited (FFT) resampling of ``(samples,)`` from ``rate`` Hz to ``target`` Hz; float32."""
    if rate == target:
        return wave.astype(np.float32, copy=False)
    n_out = max(1, int(round(wave.shape[0] * target / rate)))
    spectrum = np.fft.rfft(wave.astype(np.float64))
    kept = np.zeros(n_out // 2 + 1, dtype=spectrum.dtype)
    n = min(kept.shape[0], spectrum.shape[0])
    kept[:n] = spectrum[:n]
    return (np.fft.irfft(kept, n_out) * (n_out / wave.shape[0])).astype(np.float32)


def spectrogram_db(wave: np.ndarray, sr: int, sample_rate: int, n_fft: int, hop_length: int) -> np.ndarray:
    """Hann-window STFT magnitude in dB of a mono wave.

    Args:
        wave: float array ``(samples,)``; sr: its rate in Hz, resampled to ``sample_rate`` first.
        n_fft, hop_length: STFT window and hop in samples (frames centred, zero-padded ends).

    Returns:
        float32 ``(n_fft // 2 + 1, frames)``, dB relative to the loudest bin (max = 0), floored at
        ``-TOP_DB``; all ``-TOP_DB`` for digital silence. Row 0 is the lowest frequency.
    """
    signal = torch.from_numpy(resample(np.asarray(wave, dtype=np.float32), sr, sample_rate))
    magnitude = torch.stft(signal, n_fft=n_fft, hop_length=hop_length, window=torch.hann_window(n_fft),
                           center=True, pad_mode="constant", return_complex=True).abs()
    peak = magnitude.max()
    if peak <= 0:
        return np.full(tuple(magnitude.shape), -TOP_DB, dtype=np.float32)
    db = 20.0 * torch.log10(torch.clamp(magnitude / peak, min=1e-12))
    return torch.clamp(db, min=-TOP_DB).numpy().astype(np.float32)


def spectrogram_levels(db: np.ndarray) -> np.ndarray:
    """A dB spectrogram ``(freq, frames)`` as picture levels: ``[-TOP_DB, 0]`` dB mapped linearly
    to [0, 1], rows flipped so low frequencies are at the bottom. Returns float32 ``(freq, frames)``."""
    return np.clip((np.asarray(db, dtype=np.float32) + TOP_DB) / TOP_DB, 0.0, 1.0)[::-1].copy()


def spectrogram_grey(db: np.ndarray, img_size: int) -> torch.Tensor:
    """Render a dB spectrogram ``(freq, frames)`` as a grey picture ``(img_size, img_size)``:
    :func:`spectrogram_levels`, then a bilinear (antialiased) resize. Returns float32 in [0, 1].
    """
    grey = torch.from_numpy(spectrogram_levels(db))[None, None]
    grey = F.interpolate(grey, size=(img_size, img_size), mode="bilinear", align_corners=False,
                         antialias=True).clamp(0.0, 1.0)
    return grey[0, 0]


def spectrogram_image(db: np.ndarray, img_size: int) -> torch.Tensor:
    """:func:`spectrogram_grey` repeated on 3 channels and ImageNet-normalised like images.

    Returns:
        float32 ``(3, img_size, img_size)``.
    """
    return normalize(spectrogram_grey(db, img_size).expand(3, -1, -1).contiguous())


def _cache_key(data: bytes, sample_rate: int, n_fft: int, hop_length: int) -> str:
    digest = hashlib.sha256(f"{_CACHE_VERSION}|{sample_rate}|{n_fft}|{hop_length}|".encode())
    digest.update(data)
    return digest.hexdigest()


def _atomic_save(target: Path, array: np.ndarray) -> None:
    """Write ``array`` to the cache file ``target`` (.npy), atomically."""
    try:
        atomic_save_npy(target, array)
    except OSError as exc:
        raise DcinetError(f"cannot write the spectrogram cache in {target.parent} ({exc.strerror or exc}); "
                          "set DCINET_CACHE to a writable folder") from None


def spectrogram_cache_file(data: bytes, sample_rate: int, n_fft: int, hop_length: int,
                           cache_dir: Path | str | None = None) -> Path:
    """Where :func:`cached_spectrogram_db` keeps the spectrogram of the audio file bytes ``data``:
    ``<cache_dir>/spectrograms/<sha256(bytes + parameters)>.npy`` (``cache_dir`` defaults to
    :func:`default_cache_dir`)."""
    folder = Path(cache_dir if cache_dir is not None else default_cache_dir()) / "spectrograms"
    return folder / f"{_cache_key(data, sample_rate, n_fft, hop_length)}.npy"


def cached_spectrogram_db(data: bytes, name: str, sample_rate: int, n_fft: int, hop_length: int,
                          cache_dir: Path | str | None = None) -> np.ndarray:
    """:func:`spectrogram_db` of the audio file bytes ``data``, through the on-disk cache.

    The cache file is ``<cache_dir>/spectrograms/<sha256(bytes + parameters)>.npy``, written to a
    temporary file and renamed (safe with several workers); an unreadable cache file is recomputed.
    ``cache_dir`` defaults to :func:`default_cache_dir`. Returns float32 ``(freq, frames)``.
    """
    target = spectrogram_cache_file(data, sample_rate, n_fft, hop_length, cache_dir)
    if target.is_file():
        try:
            return np.load(target, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            pass  # damaged cache entry: recompute and overwrite below
    wave, rate = read_audio(data, name)
    db = spectrogram_db(wave, rate, sample_rate, n_fft, hop_length)
    _atomic_save(target, db)
    return db


def load_audio(src: Path | str | bytes, img_size: int, sample_rate: int, n_fft: int, hop_length: int,
               cache_dir: Path | str | None = None, name: str | None = None,
               cache: bool = True) -> torch.Tensor:
    """Audio file (or bytes) -> normalised float32 image ``(3, img_size, img_size)``.

    Spectrogram pictures (:func:`is_picture`) are resized to ``img_size`` without cropping;
    waveforms go through :func:`cached_spectrogram_db` (or straight through
    :func:`spectrogram_db` with ``cache=False``, e.g. for one-off uploads) and
    :func:`spectrogram_image`. ``name`` is what errors call the audio (default: its path).
    """
    if is_picture(src):
        return load_image(src, img_size, img_size)
    return spectrogram_image(recording_db(src, sample_rate, n_fft, hop_length, cache_dir, name, cache),
                             img_size)


def recording_db(src: Path | str | bytes, sample_rate: int, n_fft: int, hop_length: int,
                 cache_dir: Path | str | None = None, name: str | None = None,
                 cache: bool = True) -> np.ndarray:
    """The dB spectrogram of a whole audio file (or its bytes; not a picture): through
    :func:`cached_spectrogram_db`, or straight from :func:`spectrogram_db` with ``cache=False``.
    Returns float32 ``(n_fft // 2 + 1, frames)``."""
    name = name or (str(src) if not isinstance(src, bytes) else "<audio bytes>")
    data = src if isinstance(src, bytes) else _read_bytes(src)
    if cache:
        return cached_spectrogram_db(data, name, sample_rate, n_fft, hop_length, cache_dir)
    return spectrogram_db(*read_audio(data, name), sample_rate, n_fft, hop_length)
