"""Synthesise one bird call: family timbre and pitch, species contour and syllable count, noise.

A call is a row of syllables; each syllable is a harmonic tone whose pitch follows the species'
contour (in semitones around the family's base pitch) under a smooth envelope. Per recording the
tempo, pitch, onset, loudness and background (coloured noise at a random SNR, sometimes an insect
hum) vary, so that no two recordings of a class look alike in a spectrogram.
"""

from __future__ import annotations

import numpy as np

from dcinet.sources.synth.taxonomy import Species

SAMPLE_RATE = 16000
MIN_SECONDS, MAX_SECONDS = 1.0, 3.0
_TOP_HZ = 7600.0  # partials above this are dropped (Nyquist is 8 kHz)


def contour_semitones(contour: str, x: np.ndarray, depth: float, rate: float) -> np.ndarray:
    """Pitch offset in semitones over one syllable; ``x`` in [0, 1] is the position in it.

    ``rising`` / ``falling``: a straight glide over ``2 * depth`` semitones; ``flat``: 0;
    ``warble``: a sine of amplitude ``0.8 * depth`` with ``rate`` cycles per syllable; ``arch``: up
    ``2 * depth`` and back down.
    """
    if contour == "rising":
        return depth * (2.0 * x - 1.0)
    if contour == "falling":
        return depth * (1.0 - 2.0 * x)
    if contour == "flat":
        return np.zeros_like(x)
    if contour == "warble":
        return 0.8 * depth * np.sin(2.0 * np.pi * rate * x)
    if contour == "arch":
        return depth * (2.0 * np.sin(np.pi * x) - 1.0)
    raise ValueError(f"unknown contour {contour!r}")


def _syllable(species: Species, rng: np.random.Generator, seconds: float, f0: float) -> np.ndarray:
    """One syllable ``(samples,)`` float64, peak about 1."""
    fam = species.family
    n = max(int(seconds * SAMPLE_RATE), 16)
    x = np.arange(n) / n
    depth = 3.0 * rng.uniform(0.7, 1.3)
    semis = contour_semitones(species.contour, x, depth, rng.uniform(2.0, 3.0))
    freq = f0 * 2.0 ** ((semis + rng.normal(0.0, 0.08, n).cumsum() / np.sqrt(n) * 4.0) / 12.0)
    phase = 2.0 * np.pi * np.cumsum(freq) / SAMPLE_RATE
    wave = np.zeros(n)
    for k, amp in enumerate(fam.harmonics, start=1):
        if k * f0 * 2.0 ** (depth / 12.0) < _TOP_HZ:
            wave += amp * np.sin(k * phase)
    if fam.am_depth > 0:
        am_phase = rng.uniform(0, 2 * np.pi)
        wave *= 1.0 - fam.am_depth * (0.5 + 0.5 * np.sin(2 * np.pi * fam.am_hz * x * seconds + am_phase))
    envelope = np.sin(np.pi * x) ** rng.uniform(0.4, 0.9)
    return wave * envelope / max(sum(fam.harmonics), 1e-9)


def _coloured_noise(rng: np.random.Generator, n: int, alpha: float) -> np.ndarray:
    """Noise ``(n,)`` with power spectrum ~ 1 / f^alpha (0 = white, 1 = pink), unit RMS."""
    spectrum = np.fft.rfft(rng.normal(0.0, 1.0, n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    noise = np.fft.irfft(spectrum / f ** (alpha / 2.0), n)
    return noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12)


def render_call(species: Species, rng: np.random.Generator) -> np.ndarray:
    """A mono recording ``(samples,)`` float32 at :data:`SAMPLE_RATE` Hz, 1-3 s, peak in [0.3, 0.9].

    Family: timbre (partials, amplitude modulation), base pitch, syllable and gap lengths. Species:
    pitch contour, number of syllables. Per recording (from ``rng``): tempo (0.8-1.25), global pitch
    (+-1 semitone) and per-syllable jitter, random onset, sometimes one faint syllable, coloured
    background noise at 0-20 dB SNR, sometimes an insect hum.
    """
    fam = species.family
    tempo = rng.uniform(0.8, 1.25)
    f0 = fam.base_hz * 2.0 ** (rng.uniform(-1.0, 1.0) / 12.0)
    onset = rng.uniform(0.05, 0.45)
    faint = int(rng.integers(species.notes)) if rng.random() < 0.15 else -1
    pieces, cursor = [], onset
    for i in range(species.notes):
        seconds = fam.syllable_s / tempo * rng.uniform(0.85, 1.15)
        pitch = f0 * 2.0 ** (rng.normal(0.0, 0.3) / 12.0)
        gain = (0.25 if i == faint else 1.0) * rng.uniform(0.8, 1.0)
        pieces.append((int(cursor * SAMPLE_RATE), gain * _syllable(species, rng, seconds, pitch)))
        cursor += seconds + fam.gap_s / tempo * rng.uniform(0.75, 1.3)
    total = np.clip(cursor + rng.uniform(0.1, 0.4), MIN_SECONDS, MAX_SECONDS)
    n = int(total * SAMPLE_RATE)
    call = np.zeros(n)
    for start, syl in pieces:
        end = min(start + len(syl), n)
        call[start:end] += syl[: end - start]

    power = np.mean(call ** 2)
    snr_db = rng.uniform(0.0, 20.0)
    noise = _coloured_noise(rng, n, rng.uniform(0.0, 1.2)) * np.sqrt(power / 10.0 ** (snr_db / 10.0))
    wave = call + noise
    if rng.random() < 0.25:  # an insect hum somewhere in the background
        t = np.arange(n) / SAMPLE_RATE
        hum = np.sin(2 * np.pi * rng.uniform(5500.0, 7500.0) * t) * (0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(2, 8) * t))
        wave += hum * np.sqrt(power) * rng.uniform(0.1, 0.5)
    return (wave / np.max(np.abs(wave)) * rng.uniform(0.3, 0.9)).astype(np.float32)
