"""Training augmentation, per modality, seeded per draw; the training split only.

Everything else (validation, ``evaluate``, ``embed``, ``search``, the server) decodes through
:class:`~dcinet.data.decode.SampleDecoder` alone, so its inputs never change with these settings.

* images (and video frames): torchvision ``v2`` RandomResizedCrop back to the input side (the
  smallest area share ``aug_crop_scale``, aspect ratios 3/4..4/3), RandomHorizontalFlip
  (``aug_flip``) and ColorJitter (brightness, contrast and saturation ``aug_color_jitter``, hue
  untouched: colour tells fine-grained classes apart), applied to the decoded (center-cropped)
  picture in [0, 1], then ImageNet-normalised again;
* audio spectrograms: SpecAugment-style masks, torchaudio's TimeMasking (``aug_time_masks`` of
  them, each up to ``aug_time_mask_max`` of the width) and FrequencyMasking (``aug_freq_masks``,
  up to ``aug_freq_mask_max`` of the height), one mask shared by the three channels, filled
  with the spectrogram's mean level (its mean after the normalisation, as in SpecAugment);
* text: the raw text split into sentences (lines, and ``.``, ``!``, ``?`` followed by
  whitespace); a text with two or more drops each sentence with probability
  ``aug_sentence_drop`` (one always stays) and shuffles their order with probability
  ``aug_sentence_shuffle``. The encoder then cuts to ``text_len`` as usual, so a dropped
  sentence lets a later one in.

Each draw of a sample gets its own random stream, a function of ``(seed, epoch, draw)`` only
(``draw``: the position in the epoch's sampling plan, :class:`~dcinet.data.sampler.TrainKey`): a
sample drawn twice in an epoch is augmented twice differently, the augmentation is the same on
every run, with any number of DataLoader workers, and a resumed run repeats it exactly. The
global RNG streams (which CMSI draws from) are left as they were.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import numpy as np
import torch

from dcinet.config import Config
from dcinet.data.image import IMAGENET_MEAN, IMAGENET_STD, normalize

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\s*\n\s*")
_TEXT_STREAM = 1  # the text draws from numpy stream [seed, epoch, draw, 1]; pictures from torch


def split_sentences(text: str) -> list[str]:
    """The non-empty sentences of ``text``: split at line breaks and after ``.``, ``!`` or ``?``
    followed by whitespace (the punctuation stays with its sentence)."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def augment_sentences(text: str, rng: np.random.Generator, drop: float, shuffle: float) -> str:
    """``text`` with sentences dropped (each with probability ``drop``, at least one kept) and
    their order shuffled (with probability ``shuffle``), joined by spaces; a text of one sentence
    comes back unchanged."""
    sentences = split_sentences(text)
    if len(sentences) < 2:
        return text
    keep = rng.random(len(sentences)) >= drop
    if not keep.any():
        keep[rng.integers(len(sentences))] = True
    kept = [s for s, k in zip(sentences, keep, strict=True) if k]
    if rng.random() < shuffle:
        kept = [kept[i] for i in rng.permutation(len(kept))]
    return " ".join(kept)


@contextlib.contextmanager
def _seeded_torch(seed: int) -> Iterator[None]:
    """torch's CPU RNG seeded with ``seed`` inside, restored to its state outside."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _draw_seed(key: tuple[int, int, int]) -> int:
    """A 63-bit seed of ``(seed, epoch, draw)``."""
    return int(np.random.SeedSequence(list(key)).generate_state(1, dtype=np.uint64)[0] >> 1)


class TrainAugment:
    """The training augmentation :func:`from_config` describes, for decoded samples.

    ``augment(x, modality, key)``: ``x`` is what :class:`~dcinet.data.decode.SampleDecoder`
    decodes (float32 ``(3, S, S)``, ImageNet-normalised) or, for text, the raw text; the result
    has the same shape (text: the augmented raw text, still to be encoded). ``key`` is
    ``(seed, epoch, draw)``.
    """

    def __init__(self, cfg: Config, img_size: int) -> None:
        from torchvision.transforms import v2

        steps = []
        if cfg.aug_crop_scale < 1:
            steps.append(v2.RandomResizedCrop(img_size, scale=(cfg.aug_crop_scale, 1.0),
                                              antialias=True))
        if cfg.aug_flip > 0:
            steps.append(v2.RandomHorizontalFlip(cfg.aug_flip))
        if cfg.aug_color_jitter > 0:
            j = cfg.aug_color_jitter
            steps.append(v2.ColorJitter(brightness=j, contrast=j, saturation=j))
        self.picture = v2.Compose(steps) if steps else None
        self.masks = []
        if cfg.aug_time_masks or cfg.aug_freq_masks:
            try:
                import torchaudio.transforms as T
            except ImportError:  # a dependency; missing only in an environment built without it
                from dcinet.errors import DcinetError

                raise DcinetError("config keys aug_time_masks / aug_freq_masks need torchaudio "
                                  "(pip install torchaudio)") from None
            self.masks += [T.TimeMasking(int(cfg.aug_time_mask_max * img_size))] * cfg.aug_time_masks
            self.masks += [T.FrequencyMasking(int(cfg.aug_freq_mask_max * img_size))] * cfg.aug_freq_masks
        self.drop, self.shuffle = cfg.aug_sentence_drop, cfg.aug_sentence_shuffle

    @classmethod
    def from_config(cls, cfg: Config) -> TrainAugment | None:
        """The augmentation of ``cfg``'s ``aug_*`` keys, or None when they change nothing."""
        augment = cls(cfg, cfg.img_size)
        return augment if any(augment.changes(m) for m in ("image", "audio", "text")) else None

    def changes(self, modality: str) -> bool:
        """Whether samples of ``modality`` are augmented at all."""
        if modality in ("image", "video"):
            return self.picture is not None
        if modality == "audio":
            return bool(self.masks)
        return modality == "text" and (self.drop > 0 or self.shuffle > 0)

    def __call__(self, x: torch.Tensor | str, modality: str,
                 key: tuple[int, int, int]) -> torch.Tensor | str:
        if not self.changes(modality):
            return x
        if modality == "text":
            rng = np.random.default_rng([*key, _TEXT_STREAM])
            return augment_sentences(x, rng, self.drop, self.shuffle)
        with _seeded_torch(_draw_seed(key)):
            return self._picture(x) if modality in ("image", "video") else self._spectrogram(x)

    def _picture(self, x: torch.Tensor) -> torch.Tensor:
        return normalize(self.picture(_levels(x).clamp(0.0, 1.0)).contiguous())

    def _spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        levels = _levels(x)
        fill = float(levels.mean())
        for mask in self.masks:
            levels = mask(levels, mask_value=fill)
        return normalize(levels.contiguous())


def _levels(x: torch.Tensor) -> torch.Tensor:
    """An ImageNet-normalised ``(3, H, W)`` tensor back to its [0, 1] picture levels."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype).view(3, 1, 1)
    return x * std + mean
