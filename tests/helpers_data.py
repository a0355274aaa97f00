"""Shared helpers of the data tests: real audio files in the real layouts, with self-describing sample values."""
from __future__ import annotations

import os

import numpy as np
import soundfile as sf

# Coded audio: sample t of file f holds (f * CODE_SPAN + t) / 2**23, exact in 32-bit float, so any crop tells
# which file it came from and where it starts.
CODE_SPAN = 4096
CODE_SCALE = 2.0 ** 23


def write_audio(path: str, data: np.ndarray, rate: int = 16000, subtype: str = 'FLOAT') -> str:
    """Write `data` ([n] or [n, channels]) to `path` (format from the extension), creating folders."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, data, rate, subtype=subtype)
    return path


def coded_signal(file_id: int, length: int) -> np.ndarray:
    """The samples of coded file `file_id`: [length] float32 (length below CODE_SPAN)."""
    assert length < CODE_SPAN
    return ((file_id * CODE_SPAN + np.arange(length)) / CODE_SCALE).astype(np.float32)


def decode(wav: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(file ids, positions) of coded samples."""
    codes = np.round(np.asarray(wav, dtype=np.float64) * CODE_SCALE).astype(np.int64)
    return codes // CODE_SPAN, codes % CODE_SPAN


def expected_crop(path: str, crop: np.ndarray) -> np.ndarray:
    """What a crop of `path` that starts where `crop` starts must hold, computed from the whole file."""
    full, _ = sf.read(path, dtype='float32')
    if full.shape[0] <= crop.shape[0]:
        return np.tile(full, crop.shape[0] // full.shape[0] + 1)[:crop.shape[0]]
    start = int(decode(crop[:1])[1][0])
    return full[start:start + crop.shape[0]]


def write_vox_tree(root: str, layout: dict[str, dict[str, list[int]]], ext: str = '.wav',
                   first_id: int = 0) -> dict[str, str]:
    """Write <root>/<spk>/<video>/<00001>.<ext> coded files; layout[spk][video] = lengths. Returns key -> path."""
    files, file_id = {}, first_id
    for speaker, videos in layout.items():
        for video, lengths in videos.items():
            for number, length in enumerate(lengths, start=1):
                key = f"{speaker}/{video}/{number:05d}{ext}"
                files[key] = write_audio(os.path.join(root, speaker, video, f"{number:05d}{ext}"),
                                         coded_signal(file_id, length),
                                         subtype='PCM_24' if ext == '.flac' else 'FLOAT')
                file_id += 1
    return files


def tree_bytes(root: str) -> dict[str, bytes]:
    """Every file below `root`: relative path → its bytes (to compare written trees exactly)."""
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(folder, name), 'rb') as handle:
                found[os.path.relpath(os.path.join(folder, name), root)] = handle.read()
    return found


def coded_corpus(root: str, speakers: int, libri_files: int, low: int, high: int):
    """`speakers` speakers x 3 utterances of coded audio (lengths in [low, high)) below root/dev, and `libri_files`
    LibriSpeech-style files below root/libri: (utterance index, speaker table, LibriSpeech paths)."""
    from data.voxceleb import scan_voxceleb, speaker_table
    rng = np.random.default_rng(0)
    layout = {f'id1000{s}': {'abcdefghijk': rng.integers(low, high, 3).tolist()} for s in range(speakers)}
    write_vox_tree(os.path.join(root, 'dev'), layout)
    libri = [write_audio(os.path.join(root, 'libri', '19', '198', f'19-198-{u:04d}.flac'),
                         coded_signal(100 + u, int(rng.integers(low, high))), subtype='PCM_24')
             for u in range(libri_files)]
    utts = scan_voxceleb(os.path.join(root, 'dev'))
    return utts, speaker_table(utts), libri
