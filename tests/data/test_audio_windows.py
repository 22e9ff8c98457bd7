"""Long recordings cut into windows: window positions, the energy floor, formats / rates / channels,
the training window of each (seed, epoch, index), bad files, and the shared real recordings."""

from __future__ import annotations

import csv
import dataclasses
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dcinet.config import Config
from dcinet.data.audio import TOP_DB, load_audio, read_audio, recording_db, spectrogram_image
from dcinet.data.audio_windows import (
    Windowing,
    audible_windows,
    cut_window,
    window_power_db,
    window_starts,
)
from dcinet.data.check import check_collection
from dcinet.data.dataset import build_train_loader, dropped_from_training
from dcinet.data.decode import SampleDecoder
from dcinet.data.readers import read_folder
from dcinet.data.records import Collection, Sample
from dcinet.data.views import pick_view
from dcinet.errors import DcinetError

RATE, N_FFT, HOP = 16000, 256, 128  # 125 STFT frames a second
CFG = Config(img_size=16, resize=16, sample_rate=RATE, n_fft=N_FFT, hop_length=HOP,
             audio_seconds=1.0, audio_hop_seconds=0.5, audio_energy_floor_db=None).validate()


def _tone(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(rate * seconds)) / rate)).astype(np.float32)


def _steps(freqs: list[float], rate: int = RATE, seconds: float = 1.0) -> np.ndarray:
    """One second of each tone in turn, so that every 1 s window looks different."""
    return np.concatenate([_tone(f, rate, seconds) for f in freqs])


def _decoder(tmp_path: Path, **keys) -> SampleDecoder:
    return SampleDecoder(dataclasses.replace(CFG, **keys).validate(), cache_dir=tmp_path / "cache")


# --- where the windows are ---------------------------------------------------------------------

def test_window_starts_hand_cases():
    assert window_starts(5001, 500, 250) == list(range(0, 4501, 250))  # 40 s, 4 s every 2 s: 19
    assert window_starts(10, 20, 5) == [0]  # shorter than a window: one, padded later
    assert window_starts(21, 20, 5) == [0]  # the extra centred frame adds no window
    assert window_starts(22, 20, 5) == [0, 2]  # the last window is moved back to end at the end
    assert window_starts(100, 30, 30) == [0, 30, 60, 70]
    assert window_starts(501, 125, 62.5) == [0, 63, 125, 188, 250, 313, 375]  # 4 s, 1 s every 0.5 s
    with pytest.raises(ValueError):
        window_starts(0, 5, 5)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 3000), size=st.integers(1, 400), hop=st.floats(1, 400))
def test_windows_cover_the_recording_in_order_and_stay_inside(n, size, hop):
    hop = min(hop, size)  # the config refuses a hop longer than the window
    starts = window_starts(n, size, hop)
    assert starts[0] == 0 and starts == sorted(set(starts))
    assert all(s + size <= max(n, size) for s in starts)
    covered = np.zeros(n, bool)
    for s in starts:
        covered[s:s + size] = True
    assert covered[:max(1, n - 1)].all()  # every frame but the half-padded last one


def test_cut_window_pads_with_silence():
    db = np.arange(12, dtype=np.float32).reshape(3, 4) - 20
    assert np.array_equal(cut_window(db, 1, 2), db[:, 1:3])
    padded = cut_window(db, 2, 5)
    assert padded.shape == (3, 5) and np.array_equal(padded[:, :2], db[:, 2:])
    assert np.all(padded[:, 2:] == -TOP_DB)


def test_window_power_is_the_mean_power_in_db():
    rng = np.random.default_rng(0)
    db = rng.uniform(-TOP_DB, 0, (5, 40)).astype(np.float32)
    starts, size = window_starts(40, 12, 5), 12
    naive = [10 * np.log10(np.mean(10 ** (cut_window(db, s, size).astype(np.float64) / 10)))
             for s in starts]
    np.testing.assert_allclose(window_power_db(db, starts, size), naive, rtol=1e-9)
    padded = window_power_db(db, [35], 12)  # 5 real frames, 7 of silence
    np.testing.assert_allclose(padded, [10 * np.log10(np.mean(10 ** (cut_window(db, 35, 12) / 10.0)))])


