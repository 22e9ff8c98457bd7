"""Gallery media for the page: thumbnails of images and spectrogram thumbnails of audio (PNG)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from dcinet.config import Config

THUMB_SIDE = 160
"""Longest side of an image thumbnail, in pixels."""
SPECTROGRAM_THUMB = (200, 96)
"""(width, height) of an audio spectrogram thumbnail, in pixels."""


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def image_thumbnail(path: Path) -> bytes:
    """PNG of the image at ``path``, downscaled to at most :data:`THUMB_SIDE` pixels a side.

    Raises:
        DecodeError: the file is missing or not an image.
    """
    from dcinet.data.image import open_image

    img = open_image(Path(path))
    img.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.BILINEAR)
    return _png(img)


def spectrogram_rgb(db: np.ndarray) -> np.ndarray:
    """A dB spectrogram ``(freq, frames)`` -> uint8 RGB ``(freq, frames, 3)``: the levels the model
    sees (:func:`~dcinet.data.audio.spectrogram_levels`) coloured with matplotlib's ``magma`` map."""
    from matplotlib import colormaps

    from dcinet.data.audio import spectrogram_levels

    return (colormaps["magma"](spectrogram_levels(db))[..., :3] * 255).round().astype(np.uint8)


def audio_thumbnail(path: Path, cfg: Config) -> bytes:
    """PNG spectrogram of the audio file at ``path`` (a picture file is simply resized),
    :data:`SPECTROGRAM_THUMB` in size, with the run's STFT settings.

    Raises:
        DecodeError: the file is missing or cannot be decoded.
    """
    from dcinet.data.audio import is_picture, read_audio, spectrogram_db
    from dcinet.data.image import open_image

    if is_picture(path):
        img = open_image(Path(path))
    else:
        wave, rate = read_audio(Path(path))
        img = Image.fromarray(spectrogram_rgb(
            spectrogram_db(wave, rate, cfg.sample_rate, cfg.n_fft, cfg.hop_length)))
    return _png(img.resize(SPECTROGRAM_THUMB, Image.BILINEAR))
