"""Audio reading: 16 kHz mono float32 from any soundfile-readable file, seeking instead of decoding whole files."""
from __future__ import annotations

import math
import os

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from utils.min_audio import SAMPLE_RATE, too_short

# Resampling works on blocks of `orig/g` native samples ↔ `16000/g` output samples (g = gcd). The sinc kernel
# of torchaudio's resample (lowpass width 6, rolloff 0.99) reaches at most 6/0.99 < 7 blocks beyond a block,
# so a partial read with this many extra blocks on each side equals the same span of a whole-file resample.
_RESAMPLE_MARGIN_BLOCKS = 7


class AudioError(Exception):
    """An audio file that is missing, unreadable, empty or shorter than its header says; the message names it."""


def _open(path: str) -> sf.SoundFile:
    """Open `path` with soundfile, turning every failure into an AudioError that names the file."""
    if not os.path.isfile(path):
        raise AudioError(f"audio file not found: {path}")
    try:
        handle = sf.SoundFile(path)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise AudioError(f"cannot read audio file {path}: {err}") from err
    if handle.frames <= 0:
        handle.close()
        raise AudioError(f"empty audio file (0 samples): {path}")
    return handle


def _to_16k_length(frames: int, rate: int) -> int:
    """Length after resampling `frames` samples at `rate` to 16 kHz (torchaudio's ceil convention)."""
    g = math.gcd(rate, SAMPLE_RATE)
    orig, new = rate // g, SAMPLE_RATE // g
    return -(-frames * new // orig)


def audio_length(path: str) -> int:
    """Length of `path` in 16 kHz samples, read from the header only (no decoding)."""
    with _open(path) as handle:
        return _to_16k_length(int(handle.frames), handle.samplerate)


def _read_native(handle: sf.SoundFile, path: str, start: int, stop: int) -> np.ndarray:
    """Seek to native sample `start` and read up to `stop` as mono float32; a failed or short read is an
    AudioError naming the file."""
    try:
        handle.seek(start)
        data = handle.read(stop - start, dtype='float32', always_2d=True)  # [n, channels]
    except (sf.LibsndfileError, RuntimeError) as err:
        raise AudioError(f"cannot decode samples [{start}, {stop}) of audio file {path}: {err}") from err
    if data.shape[0] != stop - start:
        raise AudioError(f"truncated audio file {path}: header promises {int(handle.frames)} samples, "
                         f"reading [{start}, {stop}) returned {data.shape[0]}")
    if data.shape[1] == 1:
        return np.ascontiguousarray(data[:, 0])  # [n]
    return data.mean(axis=1, dtype=np.float32)  # [n]


def read_audio(path: str, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Samples [start, stop) of `path` (16 kHz units) as float32 mono 16 kHz, reading only that span from disk."""
    with _open(path) as handle:
        rate = handle.samplerate
        frames = int(handle.frames)
        length = _to_16k_length(frames, rate)
        stop = length if stop is None else stop
        if not 0 <= start < stop <= length:
            raise AudioError(f"cannot read samples [{start}, {stop}) of {path}: it has {length} samples at 16 kHz")
        if rate == SAMPLE_RATE:
            return _read_native(handle, path, start, stop)  # [stop - start]
        g = math.gcd(rate, SAMPLE_RATE)
        orig, new = rate // g, SAMPLE_RATE // g
        first_block = max(0, start // new - _RESAMPLE_MARGIN_BLOCKS)
        last_block = -(-stop // new) + _RESAMPLE_MARGIN_BLOCKS
        native = _read_native(handle, path, first_block * orig, min(frames, last_block * orig))  # [m]
    resampled = AF.resample(torch.from_numpy(native), rate, SAMPLE_RATE).numpy()  # [~m * new / orig]
    offset = first_block * new
    return np.ascontiguousarray(resampled[start - offset:stop - offset])  # [stop - start]


def wrap_pad(wav: np.ndarray, size: int) -> np.ndarray:
    """Repeat `wav` cyclically up to `size` samples (unchanged when it is already long enough)."""
    if wav.shape[0] >= size:
        return wav
    return np.pad(wav, (0, size - wav.shape[0]), mode='wrap')  # [size]


def read_crop(path: str, crop_size: int, rng: np.random.Generator, min_length: int = 1) -> np.ndarray:
    """A random `crop_size` crop of `path` (seek + partial read); a shorter file is wrap-padded to `crop_size`, and
    one shorter than `min_length` samples is an AudioError naming it (too short to stand for itself)."""
    if crop_size <= 0:
        raise ValueError(f"crop_size must be positive, got {crop_size}")
    length = audio_length(path)
    if length < min_length:
        raise AudioError(too_short(path, length, min_length))
    if length <= crop_size:
        return wrap_pad(read_audio(path), crop_size)  # [crop_size]
    start = int(rng.integers(0, length - crop_size + 1))
    return read_audio(path, start, start + crop_size)  # [crop_size]


def segment_starts(length: int, seg_size: int, num_seg: int) -> np.ndarray:
    """Evenly spaced segment starts, linspace(0, length - seg_size, num_seg) rounded to int."""
    if seg_size <= 0 or num_seg <= 0:
        raise ValueError(f"seg_size and num_seg must be positive, got {seg_size} and {num_seg}")
    return np.round(np.linspace(0, max(length - seg_size, 0), num_seg)).astype(np.int64)  # [num_seg]


def segments_of(wav: np.ndarray, seg_size: int, num_seg: int) -> np.ndarray:
    """`num_seg` evenly spaced `seg_size` windows of `wav` (wrap-padded first when shorter)."""
    wav = wrap_pad(wav, seg_size)  # [max(n, seg_size)]
    starts = segment_starts(wav.shape[0], seg_size, num_seg)  # [num_seg]
    index = starts[:, None] + np.arange(seg_size)[None, :]  # [num_seg, seg_size]
    return wav[index]  # [num_seg, seg_size]


def read_segments(path: str, seg_size: int, num_seg: int) -> np.ndarray:
    """The TTA segments of `path`: [num_seg, seg_size] float32, starts evenly spaced over the utterance."""
    return segments_of(read_audio(path), seg_size, num_seg)  # [num_seg, seg_size]
