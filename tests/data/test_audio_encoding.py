"""Audio encoding: decoding, resampling, dB spectrogram, spectrogram image, cache, pictures."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from dcinet.data import audio
from dcinet.data.audio import (
    TOP_DB,
    cached_spectrogram_db,
    load_audio,
    read_audio,
    resample,
    spectrogram_db,
    spectrogram_image,
)
from dcinet.data.image import IMAGENET_MEAN, IMAGENET_STD, load_image
from dcinet.data.problems import DecodeError


def _sine(freq: float, rate: int, seconds: float = 0.5) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def _unnormalise(x: torch.Tensor) -> torch.Tensor:
    return x * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG"])
def test_read_audio_formats_and_mono_mix(tmp_path, fmt):
    left, right = _sine(440, 8000), _sine(880, 8000) * 0.5
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, np.stack([left, right], axis=1), 8000, format=fmt)
    wave, rate = read_audio(path)
    assert rate == 8000 and wave.dtype == np.float32 and wave.shape == left.shape
    if fmt != "OGG":  # lossless formats: exact channel mean
        np.testing.assert_allclose(wave, (left + right) / 2, atol=1e-4)
    else:
        assert np.corrcoef(wave, (left + right) / 2)[0, 1] > 0.95


def test_read_audio_rejects_empty_and_undecodable(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 8000)
    garbage = tmp_path / "noise.wav"
    garbage.write_bytes(b"RIFF\x00\x01garbage")
    zero_bytes = tmp_path / "zero.flac"
    zero_bytes.write_bytes(b"")
    for path, reason in ((empty, "zero-length"), (garbage, "cannot decode"), (zero_bytes, "zero-length")):
        with pytest.raises(DecodeError, match=reason) as info:
            read_audio(path)
        assert info.value.kind == "bad_audio" and info.value.name == str(path)
    with pytest.raises(DecodeError) as info:
        read_audio(tmp_path / "gone.wav")
    assert info.value.kind == "missing_file"


def test_resample_keeps_frequency_and_scales_length():
    up = resample(_sine(1000, 8000), 8000, 16000)
    assert up.shape == (8000,) and up.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(up))
    assert np.argmax(spectrum) * 16000 / len(up) == pytest.approx(1000, abs=2)
    assert np.abs(up).max() == pytest.approx(0.5, abs=0.02)
    same = _sine(300, 16000)
    assert resample(same, 16000, 16000) is same


def test_spectrogram_db_shape_range_and_peak_bin():
    n_fft, hop = 256, 64
    db = spectrogram_db(_sine(1000, 16000), 16000, 16000, n_fft, hop)
    assert db.dtype == np.float32 and db.shape == (n_fft // 2 + 1, 1 + 8000 // hop)
    assert db.max() == pytest.approx(0.0) and db.min() >= -TOP_DB
    peak_rows = np.argmax(db, axis=0)[2:-2]  # ignore the zero-padded edge frames
    assert np.all(peak_rows == round(1000 * n_fft / 16000))  # bin 16 = 1 kHz, row 0 = 0 Hz


def test_spectrogram_db_resamples_first_and_handles_silence():
    at_8k = spectrogram_db(_sine(1000, 8000), 8000, 16000, 256, 64)
    at_16k = spectrogram_db(_sine(1000, 16000), 16000, 16000, 256, 64)
    assert at_8k.shape == at_16k.shape
    assert np.argmax(at_8k[:, 10]) == np.argmax(at_16k[:, 10]) == 16
    silent = spectrogram_db(np.zeros(1000, np.float32), 16000, 16000, 256, 64)
    assert np.all(silent == -TOP_DB)


def test_spectrogram_image_orientation_channels_and_scale():
    db = np.full((129, 50), -TOP_DB, dtype=np.float32)
    db[5, :] = 0.0  # a loud low-frequency band
    x = spectrogram_image(db, 32)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    grey = _unnormalise(x)
    assert torch.allclose(grey[0], grey[1], atol=1e-5) and torch.allclose(grey[0], grey[2], atol=1e-5)
    assert grey.min() >= -1e-5 and grey.max() <= 1 + 1e-5
    bright_row = int(grey[0].mean(dim=1).argmax())
    assert bright_row >= 28  # low frequency -> bottom of the image
    assert torch.equal(x, spectrogram_image(db, 32))  # deterministic


def test_cache_hit_returns_equal_array_without_recomputing(tmp_path, monkeypatch):
    path = tmp_path / "call.wav"
    sf.write(path, _sine(700, 8000), 8000)
    data = path.read_bytes()
    first = cached_spectrogram_db(data, str(path), 16000, 256, 64, tmp_path / "cache")
    files = list((tmp_path / "cache" / "spectrograms").glob("*.npy"))
    assert len(files) == 1 and not list((tmp_path / "cache" / "spectrograms").glob("*.tmp"))

    def fail(*args, **kwargs):
        raise AssertionError("recomputed despite a cache hit")

    monkeypatch.setattr(audio, "spectrogram_db", fail)
    second = cached_spectrogram_db(data, str(path), 16000, 256, 64, tmp_path / "cache")
    np.testing.assert_array_equal(first, second)
    with pytest.raises(AssertionError, match="recomputed"):  # other parameters: another key
        cached_spectrogram_db(data, str(path), 16000, 512, 64, tmp_path / "cache")


def test_damaged_cache_entry_is_recomputed(tmp_path):
    path = tmp_path / "call.wav"
    sf.write(path, _sine(700, 8000), 8000)
    first = cached_spectrogram_db(path.read_bytes(), "call.wav", 16000, 256, 64, tmp_path)
    (cache_file,) = (tmp_path / "spectrograms").glob("*.npy")
    cache_file.write_bytes(b"broken")
    np.testing.assert_array_equal(first, cached_spectrogram_db(path.read_bytes(), "call.wav", 16000, 256, 64, tmp_path))
    np.testing.assert_array_equal(first, np.load(cache_file))


def test_default_cache_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DCINET_CACHE", str(tmp_path / "env-cache"))
    path = tmp_path / "call.wav"
    sf.write(path, _sine(500, 8000), 8000)
    load_audio(path, 16, 16000, 256, 64)
    assert len(list((tmp_path / "env-cache" / "spectrograms").glob("*.npy"))) == 1


def test_load_audio_wave_and_ready_made_picture(tmp_path):
    wav = tmp_path / "call.wav"
    sf.write(wav, _sine(500, 8000), 8000)
    x = load_audio(wav, 24, 16000, 256, 64, cache_dir=tmp_path)
    assert x.shape == (3, 24, 24) and x.dtype == torch.float32
    assert torch.equal(x, load_audio(wav.read_bytes(), 24, 16000, 256, 64, cache_dir=tmp_path))
    picture = tmp_path / "spec.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 90, 3), dtype=np.uint8)).save(picture)
    y = load_audio(picture, 24, 16000, 256, 64, cache_dir=tmp_path)
    assert torch.equal(y, load_image(picture, 24, 24))  # resized straight to 24 x 24, no crop
    assert torch.equal(y, load_audio(picture.read_bytes(), 24, 16000, 256, 64, cache_dir=tmp_path))


def test_declared_seconds_reads_the_header_only(tmp_path):
    from dcinet.data.audio import declared_seconds

    path = tmp_path / "two.wav"
    sf.write(path, _sine(440, 8000, seconds=2.0), 8000)
    assert declared_seconds(path.read_bytes()) == pytest.approx(2.0)
    assert declared_seconds(b"not audio at all") is None
    assert declared_seconds(b"") is None


def test_load_audio_without_cache_writes_nothing_and_matches(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, _sine(440, 8000), 8000)
    cached = load_audio(path, 32, 8000, 256, 64, cache_dir=tmp_path / "cache")
    direct = load_audio(path.read_bytes(), 32, 8000, 256, 64, cache_dir=tmp_path / "none",
                        cache=False)
    assert torch.equal(cached, direct)
    assert not (tmp_path / "none").exists()
    with pytest.raises(DecodeError, match="my upload"):
        load_audio(b"not audio", 32, 8000, 256, 64, name="my upload", cache=False)
