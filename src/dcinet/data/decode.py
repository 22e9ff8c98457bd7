"""The one preprocessing path: a file, uploaded bytes or a text -> the tensor the model eats.

Training, evaluation, ``embed``, ``search`` and the server all decode through
:meth:`SampleDecoder.decode`, so a query is preprocessed exactly as the gallery was.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from dcinet.config import Config
from dcinet.data.audio import load_audio
from dcinet.data.image import load_image
from dcinet.data.records import MODALITIES, Sample
from dcinet.data.text import decode_text, encode_text, read_text
from dcinet.data.video import load_video_frame, load_video_frames
from dcinet.errors import DcinetError


class SampleDecoder:
    """Per-modality decoding with the sizes of a :class:`~dcinet.config.Config`.

    Uses ``cfg.img_size``, ``cfg.resize`` (images), ``cfg.sample_rate``, ``cfg.n_fft``,
    ``cfg.hop_length`` (audio; computed spectrograms are cached under ``cache_dir``, default
    ``$DCINET_CACHE`` or ``~/.cache/dcinet``) and ``cfg.text_len``. Video frames are preprocessed
    like images. Picklable, so it works in DataLoader worker processes.
    """

    def __init__(self, cfg: Config, cache_dir: Path | str | None = None) -> None:
        self.img_size = cfg.img_size
        self.resize = cfg.resize
        self.text_len = cfg.text_len
        self.sample_rate = cfg.sample_rate
        self.n_fft = cfg.n_fft
        self.hop_length = cfg.hop_length
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None

    def decode(self, source: Path | str | bytes, modality: str, name: str | None = None,
               frame_key: tuple[int, ...] | None = None, cache: bool = True) -> torch.Tensor:
        """Decode one input of ``modality``.

        Args:
            source: image / audio: a file path (``str`` or ``Path``) or the file's bytes; text:
                the text itself (``str``), a text file (``Path``) or its bytes; video: the clip's
                folder of frames.
            name: what errors call the input (default: its path).
            frame_key: video only: non-negative ints choosing the one frame
                (:func:`~dcinet.data.video.pick_frame`); ``None`` = the clip's middle frame.
            cache: audio only: keep the computed spectrogram in the cache (``False`` for one-off
                uploads, which then never touch the file system).

        Returns:
            image / audio / video (one frame): float32 ``(3, img_size, img_size)``,
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
            return load_image(source, self.img_size, self.resize)
        if modality == "audio":
            return load_audio(source, self.img_size, self.sample_rate, self.n_fft, self.hop_length,
                              self.cache_dir, name=name, cache=cache)
        if modality == "video":
            return load_video_frame(Path(source), self.img_size, self.resize, frame_key)
        raise DcinetError(f"unknown modality {modality!r} (supported: {', '.join(MODALITIES)})")

    def tensor_bytes(self, modality: str) -> int:
        """Bytes of one tensor :meth:`decode` returns for ``modality`` (one frame for video):
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
        if sample.path is None:
            if sample.text is None:
                raise DcinetError("text sample has neither a path nor inline text")
            return sample.text
        path = sample.path
        return self._named(sample, lambda: read_text(path))

    def load(self, sample: Sample, frame_key: tuple[int, ...] | None = None) -> torch.Tensor:
        """:meth:`decode` of a sample's file (or inline text), with the sample's list line
        appended to any error message."""
        if sample.path is None and (sample.modality != "text" or sample.text is None):
            what = "neither a path nor inline text" if sample.modality == "text" else "no file path"
            raise DcinetError(f"{sample.modality} sample has {what}")
        source = sample.path if sample.path is not None else sample.text
        return self._named(sample, lambda: self.decode(source, sample.modality, frame_key=frame_key))

    def load_frames(self, sample: Sample, max_frames: int) -> torch.Tensor:
        """All frames of a video sample, at most ``max_frames`` evenly spaced ones
        (:func:`~dcinet.data.video.spaced_frames`), for averaging logits over frames at test time.

        Returns:
            float32 ``(F, 3, img_size, img_size)`` with ``1 <= F <= max_frames``, frames in time order.

        Raises:
            DcinetError: for a non-video sample, or naming the clip / frame that cannot be used.
        """
        if sample.modality != "video" or sample.path is None:
            raise DcinetError(f"load_frames needs a video sample with a path, got a {sample.modality} sample")
        path = sample.path
        return self._named(sample, lambda: load_video_frames(path, self.img_size, self.resize, max_frames))

    @staticmethod
    def _named(sample: Sample, load: Callable[[], torch.Tensor]) -> torch.Tensor:
        """``load()``, with the sample's list line appended to any error message."""
        try:
            return load()
        except DcinetError as exc:
            if sample.source:
                raise DcinetError(f"{exc} ({sample.source})") from None
            raise
