"""Training step of the paper-size model (os_kdft2, HuBERT-base teacher, 2-layer student, tuner back-end).

Measured per variant, in interleaved rounds (bench/common.py), on a batch of random audio (`--batch` items, each a
KD crop and an FT crop of `--crop` samples):
- the wall time of trainer.loop.train_step, the project's step, as items/s and crops/s (2 crops per item);
- its split, from the same phases with a clock reading after each: teacher forward, student forward + losses,
  backward, optimizer step;
- the CNN front-end alone on the same crops (the teacher's forward, the student's forward + backward), as a share
  of the student's forward + backward and of the whole step;
- the peak memory of one train_step above the memory held before it (RSS high-water mark on CPU, CUDA allocator
  peak on GPU): activations, gradients and optimizer buffers.
Variants: the project (transformers' default SDPA attention, teacher under torch.inference_mode) against the
reference (eager attention, teacher run with autograd enabled and its states detached), and the two mixed cases.
Every variant draws the same LayerDrop / SpecAugment / noise in a round (same seeds), so they do equal work.

    python bench/train_step.py [--batch 2] [--crop 48000] [--repeats 3] [--threads 1] [--model base|tiny]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import itertools
import tempfile
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from arguments import MIN_CROP
from bench.common import (PeakMemory, Series, add_runtime_args, apply_runtime_args, at_least, gib, machine_line,
                          print_table, run_interleaved, synchronize)
from bench.paper_model import SIZES, attention_in_use, build_paper, joint_model, random_batch, save_random_teacher
from models.summary import count
from models.teacher import Teacher
from trainer.distributed import DistEnv
from data.curriculum import Batch
from trainer.loop import train_step
from trainer.methods import JointKDFT
from utils.errors import ArgumentParser, exit_on_user_error

PHASES = ('teacher fwd', 'student fwd', 'backward', 'optimizer')


class AutogradTeacher(Teacher):
    """Reference teacher: the same frozen model run with autograd enabled (no inference mode), states detached."""

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            states = self.model(wav, output_hidden_states=True).hidden_states  # L+1 × [B, T, H]
        return torch.stack([s.detach() for s in states], dim=1)  # [B, L+1, T, H]


@dataclass
class StepCase:
    """What one variant trains: the joint module, its teacher, its optimizer, and bf16 autocast on or off."""
    core: JointKDFT
    teacher: nn.Module
    optimizer: torch.optim.Optimizer
    amp: bool = False


def split_step(case: StepCase, batch: Batch, device: torch.device) -> dict[str, float]:
    """train_step's phases (one rank, finite loss) with a synchronised clock reading after each, in seconds."""
    marks = [time.perf_counter()]

    def mark() -> None:
        synchronize(device)
        marks.append(time.perf_counter())

    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=case.amp and device.type == 'cuda'):
        targets = case.teacher(batch.x_kd)
        mark()
        losses = case.core(batch, targets)
        mark()
    case.optimizer.zero_grad(set_to_none=True)
    losses['loss'].backward()
    mark()
    case.optimizer.step()
    mark()
    return dict(zip(PHASES, np.diff(marks).tolist()))


def cnn_step(case: StepCase, batch: Batch, device: torch.device) -> dict[str, float]:
    """The CNN front-end's part of a step, run alone: the teacher's on the KD crops (forward, inference mode) and
    the student's on all crops (forward + backward), in seconds; the gradient it leaves is cleared."""
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=case.amp and device.type == 'cuda')
    synchronize(device)
    start = time.perf_counter()
    with autocast, torch.inference_mode():
        case.teacher.model.feature_extractor(batch.x_kd)  # [B, C, T]
    synchronize(device)
    middle = time.perf_counter()
    with autocast:
        features = case.core.student.feature_extractor(torch.cat([batch.x_kd, batch.x_ft]))  # [2B, C, T]
    features.float().mean().backward()
    synchronize(device)
    end = time.perf_counter()
    case.core.zero_grad(set_to_none=True)
    return {'CNN': end - start, 'student CNN': end - middle}


def _round(case: StepCase, batch: Batch, device: torch.device) -> Callable[[], dict[str, float]]:
    """One round of a variant: a measured train_step, then a split step and the CNN alone; seeded by the round
    number, so every variant draws the same LayerDrop / SpecAugment / noise as the others in that round."""
    env, rounds = DistEnv(0, 1, device), itertools.count()

    def run() -> dict[str, float]:
        case.core.train()  # as the epoch loop does; an embedding benchmark may have left it in eval mode
        seed = next(rounds)
        torch.manual_seed(seed)
        np.random.seed(seed)
        with PeakMemory(device) as memory:
            synchronize(device)
            start = time.perf_counter()
            if train_step(case.core, lambda b: case.teacher(b.x_kd), batch, case.optimizer, env, case.amp) is None:
                raise RuntimeError('train_step skipped the update: non-finite loss')
            synchronize(device)
            step = time.perf_counter() - start
        torch.manual_seed(seed)
        np.random.seed(seed)
        return {'step': step, 'memory': float(memory.delta), **split_step(case, batch, device),
                **cnn_step(case, batch, device)}

    return run


