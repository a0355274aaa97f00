"""Tiny random-weight teachers saved once per test process, loaded back like real checkpoints."""
from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile

import torch
from transformers import PreTrainedModel, Wav2Vec2Config, Wav2Vec2Model

from arguments import file_defaults
from models.teacher import load_ssl_model, make_tiny_teacher

TINY = dict(hidden_size=32, num_layers=3, num_heads=4, intermediate_size=64, conv_dim=16)
_ROOT = tempfile.mkdtemp(prefix='tiny_teachers_')
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)


@functools.lru_cache(maxsize=None)
def tiny_teacher_dir(family: str = 'hubert') -> str:
    """Directory of a tiny `family` checkpoint written by make_tiny_teacher (once per process)."""
    return make_tiny_teacher(os.path.join(_ROOT, family), family=family, **TINY)


def tiny_ssl_model(family: str = 'hubert') -> PreTrainedModel:
    """A fresh load of the tiny checkpoint through load_ssl_model, the path a hub id takes too."""
    return load_ssl_model(tiny_teacher_dir(family))


def stable_wav2vec2() -> Wav2Vec2Model:
    """A tiny random stable-layer-norm (pre-LN) wav2vec 2.0 in eval mode, the layout of the large checkpoints."""
    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
                            conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                            do_stable_layer_norm=True, feat_extract_norm='layer')
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        return Wav2Vec2Model(config).eval()


def waveforms(batch: int, samples: int = 4000, seed: int = 0) -> torch.Tensor:
    """Reproducible random waveforms [batch, samples] (4000 samples → 12 frames)."""
    return torch.randn(batch, samples, generator=torch.Generator().manual_seed(seed))


def model_args(**overrides) -> dict:
    """The full argument dict build_models reads: arguments.py's defaults, the tiny teacher, then `overrides`."""
    args = {**file_defaults(), 'huggingface_url': tiny_teacher_dir('hubert'),
            'student_hidden_layer_size': TINY['hidden_size'], 'target_layer_idx': [1, 2, 3], 'embed_size': 16,
            'adapter_size': 8}
    args.update(overrides)
    return args
