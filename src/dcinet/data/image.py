"""Image encoding: decode with PIL, resize, center crop, ImageNet normalisation.

The paper (§4.2, following FGCrossNet) resizes every image to 510 x 510 and center-crops 448 x 448.
Truncated files raise instead of being padded with grey (``ImageFile.LOAD_TRUNCATED_IMAGES`` is left
alone), so a damaged image is reported rather than silently trained on.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from dcinet.data.problems import DecodeError

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

ImageSource = Path | str | bytes | Image.Image
"""A file path, the file's bytes, or an already opened PIL image."""


def open_image(src: ImageSource, name: str | None = None) -> Image.Image:
    """Fully decode ``src`` into an RGB PIL image (``name`` labels bytes in messages).

    Raises:
        DecodeError: naming the file when it is missing, not an image, truncated or corrupt.
    """
    if isinstance(src, Image.Image):
        return src.convert("RGB")
    name = name or (str(src) if isinstance(src, (str, Path)) else "<image bytes>")
    try:
        handle = io.BytesIO(src) if isinstance(src, bytes) else open(src, "rb")
    except FileNotFoundError:
        raise DecodeError(name, "missing_file", "image file not found") from None
    except OSError as exc:
        raise DecodeError(name, "bad_image", f"cannot open image ({exc.strerror or exc})") from None
    try:
        with handle, Image.open(handle) as img:
            img.load()
            return img.convert("RGB")
    except UnidentifiedImageError:  # its message holds the path or a repr of the buffer
        raise DecodeError(name, "bad_image", "cannot decode image: not a format PIL reads "
                          "(a corrupt file, or not an image)") from None
    except Image.DecompressionBombError as exc:
        raise DecodeError(name, "bad_image", f"cannot decode image ({exc})") from None
    except Exception as exc:  # decoders of damaged files raise many types (struct.error, ...)
        raise DecodeError(name, "bad_image", f"cannot decode image, truncated or corrupt ({exc})") from None


def normalize(x: torch.Tensor) -> torch.Tensor:
    """ImageNet mean/std normalisation of a float tensor ``(3, H, W)`` with values in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=x.dtype).view(3, 1, 1)
    return (x - mean) / std


def to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image ``H x W`` -> normalised float32 tensor ``(3, H, W)``."""
    array = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return normalize(torch.from_numpy(array).permute(2, 0, 1).contiguous())


def load_image(src: ImageSource, img_size: int, resize: int, name: str | None = None) -> torch.Tensor:
    """Decode, resize to ``resize x resize`` (bilinear), center crop ``img_size x img_size``.

    ``name`` labels bytes in messages (default: the path, or ``<image bytes>``).
    ``resize == img_size`` resizes straight to the model size without cropping (used for
    ready-made spectrogram pictures, where a crop would cut time or frequency).

    Returns:
        float32 tensor ``(3, img_size, img_size)``, ImageNet-normalised.
    """
    if resize < img_size:
        raise ValueError(f"resize ({resize}) must be >= img_size ({img_size})")
    img = open_image(src, name).resize((resize, resize), Image.BILINEAR)
    offset = int(round((resize - img_size) / 2.0))
    img = img.crop((offset, offset, offset + img_size, offset + img_size))
    return to_tensor(img)
