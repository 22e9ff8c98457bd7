"""Video as frames: a clip is a folder of frame images (or, in FG-XMedia lists, one frame file).

Training sees ONE frame per clip and step: :func:`~dcinet.data.views.pick_view` draws it from
``(seed, epoch, index)`` so that every epoch shows a different, reproducible frame (the middle frame
when no key is given).
Evaluation sees up to ``max_frames`` evenly spaced frames (:func:`spaced_frames`) stacked as
``(F, 3, H, W)``; the caller averages the model's logits over ``F``. Frames are preprocessed exactly
like images (:func:`~dcinet.data.image.load_image`). Video files (mp4, ...) are not decoded:
extract their frames into a folder first.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from dcinet.data.image import load_image
from dcinet.data.problems import DecodeError
from dcinet.data.reader_common import FRAME_SUFFIXES
from dcinet.data.views import pick_view

_DIGITS = re.compile(r"(\d+)", re.ASCII)


def _natural_key(path: Path) -> list[str | int]:
    """``frame_2.jpg`` before ``frame_10.jpg``: digit runs compare as numbers."""
    return [int(part) if i % 2 else part for i, part in enumerate(_DIGITS.split(path.name))]


def list_frames(path: Path | str, strict: bool = False) -> list[Path]:
    """The frames of a clip in temporal (natural name) order.

    ``path`` is a folder of frame images (hidden entries ignored) or a single frame file (a
    one-frame clip). With ``strict`` any other visible entry of the folder is an error (the
    checker uses it so that nothing in a clip folder is ignored silently); without it, other
    entries are skipped.

    Raises:
        DecodeError: naming ``path`` when it is missing, a video file, or holds no frame.
    """
    path = Path(path)
    if os.path.isfile(path):  # os.path: False, not OSError, for names too long
        if path.suffix.lower() in FRAME_SUFFIXES:
            return [path]
        raise DecodeError(str(path), "bad_video", "video files are not decoded; extract the frames "
                          f"into a folder of {'/'.join(s[1:] for s in FRAME_SUFFIXES)} images")
    if not os.path.isdir(path):
        raise DecodeError(str(path), "missing_file", "video clip (frame folder) not found")
    try:
        entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    except OSError as exc:
        raise DecodeError(str(path), "bad_video", f"cannot list frame folder ({exc.strerror or exc})") from None
    frames = sorted((p for p in entries if p.suffix.lower() in FRAME_SUFFIXES and p.is_file()), key=_natural_key)
    if strict:
        stray = sorted(set(entries) - set(frames))
        if stray:
            raise DecodeError(str(stray[0]), "bad_video", "not a frame image "
                              f"({'/'.join(s[1:] for s in FRAME_SUFFIXES)}) inside a clip folder")
    if not frames:
        raise DecodeError(str(path), "bad_video", "clip folder holds no frame images")
    return frames


def spaced_frames(num_frames: int, max_frames: int) -> list[int]:
    """Positions of up to ``max_frames`` evenly spaced frames among ``num_frames``.

    All frames when ``num_frames <= max_frames``, else the centre of each of ``max_frames`` equal
    segments: ``floor((i + 0.5) * num_frames / max_frames)``; ``max_frames = 1`` gives the middle
    frame ``num_frames // 2``.
    """
    if num_frames <= 0 or max_frames <= 0:
        raise ValueError(f"need positive frame counts, got num_frames={num_frames}, max_frames={max_frames}")
    if num_frames <= max_frames:
        return list(range(num_frames))
    return [(2 * i + 1) * num_frames // (2 * max_frames) for i in range(max_frames)]


def load_video_frame(path: Path | str, img_size: int, resize: int,
                     key: tuple[int, ...] | None = None) -> torch.Tensor:
    """One frame (:func:`~dcinet.data.views.pick_view`) of a clip as a float32 image
    ``(3, img_size, img_size)``."""
    frames = list_frames(path)
    return load_image(frames[pick_view(len(frames), key)], img_size, resize)


def load_video_frames(path: Path | str, img_size: int, resize: int, max_frames: int) -> torch.Tensor:
    """Up to ``max_frames`` evenly spaced frames of a clip, float32 ``(F, 3, img_size, img_size)``."""
    frames = list_frames(path)
    return torch.stack([load_image(frames[i], img_size, resize) for i in spaced_frames(len(frames), max_frames)])
