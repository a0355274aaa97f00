"""On-the-fly augmentation of training crops with MUSAN and room impulse responses, as the field uses it: one of
reverberation, additive noise (0-15 dB SNR), music (5-15 dB) or babble (3-7 talkers, 13-20 dB) per augmented crop.

Noise, music and babble read a crop of their file by seeking (data.audio.read_crop), so memory stays flat however
long the MUSAN files are; every draw comes from the generator the caller passes, so a crop's augmentation is
reproducible from whatever seeds that generator.

SNR (dB) = 10 log10(sum(s^2) / sum(n^2)) over the crop: s the signal before the noise is added (the clean crop, or the
reverberant one), n the noise as added. Outputs are float32 and never clipped: a training crop is a float tensor, so
a sum above 1.0 in amplitude is kept as it is (tools that write 16-bit files scale the whole file, data/corrupt.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from data.audio import SAMPLE_RATE, audio_length, read_audio, read_crop
from data.voxceleb import find_audio

MUSAN_PARTS = ('noise', 'music', 'speech')  # the sub-folders of a MUSAN root this module reads
MUSAN_LAYOUT = '<path_musan>/noise/**/*.wav, <path_musan>/music/**/*.wav, <path_musan>/speech/**/*.wav (MUSAN)'
RIR_LAYOUT = '<path_rir>/**/*.wav, e.g. RIRS_NOISES/simulated_rirs/{small,medium,large}room/RoomN/*.wav'
MAX_RIR_SAMPLES = 2 * SAMPLE_RATE  # an impulse response is read up to 2 s: the reverberant tail beyond is inaudible
# The field's SNR ranges (dB) per additive type, and the number of talkers in a babble.
FIELD_SNR_DB = {'noise': (0.0, 15.0), 'music': (5.0, 15.0), 'babble': (13.0, 20.0)}
BABBLE_TALKERS = (3, 7)


@dataclass(frozen=True)
class NoiseLists:
    """The augmentation files: MUSAN noise, music and speech, and room impulse responses (sorted paths)."""
    noise: tuple[str, ...]
    music: tuple[str, ...]
    speech: tuple[str, ...]
    rirs: tuple[str, ...]


def _listed(folder: str, key: str, layout: str) -> tuple[str, ...]:
    """The .wav/.flac files below `folder`; a missing or empty folder is an error naming `key`."""
    try:
        return tuple(find_audio(folder, layout))
    except (FileNotFoundError, ValueError) as err:
        raise type(err)(f"argument '{key}': {err}") from None


def scan_noise_sets(path_musan: str, path_rir: str) -> NoiseLists:
    """List MUSAN's noise/, music/ and speech/ (recursive) and every impulse response below `path_rir`; a missing
    folder is a FileNotFoundError and a folder without audio a ValueError, each naming the key and the path."""
    for key, path in (('path_musan', path_musan), ('path_rir', path_rir)):
        if not path:
            layout = MUSAN_LAYOUT if key == 'path_musan' else RIR_LAYOUT
            raise ValueError(f"argument '{key}': empty; augmentation reads {layout}")
    parts = {part: _listed(os.path.join(path_musan, part), 'path_musan', MUSAN_LAYOUT) for part in MUSAN_PARTS}
    rirs = _listed(path_rir, 'path_rir', RIR_LAYOUT)
    print(f"augmentation: {len(parts['noise'])} noise, {len(parts['music'])} music, {len(parts['speech'])} speech "
          f"files below {path_musan}; {len(rirs)} impulse responses below {path_rir}", flush=True)
    return NoiseLists(parts['noise'], parts['music'], parts['speech'], rirs)


@dataclass
class Applied:
    """What one augmentation did: its type, the SNR drawn (additive types) and the files it read."""
    kind: str
    snr_db: float | None = None
    files: list[str] = field(default_factory=list)


def energy(wav: np.ndarray) -> float:
    """sum(x^2) in float64."""
    x = np.asarray(wav, dtype=np.float64)
    return float(np.dot(x, x))


def add_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """signal + g * noise with g chosen so that 10 log10(sum(signal^2) / sum((g noise)^2)) = snr_db; float32 [n].
    A silent noise adds nothing; a silent signal stays silent (g = 0)."""
    noise_energy = energy(noise)
    gain = 0.0 if noise_energy == 0.0 else np.sqrt(energy(signal) / (noise_energy * 10.0 ** (snr_db / 10.0)))
    return (signal.astype(np.float64) + gain * noise.astype(np.float64)).astype(np.float32)  # [n]


def fft_convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """The full linear convolution of x [n] and h [m], [n + m - 1] float64, through a real FFT."""
    size = x.shape[0] + h.shape[0] - 1
    fast = 1 << (size - 1).bit_length()
    spectrum = np.fft.rfft(x.astype(np.float64), fast) * np.fft.rfft(h.astype(np.float64), fast)  # [fast/2+1]
    return np.fft.irfft(spectrum, fast)[:size]  # [n + m - 1]


def reverberate(wav: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """`wav` [n] convolved with `rir` normalised to unit energy, aligned at the RIR's direct path (its largest
    magnitude, at sample p): out[t] = sum_k rir[k] wav[t + p - k], so the output is not delayed and has the input's
    length. The output is then scaled to the input's energy (energy-preserving: what the tail cut at the crop's end and
    the room's colouring would change). float32 [n]."""
    h = rir.astype(np.float64)
    h_energy = energy(h)
    if h_energy == 0.0:
        raise ValueError('an impulse response of zeros cannot reverberate a signal')
    h /= np.sqrt(h_energy)
    peak = int(np.argmax(np.abs(h)))
    out = fft_convolve(wav, h)[peak:peak + wav.shape[0]]  # [n]
    out_energy = energy(out)
    if out_energy > 0.0:
        out *= np.sqrt(energy(wav) / out_energy)
    return out.astype(np.float32)  # [n]


