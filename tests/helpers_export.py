"""Shared helpers of the export tests: in-training models from a tiny teacher, a small VoxCeleb-layout corpus, and
reference embeddings / scores computed here, independently of the export package."""
from __future__ import annotations

import atexit
import functools
import itertools
import os
import shutil
import tempfile
from dataclasses import dataclass

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from arguments import METHOD_ARGS
from export import export_model
from export.cli import main
from helpers_models import model_args, tiny_teacher_dir
from models import build_models
from trainer.methods import METHODS, JointKDFT
from utils.errors import UserError, one_line
from utils.metrics import compute_eer

SEG_SIZE, NUM_SEG = 4000, 3
RATE = 16000


def training_core(method: str, seed: int = 0, family: str = 'hubert') -> JointKDFT:
    """The JointKDFT a run of `method` trains, from the tiny teacher, with every weight and BN statistic perturbed
    (so that equal outputs prove the trained weights were carried over), in eval mode."""
    parts = build_models(model_args(huggingface_url=tiny_teacher_dir(family), init_teacher_idx=[1, 2],
                                    use_TFT=METHOD_ARGS[method]['args']['use_TFT'], class_weight=False),
                         num_speakers=4, class_counts=None, adapter=METHODS[method].adapter, finetune_teacher=False)
    core = JointKDFT(parts.student, parts.backend, parts.kd_loss, parts.ft_loss, 1.0, 1.0)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in core.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))
        for module in core.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.copy_(0.1 * torch.randn(module.running_mean.shape, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(module.running_var.shape, generator=generator))
    return core.eval()


def write_corpus(root: str, speakers: int = 4, utts_per_speaker: int = 3, seed: int = 0) -> dict[str, str]:
    """Speaker-dependent tones + noise as <root>/id1000<s>/<video>/<nnnnn>.wav; lengths around SEG_SIZE.

    Returns key (speaker/video/utt.wav) → path. Some files are shorter than SEG_SIZE (wrap-padded TTA).
    """
    rng = np.random.default_rng(seed)
    files = {}
    for s in range(speakers):
        pitch = 110.0 * (1.5 ** s)
        for u in range(utts_per_speaker):
            length = int(rng.integers(3000, 9000))
            t = np.arange(length) / RATE
            wav = 0.3 * np.sin(2 * np.pi * pitch * t) + 0.1 * np.sin(2 * np.pi * 3 * pitch * t) + \
                0.05 * rng.standard_normal(length)
            key = f"id1000{s}/video{u % 2}/{u + 1:05d}.wav"
            path = os.path.join(root, key)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            sf.write(path, wav.astype(np.float32), RATE, subtype='FLOAT')
            files[key] = path
    return files


def write_trial_list(path: str, keys: list[str]) -> tuple[list[tuple[str, str]], np.ndarray]:
    """Every pair of `keys` as `label enroll test` lines (label 1 when the speaker ids match); returns pairs, labels."""
    pairs = list(itertools.combinations(sorted(keys), 2))
    labels = np.array([int(a.split('/')[0] == b.split('/')[0]) for a, b in pairs], dtype=np.int64)
    with open(path, 'w', encoding='utf-8') as handle:
        handle.writelines(f"{label} {a} {b}\n" for label, (a, b) in zip(labels.tolist(), pairs))
    return pairs, labels


def reference_embeddings(core: torch.nn.Module, path: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Full [E] and TTA [NUM_SEG, E] embeddings of one file by the in-training model: whole file, then NUM_SEG
    windows of SEG_SIZE starting at round(linspace(0, n - SEG_SIZE, NUM_SEG)), the file repeated when shorter."""
    wav, rate = sf.read(path, dtype='float32')
    assert rate == RATE
    if len(wav) < SEG_SIZE:
        wav_padded = np.concatenate([wav] * (SEG_SIZE // len(wav) + 1))[:SEG_SIZE]
    else:
        wav_padded = wav
    starts = np.round(np.linspace(0, len(wav_padded) - SEG_SIZE, NUM_SEG)).astype(int)
    segments = np.stack([wav_padded[s:s + SEG_SIZE] for s in starts])  # [K, SEG_SIZE]
    with torch.no_grad():
        full = core.embed(torch.from_numpy(wav)[None])[0]  # [E]
        tta = core.embed(torch.from_numpy(segments))  # [K, E]
    return full, tta


def reference_score(a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Mean of the full-utterance cosine and the mean cosine over all NUM_SEG x NUM_SEG segment pairs."""
    full = F.cosine_similarity(a[0], b[0], dim=0)
    tta = F.cosine_similarity(a[1][:, None, :], b[1][None, :, :], dim=-1).mean()  # over [K, K]
    return float((full + tta) / 2)


@dataclass(frozen=True)
class OnnxSetup:
    """A trained-looking model, its corpus and trial list, reference scores, and its export with model.onnx."""
    core: JointKDFT
    base: str  # folder holding wav/, veri_test2.txt and model/
    files: dict[str, str]  # trial key → path
    pairs: list[tuple[str, str]]
    labels: np.ndarray  # [N]
    reference: dict[str, tuple[torch.Tensor, torch.Tensor]]  # key → full [E], TTA [NUM_SEG, E]
    scores: np.ndarray  # [N] reference full_tta scores
    eer: float
    threshold: float
    model: str  # export directory, with model.onnx + model.onnx.json


@functools.lru_cache(maxsize=None)
def onnx_setup() -> OnnxSetup:
    """Built once per test process (tracing the ONNX graph takes seconds): an os_kdft2 model, a 4-speaker corpus and
    its trial list, the reference scores, and the export with its threshold at their EER, made ONNX by
    `python -m export onnx --model DIR`."""
    base = tempfile.mkdtemp(prefix='onnx_export_')
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    core = training_core('os_kdft2', seed=5)
    files = write_corpus(os.path.join(base, 'wav'))
    pairs, labels = write_trial_list(os.path.join(base, 'veri_test2.txt'), list(files))
    reference = {key: reference_embeddings(core, path) for key, path in files.items()}
    scores = np.array([reference_score(reference[a], reference[b]) for a, b in pairs])  # [N]
    eer, threshold = compute_eer(scores, labels)
    model_dir = export_model(core, os.path.join(base, 'model'), threshold, {'note': 'onnx test'}, SEG_SIZE, NUM_SEG)
    main(['onnx', '--model', model_dir])
    return OnnxSetup(core, base, files, pairs, labels, reference, scores, eer, threshold, model_dir)


def cli_error(argv: list[str]) -> str:
    """The one-line message `python -m export <argv>` exits with on a user error (checked to be one `error:` line)."""
    with pytest.raises(UserError) as stop:
        main(argv)
    message = one_line(stop.value)
    assert '\n' not in message and message.startswith('error: ')
    return message