def measure_steps(cases: dict[str, StepCase], batch: Batch, device: torch.device, repeats: int,
                  warmup: int) -> dict[str, dict[str, Series]]:
    """Per variant: 'step' (train_step wall seconds), 'memory' (bytes), the PHASES seconds, and 'CNN' (teacher and
    student CNN alone) and 'student CNN' (its forward + backward) seconds."""
    return run_interleaved({name: _round(case, batch, device) for name, case in cases.items()}, repeats, warmup,
                           device)


def print_steps(title: str, results: dict[str, dict[str, Series]], batch_size: int, reference: str) -> None:
    """The per-variant table and the speed-up of every variant over `reference`, phase by phase."""
    rows = []
    for name, r in results.items():
        step = r['step'].median
        rows.append([name, f'{step:.3f}', f"{r['step'].best:.3f}", f"{r['step'].spread:.0%}",
                     f'{batch_size / step:.2f}', f'{2 * batch_size / step:.2f}',
                     *[f'{r[p].median:.3f}' for p in PHASES],
                     f"{r['student CNN'].median / (r['student fwd'].median + r['backward'].median):.0%}",
                     f"{r['CNN'].median / step:.0%}", gib(max(r['memory'].values))])
    print_table(title, ['variant', 'train_step s', 'best s', 'spread', 'items/s', 'crops/s',
                        *[f'{p} s' for p in PHASES], 'CNN share of student fwd+bwd', 'CNN share of step',
                        'step memory GiB'], rows)
    ref = results[reference]
    ratios = [[name, f"{ref['step'].best / r['step'].best:.2f}x",
               *[f"{ref[k].median / r[k].median:.2f}x" for k in ('step', *PHASES)]]
              for name, r in results.items() if name != reference]
    print_table(f'speed-up over "{reference}" (ratio of medians; best = ratio of best rounds)',
                ['variant', 'train_step best', 'train_step', *PHASES], ratios)


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--batch', type=at_least(2, why='BatchNorm needs 2 items in a batch'), default=2,
                        help='items per step (each: a KD and an FT crop), at least 2')
    parser.add_argument('--crop', type=at_least(MIN_CROP, why='the CNN frames a SpecAugment time mask needs'),
                        default=48000, help=f'crop length in 16 kHz samples (paper: 48000), at least {MIN_CROP}')
    parser.add_argument('--model', choices=SIZES, default='base', help='base = HuBERT-base (paper), tiny = smoke')
    add_runtime_args(parser, repeats=3)
    args = parser.parse_args(argv)
    device = apply_runtime_args(args)
    with tempfile.TemporaryDirectory() as folder:
        model_dir = save_random_teacher(os.path.join(folder, 'teacher'), args.model)
        cases = {}
        for attention, label in (('eager', 'eager'), (None, 'SDPA')):
            parts = build_paper(model_dir, attention)
            core, optimizer = joint_model(parts, device)
            model = parts.teacher.to(device).model
            print(f'{label}: attention in use = {attention_in_use(parts)}; teacher {count(model) / 1e6:.1f} M, '
                  f'trainable {count(core) / 1e6:.1f} M parameters')
            cases[f'{label}, autograd teacher'] = StepCase(core, AutogradTeacher(model), optimizer)
            cases[f'{label}, inference-mode teacher'] = StepCase(core, parts.teacher, optimizer)
    reference, project = 'eager, autograd teacher', 'SDPA, inference-mode teacher'
    cases = {reference: cases[reference], **{k: v for k, v in cases.items() if k not in (reference, project)},
             f'{project} (project)': cases[project]}
    batch = random_batch(args.batch, args.crop, device)
    results = measure_steps(cases, batch, device, args.repeats, args.warmup)
    print_steps(f'os_kdft2 training step, {args.model} teacher, batch {args.batch} x (KD + FT) crops of '
                f'{args.crop / 16000:g} s, fp32, {args.repeats} rounds', results, args.batch, reference)
    print(f'\nafter: {machine_line(device)}')


if __name__ == '__main__':
    exit_on_user_error(main)