def test_energy_floor_skips_quiet_windows_and_always_keeps_the_loudest():
    db = np.full((4, 40), -TOP_DB, dtype=np.float32)
    db[:, :10] = 0.0  # loud
    db[:, 10:20] = -30.0  # 30 dB below
    sizes = {"sample_rate": 10, "hop_length": 1}  # 10 frames a second: 1 s windows of 10 frames
    every = Windowing(1.0, 1.0, None)
    kept, total = audible_windows(db, every, **sizes)
    assert total == 4 and len(kept) == 4
    kept, total = audible_windows(db, Windowing(1.0, 1.0, 40.0), **sizes)
    assert total == 4 and [w[0, 0] for w in kept] == [0.0, -30.0]  # the silent two are skipped
    kept, _ = audible_windows(db, Windowing(1.0, 1.0, 20.0), **sizes)
    assert len(kept) == 1 and kept[0][0, 0] == 0.0
    silent = np.full((4, 40), -TOP_DB, dtype=np.float32)
    kept, total = audible_windows(silent, Windowing(1.0, 1.0, 0.0), **sizes)
    assert len(kept) == total == 4  # all equally loud: none is below the loudest
    whole, total = audible_windows(db, Windowing(), **sizes)
    assert total == 1 and len(whole) == 1 and np.array_equal(whole[0], db)


# --- decoding ----------------------------------------------------------------------------------

def test_whole_recordings_decode_as_before(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, _steps([500, 900, 1300]), RATE)
    decoder = _decoder(tmp_path, audio_seconds=0.0, audio_hop_seconds=None)
    before = load_audio(path, 16, RATE, N_FFT, HOP, cache_dir=tmp_path / "other")
    assert not decoder.multi_view("audio")
    assert torch.equal(decoder.decode(path, "audio"), before)
    assert torch.equal(decoder.decode_views(path, "audio"), before[None])


def test_windows_of_a_recording_in_time_order(tmp_path):
    path = tmp_path / "steps.wav"
    sf.write(path, _steps([500, 900, 1300, 1700]), RATE)  # 4 s
    decoder = _decoder(tmp_path)
    views = decoder.decode_views(path, "audio")
    assert views.shape == (7, 3, 16, 16) and views.dtype == torch.float32  # 1 + (4 - 1) / 0.5
    db = recording_db(path, RATE, N_FFT, HOP, cache_dir=tmp_path / "cache")
    for k, view in enumerate(views):
        start = [0, 63, 125, 188, 250, 313, 375][k]  # k * 62.5 frames, rounded half up
        assert torch.equal(view, spectrogram_image(cut_window(db, start, 125), 16))
    middle = decoder.decode(path, "audio")
    assert torch.equal(middle, views[3])  # no key: the middle window
    key = (0, 4, 2)
    assert torch.equal(decoder.decode(path, "audio", view_key=key), views[pick_view(7, key)])


