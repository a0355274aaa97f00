"""Training-data rate with on-the-fly augmentation: crops per second through CurriculumTrainSet + DataLoader with
aug_prob 0 (as released) next to aug_prob 0.6 over all four types and each type alone (aug_prob 1), against what a
training step eats.

Corpus (bench/data_loading.py's writer, in a temporary directory): `--files` speech-like .wav utterances of
`--file-seconds` s in the VoxCeleb1 layout; the curriculum is held at p(VoxCeleb) = 1, so both crops of an item
(KD + FT) are seeking reads of those .wav files (bench/data_loading.py measures the LibriSpeech .flac side). Augmentation files: the demo's generated MUSAN / simulated-RIR
set (data/demo.py write_noise_set), or a real one with `--musan` and `--rir`. Only the rows `--aug-rows` names are
augmented (ft: one crop of the two per item; both: both). A pass is `--items` items, shuffled, drop_last; rates are
medians over interleaved rounds. The consumption they are set against: crops/s of one os_kdft2 training step of the
paper-size model at the same batch (measured here with bench/train_step.py's code, or given by `--step-crops-per-s`).

    python bench/augment.py [--files 100] [--batch 2] [--workers 0 2] [--step-crops-per-s X]
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import tempfile

import numpy as np
import torch

from bench.common import apply_runtime_args, machine_line, print_table, run_interleaved
from bench.data_loading import add_loader_args, loader_pass, step_crops_per_s, write_corpus
from data.audio import SAMPLE_RATE
from data.augment import AUGMENTATIONS, Augmenter, scan_noise_sets
from data.curriculum import AUG_ROWS, CurriculumTrainSet
from data.demo import write_noise_set
from data.voxceleb import scan_voxceleb, speaker_table
from utils.errors import ArgumentParser, exit_on_user_error

RECIPE_PROB = 0.6  # aug_prob of recipe=modern


def settings(lists, all_kinds: bool) -> dict[str, tuple[Augmenter | None, float]]:
    """Name -> (augmenter, aug_prob): none, the recipe's mix, and (with `all_kinds`) each type alone."""
    cases = {'none (aug_prob 0)': (None, 0.0), f'all four, aug_prob {RECIPE_PROB}': (Augmenter(lists), RECIPE_PROB)}
    if all_kinds:
        cases.update({f'{kind} only, aug_prob 1': (Augmenter(lists, (kind,)), 1.0) for kind in AUGMENTATIONS})
    return cases


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__.split('\n')[0])
    add_loader_args(parser, files=100, items=400, workers=[0, 2])
    parser.add_argument('--aug-rows', choices=tuple(AUG_ROWS), default='ft', help='rows augmented (aug_rows)')
    parser.add_argument('--each-type', type=int, choices=(0, 1), default=1, help='1: each type alone as well')
    parser.add_argument('--musan', default='', help='a MUSAN root (default: the generated demo set)')
    parser.add_argument('--rir', default='', help='a folder of impulse responses (with --musan)')
    args = parser.parse_args(argv)
    if bool(args.musan) != bool(args.rir):
        parser.error('--musan and --rir go together (or leave both out for the generated set)')
    device = apply_runtime_args(args)
    with tempfile.TemporaryDirectory() as root:
        vox, _ = write_corpus(root, args.files, args.file_seconds, libri_files=1)
        if args.musan:
            lists = scan_noise_sets(args.musan, args.rir)
        else:
            generated = write_noise_set(os.path.join(root, 'noise'), seed=1, purpose='train')
            lists = scan_noise_sets(generated.path_musan, generated.path_rir)
        utts = scan_voxceleb(vox)
        items = utts.subset(np.arange(args.items) % len(utts))  # a pass long enough to outlast the prefetch
        cases = {}
        for name, (augmenter, prob) in settings(lists, bool(args.each_type)).items():
            train_set = CurriculumTrainSet(items, speaker_table(utts), [], args.crop, schedule='constant',
                                           total_epochs=1, seed=1, p_const=1.0, augmenter=augmenter, aug_prob=prob,
                                           aug_rows=args.aug_rows)
            cases.update({(name, w): loader_pass(train_set, args.batch, w) for w in args.workers})
        results = run_interleaved(cases, args.repeats, args.warmup, torch.device('cpu'))
    consumed = args.step_crops_per_s or step_crops_per_s(args.batch, args.crop, device, args.step_repeats)
    how = 'given' if args.step_crops_per_s else f'measured, median of {args.step_repeats} steps'
    plain = {w: results[(name, w)]['crops/s'].median for (name, w) in results if name.startswith('none')}
    rows = [[name, str(w), f"{r['crops/s'].median:.0f}", f"{r['crops/s'].spread:.0%}",
             f"{r['crops/s'].median / plain[w]:.2f}", f"{r['crops/s'].median / consumed:.1f}x"]
            for (name, w), r in results.items()]
    print_table(f'training crops ({args.crop / SAMPLE_RATE:g} s) with augmentation of the {args.aug_rows} rows, '
                f'batch {args.batch}, {args.items} items from {args.files} .wav of {args.file_seconds:g} s, '
                f'{args.repeats} rounds',
                ['augmentation', 'workers', 'crops/s', 'spread', 'vs none', 'x step consumption'], rows)
    print(f'\naugmentation files: {len(lists.noise)} noise, {len(lists.music)} music, {len(lists.speech)} speech, '
          f'{len(lists.rirs)} impulse responses ({args.musan or "generated demo set"})')
    print(f'training step consumption ({how}): {consumed:.2f} crops/s = {consumed / 2:.2f} items/s '
          f'(os_kdft2, batch {args.batch}, {device})')
    print(f'after: {machine_line(device)}')


if __name__ == '__main__':
    exit_on_user_error(main)
