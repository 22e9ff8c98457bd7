"""Spectrogram thumbnails show what the model sees: same levels, low frequencies at the bottom."""

from __future__ import annotations

import numpy as np

from dcinet.app.serve.media import spectrogram_rgb
from dcinet.data.audio import TOP_DB, spectrogram_levels


def test_levels_and_thumbnail_colours_follow_the_same_mapping():
    db = np.full((4, 3), -TOP_DB, dtype=np.float32)
    db[0] = 0.0  # the lowest frequency bin is the loudest
    levels = spectrogram_levels(db)
    assert levels[-1].tolist() == [1.0, 1.0, 1.0] and levels[:-1].max() == 0.0
    rgb = spectrogram_rgb(db)
    assert rgb.shape == (4, 3, 3) and rgb.dtype == np.uint8
    assert rgb[-1].sum() > rgb[0].sum()  # bright at the bottom, dark above
