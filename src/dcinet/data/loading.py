"""Turn one :class:`~dcinet.data.records.Sample` into the tensor the model eats."""

from __future__ import annotations

from pathlib import Path

import torch

from dcinet.config import Config
from dcinet.data.audio import load_audio
from dcinet.data.image import load_image
from dcinet.data.records import Sample
from dcinet.data.text import encode_text, read_text
from dcinet.errors import DcinetError

LOADABLE_MODALITIES: tuple[str, ...] = ("image", "audio", "text")
"""Modalities :class:`SampleLoader` can load (video is not supported yet)."""


class SampleLoader:
    """Per-modality decoding with the sizes of a :class:`~dcinet.config.Config`.

    Uses ``cfg.img_size``, ``cfg.resize`` (images), ``cfg.sample_rate``, ``cfg.n_fft``,
    ``cfg.hop_length`` (audio; computed spectrograms are cached under ``cache_dir``, default
    ``$DCINET_CACHE`` or ``~/.cache/dcinet``) and ``cfg.text_len``. Picklable, so it works in
    DataLoader worker processes.
    """

    def __init__(self, cfg: Config, cache_dir: Path | str | None = None) -> None:
        self.img_size = cfg.img_size
        self.resize = cfg.resize
        self.text_len = cfg.text_len
        self.sample_rate = cfg.sample_rate
        self.n_fft = cfg.n_fft
        self.hop_length = cfg.hop_length
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None

    def load(self, sample: Sample) -> torch.Tensor:
        """Decode one sample.

        Returns:
            image / audio: float32 ``(3, img_size, img_size)``, ImageNet-normalised;
            text: int64 ``(text_len,)`` character ids (``sample.text`` when ``sample.path`` is None).

        Raises:
            DcinetError: naming the file (and its list line) when it cannot be decoded, or for video.
        """
        try:
            return self._load(sample)
        except DcinetError as exc:
            if sample.source:
                raise DcinetError(f"{exc} ({sample.source})") from None
            raise

    def _load(self, sample: Sample) -> torch.Tensor:
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
        raise DcinetError(f"{sample.modality} samples are not supported by this loader "
                          f"({', '.join(LOADABLE_MODALITIES)} only): {sample.path}")
