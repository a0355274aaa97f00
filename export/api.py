"""A small Python API over an export, for people who import rather than run commands:

    from export import load_speaker_model
    model = load_speaker_model('runs/OS-KDFT2/<name>/export', runtime='onnx')  # or runtime='torch'
    a = model.embed('a.wav')                # Embedding: .full [E] and .tta [num_seg, E]
    print(model.score(a, 'b.flac'))         # full + TTA cosine, as the training's final evaluation scores
    print(model.verify('a.wav', 'b.flac'))  # True when the score reaches the export's threshold

Audio is a path (.wav / .flac at any rate and channel count) or an array [samples] / [samples, channels] with its
sample rate; both become 16 kHz mono as the training's reader (data.audio) makes them, then go through the same
whole-utterance + TTA-segment embedding and scoring as `python -m export embed / score / verify`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Union

import numpy as np
import torch

from data.audio import SAMPLE_RATE, read_audio, segments_of
from export.audio_inputs import check_audio_path, waveform_16k
from export.model import SCORE_KIND, ExportError, SpeakerRuntime
from export.runtimes import load_runtime, resolve_device
from trainer.evaluate import score_trials
from utils.min_audio import too_short

Audio = Union[str, os.PathLike, np.ndarray, torch.Tensor]


@dataclass(frozen=True)
class Embedding:
    """One utterance's embeddings: the whole utterance's `full` [E] and its TTA segments' `tta` [num_seg, E]."""
    full: np.ndarray  # [E]
    tta: np.ndarray  # [num_seg, E]


class SpeakerModel:
    """embed / score / verify audio with a loaded export (either runtime), by the export's own protocol."""

    def __init__(self, runtime: SpeakerRuntime, device: torch.device):
        self.runtime = runtime
        self.device = device

    @property
    def threshold(self) -> float:
        """Decision threshold on scores (same speaker when score >= threshold)."""
        return float(self.runtime.threshold)

    @property
    def embed_size(self) -> int:
        """Speaker embedding size E."""
        return self.runtime.embed_size

    @property
    def sample_rate(self) -> int:
        """The rate the model runs at; other rates are resampled to it."""
        return SAMPLE_RATE

    def _waveform(self, audio: Audio, sample_rate: int) -> tuple[np.ndarray, str]:
        """`audio` as float32 mono 16 kHz [n], and a name for it in errors."""
        if isinstance(audio, (str, os.PathLike)):
            path = os.fspath(audio)
            return read_audio(check_audio_path(path)), path
        if not isinstance(audio, (np.ndarray, torch.Tensor)):
            raise ExportError(f"audio: expected a .wav / .flac path or an array of samples, got "
                              f"{type(audio).__name__}")
        name = f'audio array of shape {tuple(audio.shape)}'
        return waveform_16k(audio, sample_rate, name), name

    @torch.no_grad()
    def embed(self, audio: Audio, sample_rate: int = SAMPLE_RATE) -> Embedding:
        """Full-utterance and TTA-segment embeddings of a path or an array (`sample_rate` applies to arrays)."""
        wav, name = self._waveform(audio, sample_rate)  # [n]
        if wav.shape[0] < self.runtime.min_samples:
            raise ExportError(too_short(name, wav.shape[0], self.runtime.min_samples))
        segments = segments_of(wav, self.runtime.seg_size, self.runtime.num_seg)  # [K, seg_size]
        full = self.runtime.embed(torch.as_tensor(wav, device=self.device).unsqueeze(0))  # [1, E]
        tta = self.runtime.embed(torch.as_tensor(segments, device=self.device))  # [K, E]
        return Embedding(full.float().cpu().numpy()[0], tta.float().cpu().numpy())

    def _embedding(self, item: Audio | Embedding, sample_rate: int) -> Embedding:
        if not isinstance(item, Embedding):
            return self.embed(item, sample_rate)
        expected = ((self.embed_size,), (self.runtime.num_seg, self.embed_size))
        if (item.full.shape, item.tta.shape) != expected:
            raise ExportError(f"Embedding of shapes {item.full.shape} and {item.tta.shape}; this model makes "
                              f"{expected[0]} and {expected[1]}")
        return item

    def score(self, a: Audio | Embedding, b: Audio | Embedding, sample_rate: int = SAMPLE_RATE) -> float:
        """Mean of the full-utterance cosine and the mean cosine over all TTA segment pairs of `a` and `b`."""
        first, second = self._embedding(a, sample_rate), self._embedding(b, sample_rate)
        full = np.stack([first.full, second.full])  # [2, E]
        tta = np.stack([first.tta, second.tta])  # [2, K, E]
        return float(score_trials(full, tta, np.array([0]), np.array([1]))[SCORE_KIND][0])

    def verify(self, a: Audio | Embedding, b: Audio | Embedding, sample_rate: int = SAMPLE_RATE) -> bool:
        """True (same speaker) when score(a, b) reaches the export's decision threshold."""
        return self.score(a, b, sample_rate) >= self.threshold


def load_speaker_model(path: str, runtime: str = 'torch', device: str | torch.device | None = None
                       ) -> SpeakerModel:
    """Load an export directory with `runtime` 'torch' (PyTorch, any device) or 'onnx' (onnxruntime, CPU); with
    'onnx' `path` may also be a .onnx file with its JSON. device None: CUDA when available for torch, else the CPU."""
    resolved = resolve_device(device, runtime)
    return SpeakerModel(load_runtime(path, runtime, resolved), resolved)
