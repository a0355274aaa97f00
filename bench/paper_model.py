"""The models the benchmarks measure: the paper's os_kdft2 configuration on a random-weight teacher checkpoint.

`save_random_teacher` writes a HuBERT-base architecture (transformers' HubertConfig() defaults: 12 layers, hidden
768, 94.4 M parameters) with random weights through save_pretrained; `build_paper` loads it back through
models.build_models exactly as main.py loads a real checkpoint, with every other setting taken from arguments.py
(os_kdft2: 2-layer student from teacher layers [0, 1], tuner back-end, KD heads on teacher layers [4, 8, 12],
class-weighted softmax over VoxCeleb1's 1,211 speakers). Speed does not depend on the weights' values.

The attention kernel: transformers picks SDPA by default (what the project runs). For the eager-attention reference
the loader that build_models calls is swapped for one passing `attn_implementation`, so the rest of the wiring is
build_models' own; the student inherits the teacher's kernel through its copied config.

Run as a script, it builds the model and prints its parts' parameter counts and the losses of one forward pass on
a random batch, a check that the configuration the benchmarks time is built and runs:

    python bench/paper_model.py [--model base|tiny] [--attention eager|sdpa] [--batch 2] [--crop 48000]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tempfile
from typing import Callable
from unittest import mock

import numpy as np
import torch
from transformers import AutoConfig, AutoModel, HubertConfig, HubertModel, PreTrainedModel

import models
from arguments import DEMO_ARGS, METHOD_ARGS, MIN_CROP, file_defaults
from bench.common import at_least, machine_line, pick_device, print_table
from models import Models, build_models
from models.summary import count
from models.teacher import make_tiny_teacher
from data.curriculum import Batch
from trainer.methods import METHODS, JointKDFT
from utils.errors import ArgumentParser, exit_on_user_error

PAPER_ARGS = {**file_defaults(), **METHOD_ARGS['os_kdft2']['args']}
NUM_SPEAKERS = 1211  # VoxCeleb1 dev
SIZES = ('base', 'tiny')  # HuBERT-base (the paper) | the demo's tiny teacher (smoke tests)


def save_random_teacher(path: str, size: str = 'base', seed: int = 1) -> str:
    """Write a random-weight teacher checkpoint of `size` to directory `path`; return `path`."""
    if size == 'tiny':
        return make_tiny_teacher(path, seed=seed)
    if size != 'base':
        raise ValueError(f'size: got {size!r}, expected one of {SIZES}')
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = HubertModel(HubertConfig())
    model.save_pretrained(path)
    return path


def _loader(attention: str | None) -> Callable[[str], PreTrainedModel]:
    """The project's load_ssl_model, or AutoModel.from_pretrained with a forced attention kernel."""
    if attention is None:
        return models.load_ssl_model

    def load(url: str) -> PreTrainedModel:
        return AutoModel.from_pretrained(url, attn_implementation=attention)
    return load


def build_paper(model_dir: str, attention: str | None = None, seed: int = 1) -> Models:
    """Teacher, student, back-end and losses of os_kdft2 with paper settings; `attention` None = transformers'
    default (SDPA), else 'eager' / 'sdpa' forced. The same seed gives the same back-end and head weights."""
    config = AutoConfig.from_pretrained(model_dir)
    depth = config.num_hidden_layers
    a = PAPER_ARGS
    targets = a['target_layer_idx'] if depth >= max(a['target_layer_idx']) else DEMO_ARGS['target_layer_idx']
    counts = np.random.default_rng(seed).integers(40, 200, size=NUM_SPEAKERS)  # utterances per speaker
    with mock.patch.object(models, 'load_ssl_model', _loader(attention)), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_models({**a, 'huggingface_url': model_dir, 'target_layer_idx': targets}, NUM_SPEAKERS, counts,
                            adapter=METHODS['os_kdft2'].adapter, finetune_teacher=False)


def attention_in_use(parts: Models) -> str:
    """The attention kernel the teacher and the student layers actually run."""
    teacher = parts.teacher.model.config._attn_implementation
    student = parts.student.layers[0].layer.attention.config._attn_implementation
    return teacher if teacher == student else f'teacher {teacher}, student {student}'


def joint_model(parts: Models, device: torch.device) -> tuple[JointKDFT, torch.optim.Adam]:
    """The trainable module of a joint step and its optimiser, as trainer/build.py makes them."""
    core = JointKDFT(parts.student, parts.backend, parts.kd_loss, parts.ft_loss, PAPER_ARGS['w_kd'],
                     PAPER_ARGS['w_ft']).to(device)
    optimizer = torch.optim.Adam(core.parameters(), lr=PAPER_ARGS['lr'], weight_decay=PAPER_ARGS['weight_decay'])
    return core, optimizer


def random_batch(batch_size: int, crop: int, device: torch.device, seed: int = 0) -> Batch:
    """A training batch of noise-like audio (KD and FT crops) with random speaker labels."""
    gen = torch.Generator().manual_seed(seed)
    x_kd = 0.1 * torch.randn(batch_size, crop, generator=gen)  # [B, S]
    x_ft = 0.1 * torch.randn(batch_size, crop, generator=gen)  # [B, S]
    y = torch.randint(0, NUM_SPEAKERS, (batch_size,), generator=gen)  # [B]
    return Batch(x_kd, x_ft, y, torch.zeros(batch_size, dtype=torch.bool), []).to(device)


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model', choices=SIZES, default='base', help='base = HuBERT-base (paper), tiny = smoke')
    parser.add_argument('--attention', choices=('eager', 'sdpa'), default=None,
                        help="attention kernel forced on teacher and student (default: transformers' choice)")
    parser.add_argument('--batch', type=at_least(2, why='BatchNorm needs 2 items in a batch'), default=2,
                        help='items of the random batch (each: a KD and an FT crop)')
    parser.add_argument('--crop', type=at_least(MIN_CROP, why='the CNN frames a SpecAugment time mask needs'),
                        default=48000, help='crop length in 16 kHz samples (paper: 48000)')
    parser.add_argument('--device', default='auto', help="'auto' (GPU when visible), 'cpu' or 'cuda:N'")
    args = parser.parse_args(argv)
    device = pick_device(args.device)
    print(machine_line(device))
    with tempfile.TemporaryDirectory() as folder:
        parts = build_paper(save_random_teacher(os.path.join(folder, 'teacher'), args.model), args.attention)
    core, _ = joint_model(parts, device)
    teacher = parts.teacher.to(device)
    print(f'attention in use: {attention_in_use(parts)}')
    print_table(f'os_kdft2, {args.model} teacher: parameters', ['part', 'M'],
                [[name, f'{count(module) / 1e6:.2f}'] for name, module in
                 (('teacher (frozen)', teacher.model), ('student', parts.student), ('back-end', parts.backend),
                  ('KD heads', parts.kd_loss), ('speaker classifier', parts.ft_loss),
                  ('trained in a joint step', core))])
    batch = random_batch(args.batch, args.crop, device)
    with torch.no_grad():
        losses = core(batch, teacher(batch.x_kd))
    print_table(f"one forward pass, batch {args.batch} x (KD + FT) crops of {args.crop / 16000:g} s", ['loss', 'value'],
                [[name, f'{value.item():.4f}'] for name, value in losses.items()])


if __name__ == '__main__':
    exit_on_user_error(main)
