"""Trial scoring at VoxCeleb1-O scale: the project's vectorised scoring against a per-trial Python loop.

Input: the real original VoxCeleb1-O list (`--trials`, shipped as data/lists/veri_test.txt: 37,720 trials over 4,715
utterances; `--max-trials` keeps the first N for a quick run), its keys plus filler
keys up to `--utterances` (4,874, the test set) in shuffled row order, and random 192-d embeddings with speaker
structure (a random centre per speaker plus utterance and segment noise, so the EER is a number worth comparing):
one full embedding and `--num-seg` TTA segment embeddings per utterance. Measured (median of interleaved rounds):
trial_index (keys → rows), score_trials (full, TTA and their mean), verification_metrics (EER, minDCF 0.01 / 0.05)
of each score kind, and evaluate_trials end to end. The reference is the scoring the original project did, written
here from its description: a Python loop over trials, per trial the torch cosine of the full embeddings and the mean
cosine over all num_seg x num_seg segment pairs; it is followed by the same metrics. On a CPU shared with other
processes, run it with `--threads 1`: the loop's tiny torch ops otherwise wait on a descheduled second thread.

    python bench/scoring.py [--trials data/lists/veri_test.txt] [--max-trials N] [--repeats 5] [--threads 1]
"""
from __future__ import annotations

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np
import torch
import torch.nn.functional as F

from bench.common import (add_runtime_args, apply_runtime_args, at_least, discard, machine_line, ms, print_table,
                          run_interleaved)
from data.trials import Trials, read_trials, trial_index
from trainer.evaluate import evaluate_trials, score_trials
from utils.errors import ArgumentParser, exit_on_user_error
from utils.metrics import verification_metrics

TARGET_S = 0.1  # score_trials + metrics of every kind
VOX1_O = os.path.join(REPO, 'data', 'lists', 'veri_test.txt')  # the public VoxCeleb1-O list, in the repository
KINDS = ('full', 'tta', 'full_tta')


def embeddings(keys: list[str], num_seg: int, dim: int, noise: float, seed: int = 0
               ) -> tuple[np.ndarray, np.ndarray]:
    """Full [N, dim] and TTA [N, num_seg, dim] float32 embeddings: speaker centre + utterance offset (shared by
    the utterance's embeddings, like a recording session) + per-embedding noise, both Gaussian of scale `noise`."""
    rng = np.random.default_rng(seed)
    speakers = sorted({k.split('/')[0] for k in keys})
    centre = dict(zip(speakers, rng.standard_normal((len(speakers), dim))))
    base = np.stack([centre[k.split('/')[0]] for k in keys])  # [N, dim]
    base = base + noise * rng.standard_normal(base.shape)  # [N, dim] utterance offset
    full = base + noise * rng.standard_normal(base.shape)  # [N, dim]
    tta = base[:, None] + noise * rng.standard_normal((len(keys), num_seg, dim))  # [N, K, dim]
    return full.astype(np.float32), tta.astype(np.float32)


def reference_scores(full: np.ndarray, tta: np.ndarray, keys: list[str], trials: Trials) -> dict[str, np.ndarray]:
    """The original's way: for each trial, torch cosine of the full embeddings and the mean cosine of all
    segment pairs (num_seg x num_seg), one trial at a time."""
    row = {k: i for i, k in enumerate(keys)}
    full_t, tta_t = torch.from_numpy(full), torch.from_numpy(tta)
    out_full, out_tta = [], []
    for enroll, test in zip(trials.enroll, trials.test):
        a, b = row[enroll], row[test]
        out_full.append(F.cosine_similarity(full_t[a], full_t[b], dim=0).item())
        pairs = F.normalize(tta_t[a], dim=-1) @ F.normalize(tta_t[b], dim=-1).T  # [K, K]
        out_tta.append(pairs.mean().item())
    scores = {'full': np.array(out_full), 'tta': np.array(out_tta)}
    scores['full_tta'] = (scores['full'] + scores['tta']) / 2
    return scores


def _metrics_of(scores: dict[str, np.ndarray], labels: np.ndarray) -> dict[str, dict[str, float]]:
    return {kind: verification_metrics(scores[kind], labels) for kind in KINDS}


def project_pass(full: np.ndarray, tta: np.ndarray, enroll: np.ndarray, test: np.ndarray, labels: np.ndarray
                 ) -> dict[str, dict[str, float]]:
    """score_trials, then the metrics of every score kind (rows already indexed)."""
    return _metrics_of(score_trials(full, tta, enroll, test), labels)


