"""Uploads refused from their headers, before decoding: huge images and long recordings."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from dcinet.app.serve.app import check_decoded_size
from dcinet.app.serve.forms import RequestError


def _png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height)).save(out, format="PNG")
    return out.getvalue()


def _wav(seconds: float, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    sf.write(out, np.zeros(int(seconds * rate), dtype=np.float32), rate, format="WAV")
    return out.getvalue()


def test_an_image_over_the_pixel_limit_is_a_413_naming_both_sizes():
    check_decoded_size(_png(100, 100), "image", max_pixels=10_000, max_seconds=1.0)  # at the limit
    with pytest.raises(RequestError) as err:
        check_decoded_size(_png(200, 100), "image", max_pixels=10_000, max_seconds=1.0)
    assert err.value.status == 413
    assert "200 x 100 pixels" in str(err.value) and "0.01 megapixels" in str(err.value)


def test_a_recording_over_the_length_limit_is_a_413():
    check_decoded_size(_wav(2.0), "audio", max_pixels=10, max_seconds=2.0)
    with pytest.raises(RequestError) as err:
        check_decoded_size(_wav(3.0), "audio", max_pixels=10, max_seconds=2.0)
    assert err.value.status == 413 and "3 s, the limit is 2 s" in str(err.value)


def test_a_spectrogram_picture_sent_as_audio_is_checked_as_a_picture():
    with pytest.raises(RequestError, match="too large"):
        check_decoded_size(_png(50, 50), "audio", max_pixels=100, max_seconds=100.0)


def test_unreadable_headers_pass_to_the_decoder():
    # the decoder names the problem (a 422) better than a guess here
    check_decoded_size(b"garbage", "image", max_pixels=1, max_seconds=0.1)
    check_decoded_size(b"garbage", "audio", max_pixels=1, max_seconds=0.1)
