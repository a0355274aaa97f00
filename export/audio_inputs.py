"""Audio files given on the command line: checked up front, then embedded exactly like the training's evaluation.

Embedding goes through trainer.evaluate.extract_embeddings and data.eval_sets.EvalSet, so an exported model sees
the same whole-utterance input and the same evenly spaced TTA segments as the final evaluation did. Waveforms given
in memory (export/api.py) are made 16 kHz mono the way data.audio reads files.
"""
from __future__ import annotations

import os

import numpy as np
import torch
import torchaudio.functional as AF

from data.audio import SAMPLE_RATE, audio_length
from data.eval_sets import EvalSet
from data.utterance_index import Utterance
from data.voxceleb import AUDIO_EXTENSIONS
from export.model import ExportError, SpeakerRuntime
from trainer.distributed import DistEnv
from trainer.evaluate import extract_embeddings
from utils.min_audio import too_short

VOXCELEB_WAV = 'wav'  # VoxCeleb1's folder between its test root and the speaker folders


def check_audio_path(path: str) -> str:
    """Return `path` when it is an existing .wav / .flac file; else an ExportError naming it."""
    if not path.lower().endswith(AUDIO_EXTENSIONS):
        raise ExportError(f"unsupported audio format: {path}; expected a {' or '.join(AUDIO_EXTENSIONS)} file")
    if not os.path.isfile(path):
        raise ExportError(f"audio file not found: {path}")
    return path


def read_path_list(list_path: str) -> list[str]:
    """Audio paths of a list file, one per line (blank lines skipped; relative paths are relative to the cwd)."""
    if not os.path.isfile(list_path):
        raise ExportError(f"audio list not found: {list_path}; expected a text file with one audio path per line")
    with open(list_path, encoding='utf-8') as handle:
        paths = [line.strip() for line in handle if line.strip()]
    if not paths:
        raise ExportError(f"audio list {list_path} is empty; expected one audio path per line")
    return paths


def keys_root(root: str, keys: list[str]) -> str:
    """The folder below which `keys` lie: `root` itself, or its `wav/` folder when `root` is VoxCeleb1's test folder
    given one level up (<root>/wav/<spk>/<video>/<utt>.wav), as training accepts it."""
    wav = os.path.join(root, VOXCELEB_WAV)
    if os.path.isdir(wav) and not any(os.path.isfile(os.path.join(root, k)) for k in keys) and \
            any(os.path.isfile(os.path.join(wav, k)) for k in keys):
        return wav
    return root


def locate_keys(keys: list[str], roots: list[str]) -> list[str]:
    """Path of each trial key below the first of `roots` that holds it (keys like id10270/x6uYqmx31kE/00001.wav); a
    root may be given with or without VoxCeleb1's `wav/` level. Prints the folders used."""
    missing_roots = [r for r in roots if not os.path.isdir(r)]
    if missing_roots:
        raise ExportError(f"audio root not found: {missing_roots[0]}; expected a directory holding the trial keys")
    roots = [keys_root(root, keys) for root in roots]
    print(f"audio root{'s' if len(roots) > 1 else ''}: {', '.join(roots)}", flush=True)
    paths = []
    for key in keys:
        candidates = [os.path.join(root, key) for root in roots]
        found = [c for c in candidates if os.path.isfile(c)]
        if not found:
            raise ExportError(f"trial key {key} not found below {' or '.join(roots)} (no file {candidates[0]})")
        paths.append(check_audio_path(found[0]))
    return paths


def embed_paths(model: SpeakerRuntime, paths: list[str], keys: list[str], device: torch.device
                ) -> tuple[np.ndarray, np.ndarray]:
    """Full-utterance [N, E] and TTA-segment [N, num_seg, E] embeddings of `paths`, in their order. Each file is
    checked first from its header (an unreadable file is an AudioError naming it; one shorter than the model's
    minimum, truncated ones included, an ExportError naming it, its length and the minimum)."""
    for path in paths:
        length = audio_length(check_audio_path(path))
        if length < model.min_samples:
            raise ExportError(too_short(path, length, model.min_samples))
    utts = [Utterance(path=path, key=key, speaker='') for path, key in zip(paths, keys)]
    eval_set = EvalSet(utts, model.seg_size, model.num_seg)
    full, tta = extract_embeddings(model.embed, eval_set, DistEnv(rank=0, world_size=1, device=device),
                                   num_workers=0, full=True)
    return full, tta  # [N, E], [N, K, E]


def waveform_16k(wav: np.ndarray | torch.Tensor, sample_rate: int, name: str) -> np.ndarray:
    """An in-memory waveform as data.audio.read_audio returns a file: float32 mono at 16 kHz.

    `wav` is [samples] or [samples, channels] (soundfile's layout) of floats in [-1, 1]; channels are averaged and
    other rates resampled with torchaudio, as the training's reader does. `name` names the input in errors.
    """
    data = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    if not np.issubdtype(data.dtype, np.floating):
        raise ExportError(f"{name}: expected floating-point samples in [-1, 1], got {data.dtype} (scale integer PCM "
                          f"by its full range, e.g. int16 / 32768)")
    if data.ndim == 2 and data.shape[1] > data.shape[0]:
        raise ExportError(f"{name}: expected [samples] or [samples, channels] (soundfile's layout), got shape "
                          f"{data.shape}; transpose a [channels, samples] array first")
    if data.ndim not in (1, 2) or data.shape[0] == 0:
        raise ExportError(f"{name}: expected a non-empty [samples] or [samples, channels] array, got shape "
                          f"{data.shape}")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int) or sample_rate <= 0:
        raise ExportError(f"{name}: sample_rate must be a positive int (Hz), got {sample_rate!r}")
    samples = data.astype(np.float32, copy=False)  # [n] or [n, channels]
    mono = samples if samples.ndim == 1 else samples.mean(axis=1, dtype=np.float32)  # [n]
    if sample_rate == SAMPLE_RATE:
        return np.ascontiguousarray(mono)  # [n]
    return AF.resample(torch.from_numpy(np.ascontiguousarray(mono)), sample_rate, SAMPLE_RATE).numpy()  # [n']
