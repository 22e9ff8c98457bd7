"""The Python API of a trained run: ``model = dcinet.load(RUN)``, then ``model.encode_image``,
``model.encode_audio``, ``model.encode_text`` (open_clip's ``encode_image`` / ``encode_text``).

An :class:`Encoder` holds the CCRN and the run's preprocessing
(:class:`~dcinet.data.decode.SampleDecoder`, the one path that training, ``embed``, ``search`` and
the server decode through) and returns L2-normalised float32 ``(N, D)`` tensors: for a file, the
row ``dcinet embed`` writes for it, normalised as the index normalises it. Inputs:

* images: file paths (``str`` or ``Path``), PIL images, raw ``uint8`` tensors ``(3, H, W)`` (or
  ``(H, W, 3)``) decoded like a file, or model-ready float tensors ``(3, S, S)`` (``S`` =
  ``img_size``) used as they are;
* audio: file paths, or ``(waveform, sample_rate)`` pairs (a float NumPy array or tensor,
  ``(T,)`` mono or ``(T, C)``); a long recording is cut into the run's windows and averaged
  over them, as ``embed`` does;
* texts: strings, always the text itself (:meth:`Encoder.encode_text_files` reads files).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from PIL import Image

from dcinet.data.decode import SampleDecoder
from dcinet.data.problems import DecodeError
from dcinet.errors import DcinetError
from dcinet.models.factory import TrainedModel, load_trained
from dcinet.retrieval.embed import GALLERY_FEATURE, GALLERY_FEATURES
from dcinet.retrieval.features import Inference, check_model_feature, encode_views

ImageInput = str | Path | Image.Image | torch.Tensor
AudioInput = str | Path | tuple[np.ndarray | torch.Tensor, int]


def load(run: str | Path, device: str | torch.device = "cpu", checkpoint: str = "last",
         feature: str = GALLERY_FEATURE, batch_size: int = 64) -> Encoder:
    """A run directory (or weights file) as an :class:`Encoder` on ``device``.

    Args:
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        checkpoint: of a run directory, ``last``, ``best`` or a weights file.
        feature: one of :data:`~dcinet.retrieval.embed.GALLERY_FEATURES` (default: ``embed``'s,
            :data:`~dcinet.retrieval.embed.GALLERY_FEATURE`).
        batch_size: inputs (or audio windows) per forward pass.
    Raises:
        DcinetError: no such run, weights that do not fit, a bad feature or batch size.
    """
    from dcinet.distributed import resolve_device

    resolved = resolve_device(str(device))
    return Encoder(load_trained(Path(run), resolved, checkpoint), feature, batch_size)


class Encoder:
    """A trained model with its preprocessing; thread-safe.

    Attributes:
        trained: the loaded run (model in eval mode, config, classes, modalities).
        feature: what the vectors are (one of :data:`~dcinet.retrieval.embed.GALLERY_FEATURES`).
        classes: the run's class names; modalities: the modalities it was trained on.
        device: where the model runs.
    """

    def __init__(self, trained: TrainedModel, feature: str = GALLERY_FEATURE,
                 batch_size: int = 64) -> None:
        if feature not in GALLERY_FEATURES:
            raise DcinetError(f"feature must be one of {', '.join(GALLERY_FEATURES)}, got "
                              f"{feature!r} (softmax is evaluate's, for the paper's tables)")
        check_model_feature(trained, feature)
        self.trained, self.feature = trained, feature
        self.device = next(trained.model.parameters()).device
        self.inference = Inference(self.device, batch_size, amp=False)
        self.decoder = SampleDecoder(trained.cfg)
        self._lock = threading.Lock()

    @property
    def classes(self) -> list[str]:
        return list(self.trained.classes)

    @property
    def modalities(self) -> list[str]:
        return list(self.trained.modalities)

    def encode_image(self, images: ImageInput | Sequence[ImageInput]) -> torch.Tensor:
        """L2-normalised float32 ``(N, D)`` vectors of images (see the module for the inputs)."""
        batch = isinstance(images, torch.Tensor) and images.ndim == 4  # (N, 3, S, S) inputs
        items = list(images) if batch else _as_list(images, (str, Path, Image.Image, torch.Tensor))
        return self._encode([self._image_views(x) for x in items], "image")

    def encode_audio(self, audio: AudioInput | Sequence[AudioInput]) -> torch.Tensor:
        """L2-normalised float32 ``(N, D)`` vectors of recordings: paths or
        ``(waveform, sample_rate)`` pairs, each averaged over its windows."""
        items = [audio] if _is_waveform(audio) else _as_list(audio, (str, Path))
        return self._encode([self._audio_views(x) for x in items], "audio")

    def encode_text(self, texts: str | Sequence[str]) -> torch.Tensor:
        """L2-normalised float32 ``(N, D)`` vectors of texts (the strings themselves)."""
        items = _as_list(texts, (str,))
        for text in items:
            if not isinstance(text, str):
                raise DcinetError(f"encode_text takes strings (the texts), got a "
                                  f"{type(text).__name__}; read files with encode_text_files")
            if not text.strip():
                raise DcinetError("encode_text: a text is empty")
        return self._encode([self.decoder.decode_views(t, "text") for t in items], "text")

    def encode_text_files(self, paths: str | Path | Sequence[str | Path]) -> torch.Tensor:
        """L2-normalised float32 ``(N, D)`` vectors of text files (UTF-8), read as ``embed``
        reads them."""
        items = _as_list(paths, (str, Path))
        return self._encode([self.decoder.decode_views(Path(p), "text", name=str(p))
                             for p in items], "text")

    def encode_views(self, views: list[torch.Tensor], modality: str) -> torch.Tensor:
        """Unnormalised float32 CPU ``(N, D)`` features of items given by their views
        (:meth:`~dcinet.data.decode.SampleDecoder.decode_views`), as ``embed`` computes rows."""
        self._check_modality(modality)
        with self._lock:
            return encode_views(self.trained.model, views, modality, self.feature, self.inference)

    def _encode(self, views: list[torch.Tensor], modality: str) -> torch.Tensor:
        if not views:
            raise DcinetError(f"encode_{modality}: no inputs given")
        features = self.encode_views(views, modality)
        return torch.nn.functional.normalize(features.float(), dim=1)

    def _check_modality(self, modality: str) -> None:
        if modality not in self.trained.modalities:
            raise DcinetError(f"this run was trained on {', '.join(self.trained.modalities)}, "
                              f"not {modality}")

    def _image_views(self, image: ImageInput) -> torch.Tensor:
        """``(1, 3, S, S)``: a file or PIL image decoded as ``embed`` decodes files; a raw uint8
        tensor as the image it holds; a float ``(3, S, S)`` tensor as it is."""
        size = self.trained.cfg.img_size
        if isinstance(image, torch.Tensor):
            if image.dtype == torch.uint8:
                pixels = image if image.shape[-1] == 3 and image.shape[0] != 3 else image.permute(1, 2, 0)
                if pixels.ndim != 3 or pixels.shape[-1] != 3:
                    raise DcinetError(f"an image tensor of uint8 must be (3, H, W) or (H, W, 3), "
                                      f"got {tuple(image.shape)}")
                image = Image.fromarray(pixels.contiguous().numpy())
            elif image.shape == (3, size, size) and image.is_floating_point():
                return image.float()[None]
            else:
                raise DcinetError(f"an image tensor must be uint8 pixels (3, H, W) or a float "
                                  f"model input (3, {size}, {size}), got {image.dtype} "
                                  f"{tuple(image.shape)}")
        name = str(image) if isinstance(image, (str, Path)) else "<PIL image>"
        source = Path(image) if isinstance(image, str) else image
        return self.decoder.decode_views(source, "image", name=name)

    def _audio_views(self, audio: AudioInput) -> torch.Tensor:
        """``(V, 3, S, S)``: every kept window of a recording file or waveform."""
        if isinstance(audio, (str, Path)):
            return self.decoder.decode_views(Path(audio), "audio", name=str(audio))
        wave, rate = audio
        return self.decoder.decode_views(_wav_bytes(wave, rate), "audio",
                                         name="<waveform>", cache=False)


def _as_list(value, single: tuple[type, ...]) -> list:
    """One input (of the ``single`` types) as a list of one, or a sequence as a list."""
    if isinstance(value, single):
        return [value]
    if isinstance(value, Sequence) or isinstance(value, np.ndarray):
        return list(value)
    raise DcinetError(f"expected {' / '.join(t.__name__ for t in single)} or a list of them, "
                      f"got a {type(value).__name__}")


def _is_waveform(value) -> bool:
    return (isinstance(value, tuple) and len(value) == 2
            and isinstance(value[0], (np.ndarray, torch.Tensor)))


def _wav_bytes(wave: np.ndarray | torch.Tensor, rate: int) -> bytes:
    """A waveform as the bytes of a float32 WAV file: decoded, it gives back the same samples,
    so a waveform goes through exactly the decoding a file does."""
    array = wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave)
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise DcinetError(f"a waveform needs a positive integer sample rate, got {rate!r}")
    if array.ndim not in (1, 2) or array.size == 0 or not np.issubdtype(array.dtype, np.number):
        raise DcinetError(f"a waveform must be a non-empty numeric (T,) or (T, C) array, got "
                          f"{array.dtype} {array.shape}")
    buffer = io.BytesIO()
    try:
        sf.write(buffer, array.astype(np.float32), int(rate), format="WAV", subtype="FLOAT")
    except (RuntimeError, ValueError, sf.LibsndfileError) as exc:
        raise DecodeError("<waveform>", "bad_audio", f"cannot encode the waveform ({exc})") from None
    return buffer.getvalue()
