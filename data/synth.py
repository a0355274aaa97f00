"""Speech-like synthesis for the demo corpus: a jittered glottal pulse train plus aspiration noise, shaped frame by
frame (STFT) by a cascade of five formant resonators, then a recording channel and background noise.
Voices differ as people do (pitch, vocal-tract length, formant detail, tilt, breathiness); utterances of one voice
differ in content, rate, pitch, level, channel and noise."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data.audio import SAMPLE_RATE

N_FFT = 512
HOP = 128
# F1-F3 (Hz) of ten vowels of an adult male tract (Peterson & Barney style); F4, F5 are added per voice.
VOWELS = np.array([[730, 1090, 2440], [530, 1840, 2480], [270, 2290, 3010], [570, 840, 2410], [300, 870, 2240],
                   [660, 1720, 2410], [520, 1190, 2390], [490, 1350, 1690], [390, 1990, 2550], [440, 1020, 2240]],
                  dtype=np.float64)
HIGH_FORMANTS = np.array([3400.0, 4400.0])  # F4, F5 of the same tract
NEUTRAL = np.array([500.0, 1500.0, 2500.0])  # F1-F3 of the tract at rest (schwa), used around pauses
FRICATIVES = np.array([[2800, 4200, 5600, 6600, 7400], [1900, 2700, 3500, 4600, 6000]], dtype=np.float64)
BANDWIDTHS = np.array([70.0, 90.0, 130.0, 180.0, 250.0])  # formant bandwidths (Hz) before the voice's scale
FRICATIVE_BANDWIDTHS = np.array([500.0, 700.0, 900.0, 1100.0, 1300.0])


@dataclass(frozen=True)
class Voice:
    """The speaker: what stays the same across all of a speaker's utterances."""
    f0: float                     # mean fundamental frequency (Hz)
    f0_range: float               # intonation range (semitones)
    tract: float                  # formant scale: > 1 for a shorter vocal tract
    formant_detail: np.ndarray    # [5] per-formant multiplicative deviation of this tract
    vowel_detail: np.ndarray      # [10, 3] per-vowel deviation (accent / articulation habits)
    vowel_use: np.ndarray         # [10] how often each vowel occurs in this speaker's speech (idiolect)
    timbre_hz: float              # centre of a fixed extra resonance (nasal / sinus cavities)
    timbre_db: float              # its gain
    bandwidth: float              # bandwidth scale
    tilt: float                   # source spectral tilt exponent (larger = darker voice)
    breath: float                 # aspiration noise relative to the pulse train
    jitter: float                 # pitch-period jitter (fraction of the period)
    shimmer: float                # pulse amplitude variation (fraction)
    syllable: float               # mean vowel duration (s)


@dataclass(frozen=True)
class Channel:
    """The recording session: microphone / room / codec colouring and background noise."""
    tilt_db_per_octave: float     # broad spectral slope around 1 kHz
    bump_hz: float                # centre of a resonance or notch
    bump_db: float                # its gain
    highpass_hz: float            # low cut
    lowpass_hz: float             # band limit
    snr_db: float                 # speech-to-noise ratio
    noise_color: float            # noise spectrum slope exponent (0 white, 1 pink, 2 brown)


def random_voice(rng: np.random.Generator) -> Voice:
    """Draw a speaker: female and male ranges of pitch and tract length, overlapping like real voices."""
    female = rng.random() < 0.5
    f0 = float(np.exp(rng.uniform(np.log(160), np.log(260)) if female else rng.uniform(np.log(85), np.log(160))))
    return Voice(f0=f0, f0_range=float(rng.uniform(1.5, 5.0)),
                 tract=float(rng.uniform(1.04, 1.22) if female else rng.uniform(0.86, 1.06)),
                 formant_detail=rng.normal(0.0, 0.05, size=5), vowel_detail=rng.normal(0.0, 0.04, size=(10, 3)),
                 vowel_use=rng.dirichlet(np.ones(len(VOWELS))),
                 timbre_hz=float(np.exp(rng.uniform(np.log(800), np.log(5000)))), timbre_db=float(rng.uniform(-6, 9)),
                 bandwidth=float(rng.uniform(0.7, 1.6)), tilt=float(rng.uniform(0.2, 1.0)),
                 breath=float(rng.uniform(0.02, 0.35)), jitter=float(rng.uniform(0.003, 0.02)),
                 shimmer=float(rng.uniform(0.02, 0.12)), syllable=float(rng.uniform(0.10, 0.22)))