def _draw(rng: np.random.Generator, paths: tuple[str, ...]) -> str:
    return paths[int(rng.integers(len(paths)))]


def _reverb(aug: Augmenter, wav: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Applied]:
    path = _draw(rng, aug.lists.rirs)
    rir = read_audio(path, 0, min(audio_length(path), MAX_RIR_SAMPLES))  # [m]
    return reverberate(wav, rir), Applied('reverb', None, [path])


def _additive(part: str) -> Callable[[Augmenter, np.ndarray, np.random.Generator], tuple[np.ndarray, Applied]]:
    """The augmentation that adds a crop of one file of MUSAN's `part` at an SNR drawn from the type's range."""
    def apply(aug: Augmenter, wav: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Applied]:
        path = _draw(rng, getattr(aug.lists, part))
        noise = read_crop(path, wav.shape[0], rng)  # [n]
        low, high = aug.snr_db[part]
        snr = float(rng.uniform(low, high))
        return add_at_snr(wav, noise, snr), Applied(part, snr, [path])
    return apply


def _babble(aug: Augmenter, wav: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Applied]:
    """3-7 MUSAN speech crops, each scaled to unit energy (no talker dominates), summed, and the sum added at one SNR
    drawn from the babble range."""
    talkers = int(rng.integers(BABBLE_TALKERS[0], BABBLE_TALKERS[1] + 1))
    paths = [_draw(rng, aug.lists.speech) for _ in range(talkers)]
    crowd = np.zeros(wav.shape[0], dtype=np.float64)  # [n]
    for path in paths:
        voice = read_crop(path, wav.shape[0], rng).astype(np.float64)  # [n]
        voice_energy = energy(voice)
        if voice_energy > 0.0:
            crowd += voice / np.sqrt(voice_energy)
    low, high = aug.snr_db['babble']
    snr = float(rng.uniform(low, high))
    return add_at_snr(wav, crowd, snr), Applied('babble', snr, paths)


# name -> augmentation(augmenter, crop [n] float32, generator) -> (augmented crop [n] float32, what was done)
AUGMENTATIONS: dict[str, Callable[[Augmenter, np.ndarray, np.random.Generator], tuple[np.ndarray, Applied]]] = {
    'reverb': _reverb, 'noise': _additive('noise'), 'music': _additive('music'), 'babble': _babble,
}


class Augmenter:
    """Applies one augmentation type per call, drawn uniformly from `kinds`. Holds only file lists and numbers, so it
    pickles cheaply into DataLoader workers."""

    def __init__(self, lists: NoiseLists, kinds: tuple[str, ...] = tuple(AUGMENTATIONS),
                 snr_db: dict[str, tuple[float, float]] | None = None) -> None:
        unknown = [k for k in kinds if k not in AUGMENTATIONS]
        if unknown or not kinds:
            raise ValueError(f"augmentation types {list(kinds)}: expected a non-empty subset of {list(AUGMENTATIONS)}")
        self.lists = lists
        self.kinds = tuple(kinds)
        self.snr_db = {**FIELD_SNR_DB, **(snr_db or {})}
        for kind, (low, high) in self.snr_db.items():
            if low > high:
                raise ValueError(f"SNR range of {kind!r}: low {low} dB above high {high} dB")

    def apply(self, kind: str, wav: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Applied]:
        """Augmentation `kind` of `wav` [n]: (float32 [n], what was done)."""
        return AUGMENTATIONS[kind](self, wav, rng)

    def augment(self, wav: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Applied]:
        """One type drawn from `kinds` and applied to `wav` [n]: (float32 [n], what was done)."""
        return self.apply(self.kinds[int(rng.integers(len(self.kinds)))], wav, rng)