def reference_pass(full: np.ndarray, tta: np.ndarray, keys: list[str], trials: Trials) -> dict[str, dict[str, float]]:
    """The reference loop, then the same metrics."""
    return _metrics_of(reference_scores(full, tta, keys, trials), trials.labels)


def main(argv: list[str] | None = None) -> None:
    parser = ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--trials', default=VOX1_O, help='trial list (label enroll_key test_key per line); '
                                                         'default: the VoxCeleb1-O list in data/lists')
    parser.add_argument('--max-trials', type=at_least(0), default=0, help='score only the first N trials (0 = all)')
    parser.add_argument('--utterances', type=at_least(1), default=4874, help='embedding rows (VoxCeleb1 test: 4,874)')
    parser.add_argument('--num-seg', type=at_least(1), default=5, help='TTA segments per utterance')
    parser.add_argument('--dim', type=at_least(1), default=192, help='embedding size')
    parser.add_argument('--noise', type=at_least(0, float), default=1.4,
                        help='scale of the utterance and segment noise')
    add_runtime_args(parser, repeats=5)
    args = parser.parse_args(argv)
    device = apply_runtime_args(args)
    trials = read_trials(args.trials)
    if args.max_trials:
        kept = slice(0, args.max_trials)
        trials = Trials(trials.name, trials.labels[kept], trials.enroll[kept], trials.test[kept])
    used = list(dict.fromkeys(trials.enroll + trials.test))
    filler = [f'id99999/filler{i:06d}/00001.wav' for i in range(max(args.utterances - len(used), 0))]
    keys = [(used + filler)[i] for i in np.random.default_rng(1).permutation(len(used) + len(filler))]
    full, tta = embeddings(keys, args.num_seg, args.dim, args.noise)
    enroll, test = trial_index(trials, keys)
    fast = score_trials(full, tta, enroll, test)
    slow = reference_scores(full, tta, keys, trials)
    cases = {
        'trial_index (keys -> rows)': discard(trial_index, trials, keys),
        'score_trials': discard(score_trials, full, tta, enroll, test),
        'verification_metrics, 1 kind': discard(verification_metrics, fast['full_tta'], trials.labels),
        'score_trials + metrics of 3 kinds': discard(project_pass, full, tta, enroll, test, trials.labels),
        'evaluate_trials (index + scores + metrics)': discard(evaluate_trials, full, tta, keys, trials),
    }
    fast_times = run_interleaved(cases, args.repeats, args.warmup, device)
    slow_cases = {'reference loop: scores': discard(reference_scores, full, tta, keys, trials),
                  'reference loop + metrics of 3 kinds': discard(reference_pass, full, tta, keys, trials)}
    slow_times = run_interleaved(slow_cases, max(args.repeats // 2, 1), 0, device)
    times = {name: r['total'] for name, r in {**fast_times, **slow_times}.items()}
    project, reference = times['score_trials + metrics of 3 kinds'], times['reference loop + metrics of 3 kinds']
    print_table(f'scoring {len(trials):,} trials over {len(keys):,} utterances, {args.dim}-d, full + '
                f'{args.num_seg}x{args.num_seg} TTA', ['stage', 'median ms', 'spread', 'rounds'],
                [[name, ms(s.median), f'{s.spread:.0%}', str(len(s.values))] for name, s in times.items()])
    verdict = 'met' if project.median <= TARGET_S else 'NOT met'
    print(f'\nscore_trials + metrics: {ms(project.median)} ms, target <= {ms(TARGET_S)} ms: {verdict}; '
          f'reference loop + metrics {ms(reference.median)} ms: {reference.median / project.median:.0f}x faster')
    metrics, ref_metrics = _metrics_of(fast, trials.labels), _metrics_of(slow, trials.labels)
    print_table('metrics (project vs reference loop)', ['scores', 'EER %', 'minDCF 0.01', 'minDCF 0.05',
                                                        'reference EER %', 'max |score diff|'],
                [[k, f"{metrics[k]['eer']:.3f}", f"{metrics[k]['min_dcf_0.01']:.4f}",
                  f"{metrics[k]['min_dcf_0.05']:.4f}", f"{ref_metrics[k]['eer']:.3f}",
                  f'{np.abs(fast[k] - slow[k]).max():.1e}'] for k in KINDS])
    print(f'\nafter: {machine_line(device)}')


if __name__ == '__main__':
    exit_on_user_error(main)
