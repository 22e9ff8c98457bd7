"""The one preprocessing path: a file, uploaded bytes or a text -> the tensor the model eats.

Training, evaluation, ``embed``, ``search`` and the server all decode through
:class:`SampleDecoder`, so a query is preprocessed exactly as the gallery was: training takes one
view of an item (:meth:`SampleDecoder.decode`: a video frame, an audio window), test time takes
every view (:meth:`SampleDecoder.decode_views`) and averages the logits over them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from dcinet.config import Config
from dcinet.data.audio_windows import (
    Windowing,
    count_windows,
    load_audio_window,
    load_audio_windows,
)
from dcinet.data.image import load_image
from dcinet.data.records import MODALITIES, Sample
from dcinet.data.text import decode_text, encode_text, read_text
from dcinet.data.video import load_video_frame, load_video_frames
from dcinet.errors import DcinetError


class SampleDecoder:
    """Per-modality decoding with the sizes of a :class:`~dcinet.config.Config`.

    Uses ``cfg.img_size``, ``cfg.resize`` (images), ``cfg.sample_rate``, ``cfg.n_fft``,
    ``cfg.hop_length`` (audio; computed spectrograms are cached under ``cache_dir``, default
    ``$DCINET_CACHE`` or ``~/.cache/dcinet``), ``cfg.audio_seconds``, ``cfg.audio_hop_seconds``,
    ``cfg.audio_energy_floor_db`` (audio windows, :mod:`~dcinet.data.audio_windows`),
    ``cfg.text_len`` and ``cfg.video_frames`` (test-time frames). Video frames are preprocessed
    like images. Picklable, so it works in DataLoader worker processes.
    """

    def __init__(self, cfg: Config, cache_dir: Path | str | None = None) -> None:
        self.img_size = cfg.img_size
        self.resize = cfg.resize
        self.text_len = cfg.text_len
        self.sample_rate = cfg.sample_rate
        self.n_fft = cfg.n_fft
        self.hop_length = cfg.hop_length
        self.windowing = Windowing(cfg.audio_seconds, cfg.audio_hop_seconds, cfg.audio_energy_floor_db)
        self.video_frames = cfg.video_frames
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None

    def multi_view(self, modality: str) -> bool:
        """Whether an item of ``modality`` may have several views: video (frames), and audio cut
        into windows (``audio_seconds > 0``)."""
        return modality == "video" or (modality == "audio" and not self.windowing.whole)

    def decode(self, source: Path | str | bytes, modality: str, name: str | None = None,
               view_key: tuple[int, ...] | None = None, cache: bool = True) -> torch.Tensor:
        """Decode one input of ``modality``, one view of it (what training sees).

        Args:
            source: image / audio: a file path (``str`` or ``Path``) or the file's bytes; text:
                the text itself (``str``), a text file (``Path``) or its bytes; video: the clip's
                folder of frames.
            name: what errors call the input (default: its path).
            view_key: video / audio: non-negative ints choosing the one frame or audio window
                (:func:`~dcinet.data.views.pick_view`); ``None`` = the middle frame / the middle
                kept window. A recording that is not cut (``audio_seconds = 0``) has one view.
            cache: audio only: keep the computed spectrogram in the cache (``False`` for one-off
                uploads, which then never touch the file system).

        Returns:
            image / audio (one window) / video (one frame): float32 ``(3, img_size, img_size)``,
            ImageNet-normalised; text: int64 ``(text_len,)`` character ids.

        Raises:
            DcinetError: naming the input when it cannot be decoded.
        """
        if modality == "text":
            if isinstance(source, bytes):
                source = decode_text(source, name or "<text bytes>")
            elif isinstance(source, Path):
                source = read_text(source)
            return encode_text(source, self.text_len)
        if modality == "image":
            return load_image(source, self.img_size, self.resize, name)
        if modality == "audio":
            return load_audio_window(source, self.img_size, self.sample_rate, self.n_fft,
                                     self.hop_length, self.windowing, view_key,
                                     cache_dir=self.cache_dir, name=name, cache=cache)
        if modality == "video":
            return load_video_frame(Path(source), self.img_size, self.resize, view_key)
        raise DcinetError(f"unknown modality {modality!r} (supported: {', '.join(MODALITIES)})")

    def decode_views(self, source: Path | str | bytes, modality: str, name: str | None = None,
                     cache: bool = True) -> torch.Tensor:
        """Every test-time view of one input, stacked: what evaluation, ``embed``, ``search`` and
        the server encode (the caller averages the logits over the views).

        Args: as for :meth:`decode`.

        Returns:
            ``(V, ...)`` with ``V >= 1``: audio: every kept window in time order
            (:func:`~dcinet.data.audio_windows.load_audio_windows`; ``V = 1`` for a recording that
            is not cut or a spectrogram picture); video: up to ``video_frames`` evenly spaced
            frames (:func:`~dcinet.data.video.load_video_frames`); image and text:
            :meth:`decode`'s tensor with ``V = 1``.

        Raises:
            DcinetError: naming the input when it cannot be decoded.
        """
        if modality == "audio":
            return load_audio_windows(source, self.img_size, self.sample_rate, self.n_fft,
                                      self.hop_length, self.windowing, cache_dir=self.cache_dir,
                                      name=name, cache=cache)
        if modality == "video":
            return load_video_frames(Path(source), self.img_size, self.resize, self.video_frames)
        return self.decode(source, modality, name, cache=cache)[None]

    def window_counts(self, sample: Sample) -> tuple[int, int]:
        """``(kept, total)`` windows of an audio sample
        (:func:`~dcinet.data.audio_windows.count_windows`), errors as for :meth:`load`."""
        if sample.modality != "audio" or sample.path is None:
            raise DcinetError(f"window_counts needs an audio file, got a {sample.modality} sample")
        path = sample.path
        return self._named(sample, lambda: count_windows(path, self.sample_rate, self.n_fft,
                                                         self.hop_length, self.windowing,
                                                         cache_dir=self.cache_dir))

    def tensor_bytes(self, modality: str) -> int:
        """Bytes of one tensor :meth:`decode` returns for ``modality`` (one view):
        float32 ``(3, img_size, img_size)``, or int64 ``(text_len,)`` for text."""
        return self.text_len * 8 if modality == "text" else 3 * self.img_size**2 * 4

    def encode_text(self, text: str) -> torch.Tensor:
        """A raw text's int64 ``(text_len,)`` character ids, as :meth:`decode` encodes texts."""
        return encode_text(text, self.text_len)

    def read_text(self, sample: Sample) -> str:
        """The raw text of a text sample (its file's or its inline text), before encoding; errors
        name the sample's list line as :meth:`load`'s do."""
        if sample.modality != "text":
            raise DcinetError(f"read_text needs a text sample, got a {sample.modality} sample")
        source = self._source(sample)
        if isinstance(source, str):
            return source
        return self._named(sample, lambda: read_text(source))

    def load(self, sample: Sample, view_key: tuple[int, ...] | None = None) -> torch.Tensor:
        """:meth:`decode` of a sample's file (or inline text), with the sample's list line
        appended to any error message."""
        source = self._source(sample)
        return self._named(sample, lambda: self.decode(source, sample.modality, view_key=view_key))

    def load_views(self, sample: Sample) -> torch.Tensor:
        """:meth:`decode_views` of a sample: ``(V, ...)``, errors as for :meth:`load`."""
        source = self._source(sample)
        return self._named(sample, lambda: self.decode_views(source, sample.modality))

    @staticmethod
    def _source(sample: Sample) -> Path | str:
        if sample.path is None and (sample.modality != "text" or sample.text is None):
            what = "neither a path nor inline text" if sample.modality == "text" else "no file path"
            raise DcinetError(f"{sample.modality} sample has {what}")
        return sample.path if sample.path is not None else sample.text

    @staticmethod
    def _named(sample: Sample, load: Callable[[], object]):
        """``load()``, with the sample's list line appended to any error message."""
        try:
            return load()
        except DcinetError as exc:
            if sample.source:
                raise DcinetError(f"{exc} ({sample.source})") from None
            raise
