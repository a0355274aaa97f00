"""Synthetic augmentation material for the demo, in the spirit of MUSAN and simulated rooms: background noises,
music-like tone sequences, speech of voices that are no corpus speaker, and exponentially decaying impulse responses.
Every signal is float64 and depends only on the generator it is given."""
from __future__ import annotations

import numpy as np

from data.audio import SAMPLE_RATE
from data.synth import random_channel, random_voice, synthesize

# Semitone steps of the scales the music draws its notes from (major and minor pentatonic).
SCALES = (np.array([0, 2, 4, 7, 9]), np.array([0, 3, 5, 7, 10]))


def _normalised(wav: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`wav` at an RMS of -30 to -18 dBFS, its peak kept below 0.95."""
    wav = wav * 10 ** (rng.uniform(-30, -18) / 20) / (np.sqrt(np.mean(wav ** 2)) + 1e-12)
    return wav * min(1.0, 0.95 / (np.max(np.abs(wav)) + 1e-12))  # [n]


def colored_noise(rng: np.random.Generator, n: int, color: float) -> np.ndarray:
    """Unit-RMS noise with power spectrum ~ 1 / f^color (0 white, 1 pink, 2 brown), [n]."""
    size = 1 << (n - 1).bit_length()
    freqs = np.maximum(np.fft.rfftfreq(size, 1 / SAMPLE_RATE), 20.0)  # [size/2+1]
    noise = np.fft.irfft(np.fft.rfft(rng.standard_normal(size)) * freqs ** (-color / 2), n=size)[:n]  # [n]
    return noise / np.sqrt(np.mean(noise ** 2))


def _stationary(rng: np.random.Generator, n: int) -> np.ndarray:
    return colored_noise(rng, n, float(rng.uniform(0.0, 2.0)))


def _hum(rng: np.random.Generator, n: int) -> np.ndarray:
    """Mains hum (50 or 60 Hz and its harmonics) over faint noise: machines, fans, fridges."""
    t = np.arange(n) / SAMPLE_RATE
    base = 50.0 if rng.random() < 0.5 else 60.0
    hum = sum(rng.uniform(0.1, 1.0) / k * np.sin(2 * np.pi * base * k * t + rng.uniform(0, 2 * np.pi))
              for k in range(1, 8))
    return hum / np.sqrt(np.mean(hum ** 2)) + 0.3 * colored_noise(rng, n, 1.0)  # [n]


def _bursts(rng: np.random.Generator, n: int) -> np.ndarray:
    """Short decaying noise bursts at random times: knocks, steps, clatter."""
    out = 0.05 * colored_noise(rng, n, 1.0)  # [n]
    for _ in range(int(rng.integers(3, 12)) * max(1, n // (4 * SAMPLE_RATE))):
        start, length = int(rng.integers(n)), int(rng.uniform(0.02, 0.3) * SAMPLE_RATE)
        stop = min(n, start + length)
        decay = np.exp(-np.arange(stop - start) / (0.2 * length))
        out[start:stop] += rng.uniform(0.3, 3.0) * decay * colored_noise(rng, stop - start, rng.uniform(0, 1.5))
    return out


def _modulated(rng: np.random.Generator, n: int) -> np.ndarray:
    """Noise whose level swells slowly: wind, traffic, rain."""
    t = np.arange(n) / SAMPLE_RATE
    envelope = 1.0 + 0.8 * np.sin(2 * np.pi * rng.uniform(0.1, 2.0) * t + rng.uniform(0, 2 * np.pi))  # [n]
    return envelope * colored_noise(rng, n, float(rng.uniform(0.5, 2.0)))


NOISE_KINDS = (_stationary, _hum, _bursts, _modulated)


def noise_signal(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A background noise of `seconds` seconds, of a kind drawn from NOISE_KINDS, [n] float64."""
    n = int(seconds * SAMPLE_RATE)
    return _normalised(NOISE_KINDS[int(rng.integers(len(NOISE_KINDS)))](rng, n), rng)


def music_signal(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A music-like signal: notes and chords of a pentatonic scale at a steady tempo, each a decaying harmonic tone
    of the piece's timbre, with a percussive noise burst on some beats, [n] float64."""
    n = int(seconds * SAMPLE_RATE)
    beat = int(SAMPLE_RATE * 60.0 / rng.uniform(70, 160))
    root = rng.uniform(110.0, 330.0)
    scale = SCALES[int(rng.integers(len(SCALES)))]
    harmonics = np.arange(1, 9)
    timbre = harmonics ** -rng.uniform(0.8, 2.5) * rng.uniform(0.3, 1.0, harmonics.size)  # [8]
    decay_s = rng.uniform(0.1, 0.6)
    drums = rng.random() < 0.7
    out = np.zeros(n + 4 * beat)
    for start in range(0, n, beat):
        length = beat * int(rng.integers(1, 4))
        t = np.arange(length) / SAMPLE_RATE
        envelope = np.minimum(t / 0.01, 1.0) * np.exp(-t / decay_s)  # [length]
        for _ in range(int(rng.integers(1, 4))):  # a note or a chord
            step = scale[int(rng.integers(len(scale)))] + 12 * int(rng.integers(0, 2))
            f0 = root * 2 ** (step / 12)
            partials = harmonics[harmonics * f0 < 0.45 * SAMPLE_RATE]
            tone = timbre[partials - 1] @ np.sin(2 * np.pi * f0 * partials[:, None] * t[None, :])  # [length]
            out[start:start + length] += envelope * tone
        if drums and rng.random() < 0.6:
            hit = int(0.15 * SAMPLE_RATE)
            out[start:start + hit] += rng.uniform(0.5, 2.0) * np.exp(-np.arange(hit) / (0.03 * SAMPLE_RATE)) * \
                colored_noise(rng, hit, float(rng.uniform(0.0, 1.5)))
    return _normalised(out[:n], rng)


def speech_signal(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """Speech of a voice drawn from `rng` (no corpus speaker), recorded cleanly, [n] float64."""
    voice, channel = random_voice(rng), random_channel(rng, clean=True)
    return synthesize(voice, channel, rng, duration=seconds).astype(np.float64)


def room_impulse_response(rng: np.random.Generator, rt60: float) -> np.ndarray:
    """A room's impulse response: a short silence, the direct path (the largest sample), a few early reflections and
    a diffuse tail of noise decaying by 60 dB in `rt60` seconds, duller as it decays; [min(rt60, 1 s)] float64."""
    n = int(min(rt60, 1.0) * SAMPLE_RATE)
    direct = int(rng.uniform(0.001, 0.006) * SAMPLE_RATE)
    t = np.arange(n - direct) / SAMPLE_RATE  # time after the direct path
    tail = rng.standard_normal(t.size) * np.exp(-6.908 * t / rt60)  # [n - direct] -60 dB (ln 1000) at rt60
    smoothing = np.exp(-np.arange(8) / rng.uniform(0.5, 3.0))
    tail = np.convolve(tail, smoothing / smoothing.sum(), mode='same')
    tail *= rng.uniform(0.1, 0.4) / (np.max(np.abs(tail)) + 1e-12)
    for _ in range(int(rng.integers(3, 8))):
        at = int(rng.uniform(0.003, 0.04) * SAMPLE_RATE)
        if at < tail.size:
            tail[at] += rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.55) * np.exp(-6.908 * at / SAMPLE_RATE / rt60)
    rir = np.zeros(n)
    rir[direct] = 1.0
    rir[direct + 1:] += tail[1:]
    return rir  # [n]
