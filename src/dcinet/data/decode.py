"""Turn one :class:`~dcinet.data.records.Sample` into the tensor the model eats."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from dcinet.config import Config
from dcinet.data.audio import load_audio
from dcinet.data.image import load_image
from dcinet.data.records import MODALITIES, Sample
from dcinet.data.text import encode_text, read_text
from dcinet.data.video import load_video_frame, load_video_frames
from dcinet.errors import DcinetError


class SampleLoader:
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

    def load(self, sample: Sample, frame_key: tuple[int, ...] | None = None) -> torch.Tensor:
        """Decode one sample.

        Args:
            frame_key: video only: non-negative ints choosing the one frame
                (:func:`~dcinet.data.video.pick_frame`); ``None`` = the clip's middle frame.

        Returns:
            image / audio / video (one frame): float32 ``(3, img_size, img_size)``,
            ImageNet-normalised; text: int64 ``(text_len,)`` character ids (``sample.text`` when
            ``sample.path`` is None).

        Raises:
            DcinetError: naming the file (and its list line) when it cannot be decoded.
        """
        return self._named(sample, lambda: self._load(sample, frame_key))

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

    def _load(self, sample: Sample, frame_key: tuple[int, ...] | None) -> torch.Tensor:
        if sample.modality == "text":
            text = sample.text if sample.path is None else read_text(sample.path)
            if text is None:
                raise DcinetError("text sample has neither a path nor inline text")
            return encode_text(text, self.text_len)
        if sample.path is None:
            raise DcinetError(f"{sample.modality} sample has no file path")
        if sample.modality == "image":
            return load_image(sample.path, self.img_size, self.resize)
        if sample.modality == "audio":
            return load_audio(sample.path, self.img_size, self.sample_rate, self.n_fft, self.hop_length,
                              self.cache_dir)
        if sample.modality == "video":
            return load_video_frame(sample.path, self.img_size, self.resize, frame_key)
        raise DcinetError(f"unknown modality {sample.modality!r} of {sample.path} "
                          f"(supported: {', '.join(MODALITIES)})")