def random_channel(rng: np.random.Generator, clean: bool = False) -> Channel:
    """Draw a recording session; `clean` gives audiobook-like conditions (mild colouring, little noise)."""
    spread = 0.3 if clean else 1.0
    return Channel(tilt_db_per_octave=float(rng.uniform(-3, 3) * spread),
                   bump_hz=float(np.exp(rng.uniform(np.log(300), np.log(5000)))),
                   bump_db=float(rng.uniform(-8, 8) * spread), highpass_hz=float(rng.uniform(40, 250)),
                   lowpass_hz=float(rng.uniform(6500, 7800) if clean else rng.uniform(3800, 7800)),
                   snr_db=float(rng.uniform(28, 40) if clean else rng.uniform(8, 35)),
                   noise_color=float(rng.uniform(0.0, 2.0)))


def _smooth(track: np.ndarray, width: int) -> np.ndarray:
    """Moving Hann average over frames (axis 0), edges extended: smooth articulatory transitions."""
    kernel = np.hanning(width + 2)[1:-1]
    kernel /= kernel.sum()
    padded = np.pad(track, ((width // 2, width - 1 - width // 2), (0, 0)), mode='edge')  # [F + width - 1, D]
    return np.stack([np.convolve(padded[:, d], kernel, mode='valid') for d in range(track.shape[1])], axis=1)


def _articulation(voice: Voice, rng: np.random.Generator, num_frames: int, rate: float) -> np.ndarray:
    """Frame tracks [F, 13] = 5 formants, 5 bandwidths, voicing, amplitude, fricative flag from a random
    sequence of vowels, fricatives and pauses."""
    times = np.arange(num_frames) * HOP / SAMPLE_RATE  # [F]
    rows, bounds, t = [], [], float(rng.uniform(0.05, 0.2))
    rest = np.concatenate([NEUTRAL, HIGH_FORMANTS]) * voice.tract * (1 + voice.formant_detail)  # [5]
    silence = np.concatenate([rest, BANDWIDTHS * voice.bandwidth, [0.0, 0.0, 0.0]])  # tract at rest, no sound
    rows.append(silence)
    bounds.append(0.0)
    while t < times[-1]:
        kind = rng.choice(3, p=[0.62, 0.2, 0.18]) if len(rows) > 1 else 0
        if kind == 0:
            v = int(rng.choice(len(VOWELS), p=voice.vowel_use))
            low = VOWELS[v] * (1 + voice.vowel_detail[v]) * (1 + rng.normal(0, 0.03, 3))
            formants = np.concatenate([low, HIGH_FORMANTS]) * voice.tract * (1 + voice.formant_detail)
            row = np.concatenate([formants, BANDWIDTHS * voice.bandwidth, [1.0, rng.uniform(0.6, 1.0), 0.0]])
            length = voice.syllable * rate * rng.uniform(0.7, 1.4)
        elif kind == 1:
            formants = FRICATIVES[rng.integers(len(FRICATIVES))] * (1 + 0.3 * (voice.tract - 1))
            row = np.concatenate([formants, FRICATIVE_BANDWIDTHS, [0.0, rng.uniform(0.2, 0.4), 1.0]])
            length = voice.syllable * rate * rng.uniform(0.4, 0.8)
        else:
            row, length = silence, rng.uniform(0.05, 0.25)
        rows.append(row)
        bounds.append(t)
        t += length
    rows.append(silence)
    bounds.append(t)
    segment = np.searchsorted(np.array(bounds), times, side='right') - 1  # [F]
    tracks = np.array(rows)[segment]  # [F, 13]
    tracks[:, :5] = np.minimum(tracks[:, :5], 0.47 * SAMPLE_RATE)
    return _smooth(tracks, 7)  # [F, 13]


def _source(voice: Voice, rng: np.random.Generator, tracks: np.ndarray, n: int, shift: float) -> np.ndarray:
    """Glottal pulses (unit power while voiced) plus aspiration / frication noise, [n]."""
    frame_times = np.arange(tracks.shape[0]) * HOP  # [F] in samples
    samples = np.arange(n)  # [n]
    seconds = frame_times / SAMPLE_RATE
    wander = sum(np.sin(2 * np.pi * rng.uniform(0.4, 3.0) * seconds + rng.uniform(0, 2 * np.pi)) for _ in range(2))
    declination = 1 - 2 * seconds / max(seconds[-1], 1e-9)
    semitones = shift + voice.f0_range / 2 * (declination + 0.5 * wander)  # [F]
    f0 = np.interp(samples, frame_times, voice.f0 * 2 ** (semitones / 12))  # [n]
    voicing = np.interp(samples, frame_times, tracks[:, 10])  # [n]
    amplitude = np.interp(samples, frame_times, tracks[:, 11])  # [n]
    frication = np.interp(samples, frame_times, tracks[:, 12])  # [n]
    phase = np.cumsum(f0 / SAMPLE_RATE)  # [n]
    pulses = np.flatnonzero(np.diff(np.floor(phase)) > 0) + 1  # [P]
    periods = SAMPLE_RATE / f0[pulses]  # [P]
    pulses = np.clip(pulses + np.round(rng.normal(0, voice.jitter, pulses.size) * periods), 0, n - 1).astype(int)
    heights = np.sqrt(periods) * (1 + voice.shimmer * rng.standard_normal(pulses.size))  # [P]
    source = np.zeros(n)
    np.add.at(source, pulses, heights * voicing[pulses])
    noise_gain = voice.breath * voicing + 0.6 * frication  # [n]
    return (source + noise_gain * rng.standard_normal(n)) * amplitude  # [n]


def _resonances(tracks: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """Magnitude of the five-resonator cascade (unit gain at 0 Hz) per frame and frequency, [F, bins].
    Each resonator is 1 / (1 - 2r cos(theta) z^-1 + r^2 z^-2); its squared magnitude on the unit circle is
    ((1 + r^2 - 2r cos(theta) cos(w))^2 - (2r sin(theta) sin(w))^2), evaluated without complex numbers."""
    radius = np.exp(-np.pi * tracks[:, 5:10] / SAMPLE_RATE)[:, :, None]  # [F, 5, 1]
    theta = 2 * np.pi * tracks[:, :5] / SAMPLE_RATE
    twice_r_cos, twice_r_sin = 2 * radius * np.cos(theta)[:, :, None], 2 * radius * np.sin(theta)[:, :, None]
    a = 1 + radius ** 2  # [F, 5, 1]
    omega = 2 * np.pi * freqs / SAMPLE_RATE  # [bins]
    denominator = a - twice_r_cos * np.cos(omega)  # [F, 5, bins] real part
    denominator *= denominator
    imag = twice_r_sin * np.sin(omega)  # [F, 5, bins]
    denominator -= imag * imag  # squared magnitude of each resonator's denominator
    np.divide((a - twice_r_cos) ** 2, denominator, out=denominator)
    return np.sqrt(np.prod(denominator, axis=1))  # [F, bins]


def _channel_response(voice: Voice, channel: Channel, freqs: np.ndarray) -> np.ndarray:
    """Time-invariant magnitude: the voice's source tilt times the session's colouring, [bins]."""
    f = np.maximum(freqs, 1.0)
    source_tilt = (1 + (f / 300.0) ** 2) ** (-voice.tilt / 2)
    timbre = 10 ** (voice.timbre_db * np.exp(-0.5 * (np.log2(f / voice.timbre_hz) / 0.3) ** 2) / 20)
    slope = 10 ** (channel.tilt_db_per_octave * np.log2(f / 1000.0) / 20)
    bump = 10 ** (channel.bump_db * np.exp(-0.5 * (np.log2(f / channel.bump_hz) / 0.4) ** 2) / 20)
    band = 1 / np.sqrt((1 + (channel.highpass_hz / f) ** 4) * (1 + (f / channel.lowpass_hz) ** 8))
    return source_tilt * timbre * slope * bump * band  # [bins]


def _filter_frames(source: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Filter `source` [n] with one magnitude response per frame (`gains` [F, bins]) by weighted overlap-add."""
    n, half = source.shape[0], N_FFT // 2
    window = np.sqrt(np.hanning(N_FFT + 1)[:-1])  # [N] periodic sqrt-Hann: analysis x synthesis = Hann
    padded = np.concatenate([np.zeros(half), source, np.zeros(half + N_FFT)])  # [L]
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:gains.shape[0]]  # [F, N]
    out_frames = np.fft.irfft(np.fft.rfft(frames * window, axis=1) * gains, n=N_FFT, axis=1) * window  # [F, N]
    out, norm = np.zeros(padded.shape[0]), np.zeros(padded.shape[0])
    stride = N_FFT // HOP  # frames f, f + stride, ... do not overlap: add them as one contiguous block
    for k in range(stride):
        block = out_frames[k::stride]  # [F / stride, N]
        span = slice(k * HOP, k * HOP + block.size)
        out[span] += block.ravel()
        norm[span] += np.tile(window ** 2, block.shape[0])
    return out[half:half + n] / np.maximum(norm[half:half + n], 1e-3)  # [n]


def _colored_noise(rng: np.random.Generator, n: int, color: float) -> np.ndarray:
    """Unit-RMS noise with power spectrum ~ 1 / f^color, [n] (shaped at a power-of-two FFT length for speed)."""
    size = 1 << (n - 1).bit_length()
    spectrum = np.fft.rfft(rng.standard_normal(size))  # [size/2+1]
    freqs = np.maximum(np.fft.rfftfreq(size, 1 / SAMPLE_RATE), 50.0)
    noise = np.fft.irfft(spectrum * freqs ** (-color / 2), n=size)[:n]  # [n]
    return noise / np.sqrt(np.mean(noise ** 2))


def synthesize(voice: Voice, channel: Channel, rng: np.random.Generator, duration: float) -> np.ndarray:
    """One utterance of `duration` seconds by `voice` recorded through `channel`, float32 [n] peaking below 1."""
    n = int(duration * SAMPLE_RATE)
    num_frames = n // HOP + 1
    rate = float(rng.uniform(0.8, 1.25))  # speaking-rate factor (duration multiplier) of this utterance
    tracks = _articulation(voice, rng, num_frames, rate)  # [F, 13]
    source = _source(voice, rng, tracks, n, shift=float(rng.uniform(-1.5, 1.5)))  # [n]
    freqs = np.fft.rfftfreq(N_FFT, 1 / SAMPLE_RATE)  # [bins]
    gains = _resonances(tracks, freqs) * _channel_response(voice, channel, freqs)[None, :]  # [F, bins]
    speech = _filter_frames(source, gains)  # [n]
    speech /= np.sqrt(np.mean(speech ** 2)) + 1e-12
    wav = speech + 10 ** (-channel.snr_db / 20) * _colored_noise(rng, n, channel.noise_color)  # [n]
    wav *= 10 ** (rng.uniform(-28, -16) / 20) / np.sqrt(np.mean(wav ** 2))
    peak = np.max(np.abs(wav))
    return (wav * min(1.0, 0.95 / peak)).astype(np.float32)  # [n]
