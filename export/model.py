"""The exported speaker model: student + back-end rebuilt from their description alone, inference only."""
from __future__ import annotations

import json
from typing import Callable, Protocol

import torch
from safetensors import SafetensorError
from torch import nn
from transformers import AutoModel

from models.backend import SpeakerBackend
from models.description import DescriptionError, check_spec
from models.families import FAMILIES
from models.student import Student
from utils.min_audio import min_audio_samples, too_short

FORMAT = 'os-kdft2-speaker-model'  # marker of export.json
VERSION = 1
# trainer.evaluate.score_trials key of the score the stored threshold applies to: mean of full and TTA cosine
SCORE_KIND = 'full_tta'


class ExportError(DescriptionError):
    """A user-facing problem with an export, a checkpoint or an input file; the message names it."""


def read_safetensors(path: str, load: Callable[[str], dict]) -> dict:
    """The tensors of the safetensors file `path`, read by `load` (safetensors.numpy's or .torch's load_file); an
    ExportError naming the file when it cannot be read."""
    try:
        return load(path)
    except (OSError, SafetensorError) as error:
        raise ExportError(f"{path} could not be read as safetensors: {error}") from error


def read_document(path: str, fmt: str, version: int, what: str, hint: str = '') -> dict:
    """The JSON document at `path`, checked to carry `"format": fmt` and `"version": version`; an ExportError
    naming the file otherwise (`hint` is appended to the unreadable-JSON message)."""
    try:
        with open(path, encoding='utf-8') as handle:
            document = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExportError(f"{path} could not be read as JSON ({error}){hint}") from error
    if not isinstance(document, dict) or document.get('format') != fmt:
        raise ExportError(f"{path} is not {what} (expected \"format\": \"{fmt}\")")
    if document.get('version') != version:
        raise ExportError(f"{path}: version {document.get('version')!r}, this code reads {version}")
    return document


def build_student(spec: dict) -> Student:
    """A Student of the described size with random weights, built from its own config (no teacher needed).

    The student config already has the student's layer count, so a transformers model made from it serves as the
    'teacher' whose layers 0..L-1 the Student copies; the exported weights are loaded over it afterwards.
    """
    config = FAMILIES[spec['student_config']['model_type']].config_class.from_dict(spec['student_config'])
    base = AutoModel.from_config(config)
    return Student(base, spec['num_layers'], list(range(spec['num_layers'])), spec['adapter_size'])


class SpeakerRuntime(Protocol):
    """What embedding and scoring need from a loaded export, whichever runtime runs it (PyTorch or onnxruntime)."""
    threshold: float | None  # decision threshold on SCORE_KIND scores
    score_norm: object | None  # export.cohort.ScoreNorm: the AS-Norm cohort the export carries, if any

    @property
    def seg_size(self) -> int:
        """TTA segment length in samples."""

    @property
    def num_seg(self) -> int:
        """TTA segments per utterance."""

    @property
    def embed_size(self) -> int:
        """Speaker embedding size E."""

    @property
    def min_samples(self) -> int:
        """Shortest accepted input in samples."""

    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [B, S] float 16 kHz → speaker embeddings [B, E]."""


def min_samples(student_config: dict) -> int:
    """Samples giving two frames of the CNN front-end (utils/min_audio.py), what statistics pooling needs; torch.export
    treats a dynamic size as at least 2, so a traced graph's frame axis spans two frames as well."""
    return min_audio_samples(student_config['conv_kernel'], student_config['conv_stride'])


class ExportedModel(nn.Module):
    """Student + speaker back-end, always in eval mode: embed(wav [B, S]) → speaker embeddings [B, E].

    `threshold` is the decision threshold on `full_tta` scores, the mean of full and TTA cosine (None until
    calibrated); `metadata` is free information about where the model came from (run, epoch, EER); `score_norm` the
    AS-Norm cohort and threshold it carries (export.cohort.ScoreNorm), or None.
    """

    def __init__(self, spec: dict, threshold: float | None, metadata: dict, score_norm: object | None = None):
        super().__init__()
        self.score_norm = score_norm
        self.spec = check_spec(spec, 'ExportedModel')
        self.student = build_student(spec)
        self.backend = SpeakerBackend(spec['hidden_size'], spec['num_states'], spec['embed_size'],
                                      spec['aggregation'])
        self.threshold = threshold
        self.metadata = dict(metadata)
        self.train(False)

    def train(self, mode: bool = True) -> ExportedModel:
        """Stay in eval mode whatever is asked: no dropout, LayerDrop, SpecAugment or noise, BN running stats."""
        return super().train(False)

    @property
    def seg_size(self) -> int:
        """TTA segment length in samples, as the training's evaluation used."""
        return self.spec['seg_size']

    @property
    def num_seg(self) -> int:
        """TTA segments per utterance."""
        return self.spec['num_seg']

    @property
    def embed_size(self) -> int:
        """Speaker embedding size E."""
        return self.spec['embed_size']

    @property
    def min_samples(self) -> int:
        """Shortest input the ONNX export is traced for: two CNN frames (720 samples, 45 ms, for HuBERT-base)."""
        return min_samples(self.spec['student_config'])

    def load_weights(self, state: dict[str, torch.Tensor], where: str) -> None:
        """Load 'student.*' / 'backend.*' tensors; any missing or extra key is an ExportError naming `where`."""
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ExportError(f"{where}: weights do not match the model description ({len(missing)} missing, e.g. "
                              f"{missing[:3]}; {len(unexpected)} unexpected, e.g. {unexpected[:3]})")

    @torch.no_grad()
    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [B, S] float 16 kHz → speaker embeddings [B, E] (all rows are FT rows: adapters, if any, run)."""
        if wav.dim() != 2:
            raise ValueError(f"ExportedModel.embed: expected wav of shape [B, samples], got {tuple(wav.shape)}")
        if wav.shape[1] < self.min_samples:
            raise ExportError(too_short('ExportedModel.embed: input', wav.shape[1], self.min_samples))
        return self.backend(self.student(wav, num_kd=0))  # [B, E]

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Same as embed: wav [B, S] → [B, E]."""
        return self.embed(wav)
