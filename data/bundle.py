"""Everything one run reads, listed and checked before training: training utterances and speakers, KD audio, the
validation and the test evaluations (trial lists with every key checked against the audio that must answer it)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch.utils.data import Dataset

from data.audio import AudioError, audio_length
from data.eval_sets import EvalSet
from data.librispeech import scan_librispeech
from data.trials import Trials, check_trial_keys, find_trial_lists, heldout_trials, read_trials
from data.voxceleb import Utterance, hold_out_speakers, scan_voxceleb, speaker_table


@dataclass
class EvalSpec:
    """One evaluation: the utterances to embed, their keys (row order) and the trial lists to score."""
    name: str
    eval_set: Dataset
    keys: list[str]
    trials: list[Trials]


@dataclass
class DataBundle:
    """The lists one run needs: training utterances and speakers, KD audio, validation and test evaluations."""
    train_utts: list[Utterance]
    speakers: dict[str, int]
    kd_paths: list[str]
    validation: EvalSpec
    test: EvalSpec


def _eval_spec(name: str, utts: list[Utterance], trials: list, seg_size: int, num_seg: int) -> EvalSpec:
    """Embed only the utterances the trial lists use, in a fixed order; each must be readable audio (checked
    now, from the headers, so that a broken test file stops the run before training rather than after)."""
    used = {k for t in trials for k in (*t.enroll, *t.test)}
    utts = [u for u in utts if u.key in used]
    for u in utts:
        if audio_length(u.path) == 0:
            raise AudioError(f'{u.path}: the trial lists need this file, but it holds no audio')
    return EvalSpec(name, EvalSet(utts, seg_size, num_seg), [u.key for u in utts], trials)


def build_data(args: dict) -> DataBundle:
    """Scan VoxCeleb1 dev/test, the trial lists and LibriSpeech (keys path_train, path_test, path_trials, trials,
    path_libri, validation, val_speakers, val_trials, seg_size, num_seg, rand_seed); check every trial key."""
    dev = scan_voxceleb(args['path_train'], 'dev')
    test = scan_voxceleb(args['path_test'], 'test')
    lists = find_trial_lists(args['path_trials'], args['trials'])
    trials = [read_trials(path, name) for name, path in lists.items()]
    whole = any(t.name != 'O' for t in trials)  # E and H lists use keys of the whole VoxCeleb1
    pool = {u.key: u for u in (*test, *dev)} if whole else {u.key: u for u in test}
    for t in trials:
        check_trial_keys(t, set(pool))
    test_spec = _eval_spec('test', list(pool.values()), trials, args['seg_size'], args['num_seg'])
    train_utts = dev
    if args['validation'] == 'heldout':
        rng = np.random.default_rng([args['rand_seed'], 7])
        train_utts, val_utts = hold_out_speakers(dev, args['val_speakers'], rng)
        val_trials = heldout_trials(val_utts, args['val_trials'], rng)
        validation = _eval_spec('validation', val_utts, [val_trials], args['seg_size'], args['num_seg'])
    else:
        validation = EvalSpec('validation', test_spec.eval_set, test_spec.keys, trials)
    kd_paths = scan_librispeech(args['path_libri']) if args['path_libri'] else []
    return DataBundle(train_utts, speaker_table(train_utts), kd_paths, validation, test_spec)
