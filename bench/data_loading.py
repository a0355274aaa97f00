"""Training-data rate: random crops per second through CurriculumTrainSet + DataLoader, against what a step eats.

Corpus, written by this script into a temporary directory: `--files` speech-like utterances (data.synth) of
`--file-seconds` s as 16 kHz 16-bit .wav in the VoxCeleb1 layout, and `--libri-files` of 12-16 s as .flac in the
LibriSpeech layout (the KD corpus), both listed by the project's own scanners. Every item is two crops of `--crop`
samples (KD + FT), read by seeking, collated by collate_train, loaded as trainer/fit.py loads them (shuffled,
drop_last). Two KD sources: epoch 1 of 100 of the linear curriculum (KD crops ~99% from LibriSpeech .flac) and
epoch 100 (all from VoxCeleb1 .wav). A pass is `--items` items (the files cycled). Per worker count: the start-up
time to the first batch, and the steady rate in crops/s over the rest of the pass (interleaved rounds, medians).
The consumption it is set against: crops/s of one os_kdft2 training step of the paper-size model at the same batch
(measured here with bench/train_step.py's code, or given by `--step-crops-per-s`).

    python bench/data_loading.py [--files 200] [--batch 2] [--workers 0 1 2] [--step-crops-per-s X]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse
import tempfile
import time
from typing import Callable

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from arguments import MIN_CROP
from bench.common import add_runtime_args, apply_runtime_args, at_least, machine_line, print_table, run_interleaved
from bench.paper_model import build_paper, joint_model, random_batch, save_random_teacher
from bench.train_step import StepCase, measure_steps
from data.audio import SAMPLE_RATE
from data.curriculum import CurriculumTrainSet, collate_train
from data.librispeech import scan_librispeech
from data.synth import random_channel, random_voice, synthesize
from data.voxceleb import scan_voxceleb, speaker_table
from utils.errors import ArgumentParser, exit_on_user_error

EPOCHS = 100  # the paper's; the curriculum's p(VoxCeleb KD item) = epoch / EPOCHS


def _write(path: str, wav: np.ndarray, fmt: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, np.round(wav * 32767).astype(np.int16), SAMPLE_RATE, format=fmt, subtype='PCM_16')


def write_corpus(root: str, files: int, seconds: float, libri_files: int, seed: int = 1) -> tuple[str, str]:
    """VoxCeleb1-layout .wav files (10 per speaker, 5 per video) and LibriSpeech-layout .flac files with
    transcripts; returns (VoxCeleb root, LibriSpeech root)."""
    vox, libri = os.path.join(root, 'vox1', 'dev', 'wav'), os.path.join(root, 'librispeech')
    rng = np.random.default_rng(seed)
    voices = [random_voice(rng) for _ in range(max(files // 10, 1))]
    for i in range(files):
        key = f'id{10001 + i // 10}/video{i // 5 % 2:06d}/{i % 5 + 1:05d}.wav'
        _write(os.path.join(vox, key), synthesize(voices[i // 10], random_channel(rng), rng, seconds), 'WAV')
    for i in range(libri_files):
        speaker, chapter = 100 + i // 10, 1000 + i // 10
        folder = os.path.join(libri, str(speaker), str(chapter))
        _write(os.path.join(folder, f'{speaker}-{chapter}-{i % 10:04d}.flac'),
               synthesize(random_voice(rng), random_channel(rng, clean=True), rng, float(rng.uniform(12, 16))), 'FLAC')
        with open(os.path.join(folder, f'{speaker}-{chapter}.trans.txt'), 'a', encoding='utf-8') as handle:
            handle.write(f'{speaker}-{chapter}-{i % 10:04d} SOME WORDS\n')
    return vox, libri


def loader_pass(train_set: CurriculumTrainSet, batch: int, workers: int) -> Callable[[], dict[str, float]]:
    """A case: one shuffled pass of the loader; start-up seconds to the first batch and steady crops/s after it."""
    def run() -> dict[str, float]:
        loader = DataLoader(train_set, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                            collate_fn=collate_train, generator=torch.Generator().manual_seed(0))
        start = time.perf_counter()
        batches = iter(loader)
        next(batches)
        first = time.perf_counter()
        rest = sum(1 for _ in batches)
        return {'startup': first - start, 'crops/s': 2 * batch * rest / (time.perf_counter() - first)}
    return run


def step_crops_per_s(batch: int, crop: int, device: torch.device, repeats: int) -> float:
    """Crops/s one os_kdft2 train_step of the paper-size model consumes (median of `repeats` steps)."""
    with tempfile.TemporaryDirectory() as folder:
        parts = build_paper(save_random_teacher(os.path.join(folder, 'teacher')))
    core, optimizer = joint_model(parts, device)
    case = StepCase(core, parts.teacher.to(device), optimizer)
    results = measure_steps({'project': case}, random_batch(batch, crop, device), device, repeats, warmup=1)
    return 2 * batch / results['project']['step'].median


def add_loader_args(parser: argparse.ArgumentParser, files: int, items: int, workers: list[int]) -> None:
    """The arguments of a loader benchmark: the generated corpus, the pass, the crops, the workers, the training step
    the loader is compared with, and bench.common's runtime arguments."""
    parser.add_argument('--files', type=at_least(1), default=files, help='VoxCeleb1-layout .wav files')
    parser.add_argument('--file-seconds', type=at_least(MIN_CROP / SAMPLE_RATE, float, why='the shortest crop'),
                        default=8.0, help='length of each .wav file')
    parser.add_argument('--items', type=at_least(1), default=items, help='items per pass (the .wav files cycled)')
    parser.add_argument('--crop', type=at_least(MIN_CROP, why='the CNN frames a SpecAugment time mask needs'),
                        default=48000, help='crop length in samples (paper: 48000)')
    parser.add_argument('--batch', type=at_least(2, why='BatchNorm needs 2 items in a batch'), default=2,
                        help='items per batch (as in bench/train_step.py)')
    parser.add_argument('--workers', type=at_least(0), nargs='+', default=workers, help='DataLoader worker counts')
    parser.add_argument('--step-crops-per-s', type=at_least(0.0, float), default=0.0,
                        help='crops/s a training step consumes; 0 = measure it here')
    parser.add_argument('--step-repeats', type=at_least(1), default=3, help='measured training steps when measuring')
    add_runtime_args(parser, repeats=3)


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__.split('\n')[0])
    add_loader_args(parser, files=200, items=1000, workers=[0, 1, 2])
    parser.add_argument('--libri-files', type=at_least(1), default=50, help='LibriSpeech-layout .flac files (12-16 s)')
    args = parser.parse_args(argv)
    device = apply_runtime_args(args)
    with tempfile.TemporaryDirectory() as root:
        vox, libri = write_corpus(root, args.files, args.file_seconds, args.libri_files)
        utts, kd_paths = scan_voxceleb(vox), scan_librispeech(libri)
        items = utts.subset(np.arange(args.items) % len(utts))  # a pass long enough to outlast the prefetch
        train_set = CurriculumTrainSet(items, speaker_table(utts), kd_paths, args.crop, schedule='linear',
                                       total_epochs=EPOCHS, seed=1)
        results = {}
        for epoch, source in ((1, 'LibriSpeech .flac (epoch 1)'), (EPOCHS, 'VoxCeleb1 .wav (epoch 100)')):
            train_set.set_epoch(epoch)
            cases = {(source, w): loader_pass(train_set, args.batch, w) for w in args.workers}
            results.update(run_interleaved(cases, args.repeats, args.warmup, torch.device('cpu')))
    consumed = args.step_crops_per_s or step_crops_per_s(args.batch, args.crop, device, args.step_repeats)
    how = 'given' if args.step_crops_per_s else f'measured, median of {args.step_repeats} steps'
    rows = [[source, str(w), f"{r['startup'].median:.2f}", f"{r['crops/s'].median:.0f}", f"{r['crops/s'].spread:.0%}",
             f"{r['crops/s'].median / consumed:.0f}x"] for (source, w), r in results.items()]
    print_table(f'training crops ({args.crop / SAMPLE_RATE:g} s) through CurriculumTrainSet + DataLoader, batch '
                f'{args.batch}, {args.items} items from {args.files} .wav of {args.file_seconds:g} s + '
                f'{args.libri_files} .flac, {args.repeats} rounds',
                ['KD source', 'workers', 'start-up s', 'crops/s', 'spread', 'x step consumption'], rows)
    print(f'\ntraining step consumption ({how}): {consumed:.2f} crops/s = {consumed / 2:.2f} items/s '
          f'(os_kdft2, batch {args.batch}, {device})')
    print(f'after: {machine_line(device)}')


if __name__ == '__main__':
    exit_on_user_error(main)