def _write_formats(folder: Path) -> dict[str, Path]:
    """The same 1 kHz tone (2.5 s) as a 16 kHz mono WAV, a 48 kHz stereo FLAC, a 44.1 kHz stereo
    OGG Vorbis, a 48 kHz OGG Opus and a 44.1 kHz stereo MP3 (where libsndfile encodes them)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, rate, channels, fmt, subtype in (("ref.wav", RATE, 1, "WAV", None),
                                               ("stereo48.flac", 48000, 2, "FLAC", None),
                                               ("stereo44.ogg", 44100, 2, "OGG", "VORBIS"),
                                               ("opus48.ogg", 48000, 1, "OGG", "OPUS"),
                                               ("stereo44.mp3", 44100, 2, "MP3", None)):
        if fmt not in sf.available_formats() or (subtype and subtype not in sf.available_subtypes(fmt)):
            continue
        wave = _tone(1000, rate, 2.5)
        if channels == 2:  # the tone on the left only: the downmix halves it
            wave = np.stack([wave * 2, np.zeros_like(wave)], axis=1)
        sf.write(folder / name, wave, rate, format=fmt, subtype=subtype)
        files[name] = folder / name
    return files


def test_stereo_44_1_and_48_khz_and_every_format_decode_alike(tmp_path):
    files = _write_formats(tmp_path / "formats")
    if "stereo44.mp3" not in files:
        pytest.skip("this libsndfile cannot encode MP3 (decoding still tried by the other tests)")
    decoder = _decoder(tmp_path, audio_seconds=1.0, audio_hop_seconds=1.0)
    reference = recording_db(files["ref.wav"], RATE, N_FFT, HOP, cache=False)
    for name, path in files.items():
        wave, rate = read_audio(path)
        assert wave.ndim == 1 and rate == {"ref.wav": RATE, "stereo48.flac": 48000,
                                           "opus48.ogg": 48000}.get(name, 44100)
        rms = np.sqrt(np.mean(wave[rate // 5:2 * rate] ** 2))  # lossy codecs overshoot at the ends
        assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.05), name  # mono mix of (2 tone, silence)
        db = recording_db(path, RATE, N_FFT, HOP, cache=False)
        assert abs(db.shape[1] - reference.shape[1]) <= 10, name  # mp3 / opus: codec delay
        inside = db[:, 20:250]
        assert np.all(np.argmax(inside, axis=0) == round(1000 * N_FFT / RATE)), name  # 1 kHz bin
        views = decoder.decode_views(path, "audio")
        assert views.shape == (3, 3, 16, 16), name  # 2.5 s -> windows at 0, 1, 1.5 s
        if name == "stereo48.flac":  # lossless: the resampled spectrogram is the 16 kHz one
            np.testing.assert_allclose(db[:, 2:-2], reference[:, 2:-2], atol=1.0)


@pytest.mark.parametrize("case", ["zero_bytes", "no_samples", "truncated_flac", "truncated_wav",
                                  "truncated_mp3", "corrupt_ogg", "unsupported_m4a", "not_audio"])
def test_bad_audio_is_a_one_line_error_naming_the_file(tmp_path, case):
    stereo = np.stack([_tone(700, 44100, 2.0), _tone(900, 44100, 2.0)], axis=1)

    def encoded(fmt: str) -> bytes:
        if fmt not in sf.available_formats():
            pytest.skip(f"this libsndfile cannot write {fmt}")
        buffer = io.BytesIO()
        sf.write(buffer, stereo, 44100, format=fmt)
        return buffer.getvalue()

    if case == "no_samples":
        buffer = io.BytesIO()
        sf.write(buffer, np.zeros((0, 2), np.float32), 44100, format="WAV")
        data = buffer.getvalue()
    else:
        data = {"zero_bytes": lambda: b"",
                "truncated_flac": lambda: encoded("FLAC")[:4000],
                "truncated_wav": lambda: encoded("WAV")[:100_000],
                "truncated_mp3": lambda: encoded("MP3")[:len(encoded("MP3")) // 3],
                "corrupt_ogg": lambda: (lambda d: d[:300] + bytes(700) + d[1000:])(encoded("OGG")),
                "unsupported_m4a": lambda: b"\x00\x00\x00\x20ftypM4A " + bytes(400),
                "not_audio": lambda: b"just some words\n" * 20}[case]()
    suffix = {"truncated_flac": ".flac", "truncated_mp3": ".mp3", "corrupt_ogg": ".ogg",
              "unsupported_m4a": ".m4a"}.get(case, ".wav")
    path = tmp_path / "audio" / "train" / "crow" / f"{case}{suffix}"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    sample = Sample("audio", "train", 0, "crow", path, source="list/audio/train.txt:4")
    for load in (_decoder(tmp_path).load_views, _decoder(tmp_path).load):
        with pytest.raises(DcinetError) as caught:
            load(sample)
        message = str(caught.value)
        assert str(path) in message and "list/audio/train.txt:4" in message and "\n" not in message
        assert len(message) < len(str(path)) + 160, message
    report = check_collection(Collection(["crow"], [sample], tmp_path, "folder"))
    assert [(p.kind, p.path) for p in report.problems] == [("bad_audio", path)]
    assert report.bad_samples == {0}


# --- training ----------------------------------------------------------------------------------

def test_training_draws_a_window_per_seed_epoch_and_index(tmp_path):
    root = tmp_path / "ds"
    for c, cls in enumerate(("crow", "finch")):
        for k in range(2):
            path = root / f"audio/train/{cls}/{k}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, _steps([400 + 300 * j + 50 * (2 * c + k) for j in range(4)]), RATE)
    cfg = dataclasses.replace(CFG, batch_per_modality=2, num_workers=1, seed=3).validate()
    loader, skipped = build_train_loader(read_folder(root), cfg, cache_dir=tmp_path / "cache")
    assert skipped == [] and loader.dataset.decoded == {}  # windows change: nothing kept decoded
    decoder = SampleDecoder(cfg, cache_dir=tmp_path / "cache")
    chosen_per_epoch = []
    for epoch in (0, 1, 2):
        loader.batch_sampler.set_epoch(epoch)
        chosen = {}
        for batch in loader:  # one worker process: it must see the epoch set above
            for x, i in zip(batch["inputs"]["audio"], batch["index"]["audio"].tolist(), strict=True):
                views = decoder.load_views(loader.dataset.samples[i])
                position = pick_view(len(views), (3, epoch, i))
                assert torch.equal(x, views[position])
                chosen[i] = position
        chosen_per_epoch.append(chosen)
    assert len({tuple(sorted(c.items())) for c in chosen_per_epoch}) > 1  # windows change
    assert dropped_from_training(loader, ["crow", "finch"], 16)["audio_windows"] == {
        "recordings": 4, "windows": 28, "quiet_skipped": 0, "floor_db": None}  # 7 per 4 s


# --- the shared real recordings ----------------------------------------------------------------

def _manifest(root: Path) -> list[dict]:
    with open(root / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_40_s_field_recording_yields_the_expected_windows(birdsong, tmp_path):
    row = next(r for r in _manifest(birdsong) if float(r["kept_seconds"]) == 40.0)
    path = birdsong / row["file"]
    assert sf.info(path).duration == pytest.approx(40.0, abs=1e-3)
    for seconds, hop, expected in ((4.0, 2.0, 19), (4.0, 4.0, 10), (5.0, 2.5, 15), (0.0, None, 1)):
        decoder = _decoder(tmp_path, audio_seconds=seconds, audio_hop_seconds=hop)
        views = decoder.decode_views(path, "audio")
        assert views.shape == (expected, 3, 16, 16), (seconds, hop)
    assert np.isfinite(views.numpy()).all()


def test_the_energy_floor_drops_windows_of_silent_padding(birdsong, tmp_path):
    row = next(r for r in _manifest(birdsong) if 30 < float(r["kept_seconds"]) < 40)
    wave, rate = read_audio(birdsong / row["file"])
    padded = tmp_path / "padded.wav"
    sf.write(padded, np.concatenate([wave, np.zeros(rate * 10, np.float32)]), rate)
    real_frames = len(wave) * RATE // rate // HOP
    every = _decoder(tmp_path, audio_seconds=4.0, audio_hop_seconds=2.0)
    floored = _decoder(tmp_path, audio_seconds=4.0, audio_hop_seconds=2.0, audio_energy_floor_db=40.0)
    db = recording_db(padded, RATE, N_FFT, HOP, cache_dir=tmp_path / "cache")
    starts = window_starts(db.shape[1], 500, 250)
    all_views, kept_views = every.decode_views(padded, "audio"), floored.decode_views(padded, "audio")
    assert all_views.shape[0] == len(starts)
    silent = [k for k, s in enumerate(starts) if s * HOP >= len(wave) * RATE // rate + N_FFT]
    mostly_real = [k for k, s in enumerate(starts) if s + 250 <= real_frames]
    assert len(silent) >= 3 and kept_views.shape[0] <= len(starts) - len(silent)
    kept = {k for k, view in enumerate(all_views) if any(torch.equal(view, v) for v in kept_views)}
    assert not kept & set(silent) and set(mostly_real) <= kept
