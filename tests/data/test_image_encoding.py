"""Image encoding: resize + center crop + ImageNet normalisation, and decode errors."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageFile

from dcinet.data.image import IMAGENET_MEAN, IMAGENET_STD, load_image, open_image
from dcinet.data.problems import DecodeError


def _normalised(pixels: np.ndarray) -> np.ndarray:
    """Independent reference: uint8 (H, W, 3) -> (3, H, W) float ImageNet-normalised."""
    x = pixels.astype(np.float64) / 255.0
    return ((x - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)).transpose(2, 0, 1)


def test_uniform_colour_normalises_to_known_values(tmp_path):
    path = tmp_path / "red.png"
    Image.new("RGB", (40, 30), (200, 100, 50)).save(path)
    x = load_image(path, img_size=16, resize=20)
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32
    expected = _normalised(np.array([[[200, 100, 50]]], dtype=np.uint8))[:, 0, 0]
    np.testing.assert_allclose(x.mean(dim=(1, 2)).numpy(), expected, rtol=1e-5)
    assert float(x.std(dim=(1, 2)).max()) < 1e-5


def test_center_crop_takes_the_middle_pixels(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (10, 10, 3), dtype=np.uint8)
    path = tmp_path / "p.png"
    Image.fromarray(pixels).save(path)
    x = load_image(path, img_size=6, resize=10)  # resize to the same size: no resampling
    np.testing.assert_allclose(x.numpy(), _normalised(pixels[2:8, 2:8]), atol=1e-5)


def test_path_bytes_and_pil_inputs_agree(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    path = tmp_path / "p.jpg"
    Image.fromarray(pixels).save(path, quality=90)
    from_path = load_image(path, 8, 11)
    assert torch.equal(from_path, load_image(path.read_bytes(), 8, 11))
    assert torch.equal(from_path, load_image(Image.open(path), 8, 11))
    assert torch.equal(from_path, load_image(str(path), 8, 11))


def test_grey_and_palette_images_become_rgb(tmp_path):
    path = tmp_path / "grey.png"
    Image.new("L", (9, 9), 128).save(path)
    x = load_image(path, 8, 8)
    assert x.shape == (3, 8, 8)
    np.testing.assert_allclose(x[:, 0, 0].numpy(), _normalised(np.full((1, 1, 3), 128, np.uint8))[:, 0, 0], rtol=1e-5)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_image_raises_naming_the_file(tmp_path, fmt):
    pixels = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) * 2 // 3])
    with pytest.raises(DecodeError, match="cut") as info:
        load_image(path, 8, 8)
    assert info.value.kind == "bad_image" and str(path) in str(info.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_not_an_image_and_missing_file(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("not an image")
    with pytest.raises(DecodeError, match="cannot decode image") as info:
        open_image(path)
    assert info.value.kind == "bad_image"
    with pytest.raises(DecodeError, match="not found") as info:
        open_image(tmp_path / "gone.jpg")
    assert info.value.kind == "missing_file"
    with pytest.raises(DecodeError, match="upload.png"):
        open_image(b"\x89PNG\r\n\x1a\nrubbish", name="upload.png")
