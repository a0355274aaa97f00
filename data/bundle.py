"""Everything one run reads, listed and checked before training: training utterances and speakers, KD audio, the
augmentation files, the validation and the test evaluations (trial lists with every key checked against the audio that
must answer it)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch.utils.data import Dataset

from data.audio import AudioError, audio_length
from data.augment import Augmenter, scan_noise_sets
from data.eval_sets import EvalSet
from data.librispeech import scan_librispeech
from data.trials import (Trials, check_trial_keys, find_trial_lists, heldout_trials, read_trials,
                         refuse_training_speakers)
from data.utterance_index import UtteranceIndex
from data.voxceleb import as_roots, hold_out_speakers, scan_voxceleb, speaker_table
from utils.min_audio import MIN_AUDIO_SAMPLES, too_short

# Why a key of the E or H list may be missing from path_test.
WHOLE_VOX1_HINT = ("; the E and H lists use utterances of all of VoxCeleb1 (dev + test): give path_test both roots, "
                   "e.g. path_test=['/data/vox1/dev/wav','/data/vox1/test/wav']")


@dataclass
class EvalSpec:
    """One evaluation: the utterances to embed, their keys (row order) and the trial lists to score."""
    name: str
    eval_set: Dataset
    keys: list[str]
    trials: list[Trials]


@dataclass
class DataBundle:
    """The lists one run needs: training utterances and speakers, KD audio, validation and test evaluations, and the
    augmenter of the training crops (None when aug_prob is 0)."""
    train_utts: UtteranceIndex
    speakers: dict[str, int]
    kd_paths: list[str]
    validation: EvalSpec
    test: EvalSpec
    augmenter: Augmenter | None = None


def _eval_spec(name: str, utts: UtteranceIndex, trials: list[Trials], seg_size: int, num_seg: int,
               check_audio: bool = True) -> EvalSpec:
    """Embed only the utterances the trial lists use, in a fixed order; each must be readable audio at least
    MIN_AUDIO_SAMPLES long (utils/min_audio.py; checked now, from the headers, so that a broken or too short test file
    stops the run before training rather than after)."""
    used = {k for t in trials for k in (*t.enroll, *t.test)}
    keys = utts.keys()
    rows = np.array([i for i, k in enumerate(keys) if k in used], dtype=np.int64)  # [K]
    chosen = utts.subset(rows)
    for i in range(len(chosen) if check_audio else 0):
        length = audio_length(chosen.path(i))
        if length < MIN_AUDIO_SAMPLES:
            raise AudioError(too_short(f'{chosen.path(i)} (a file the trial lists need)', length)
                             + '; remove its trials from the lists')
    return EvalSpec(name, EvalSet(chosen, seg_size, num_seg), [keys[i] for i in rows.tolist()], trials)


def _long_enough(utts: UtteranceIndex) -> UtteranceIndex:
    """The held-out validation utterances at least MIN_AUDIO_SAMPLES long (read from their headers); the shorter
    ones are left out, counted in a printed note (training skips such files as it skips unreadable ones)."""
    rows = np.array([i for i in range(len(utts)) if audio_length(utts.path(i)) >= MIN_AUDIO_SAMPLES],
                    dtype=np.int64)  # [V]
    if len(rows) < len(utts):
        print(f'note: {len(utts) - len(rows)} held-out validation files shorter than {MIN_AUDIO_SAMPLES} samples '
              f'(what the model needs) are left out of validation', flush=True)
    return utts.subset(rows)


def build_data(args: dict) -> DataBundle:
    """Scan the training roots, the evaluation roots, the trial lists, LibriSpeech and the augmentation files (keys
    path_train, path_test, path_cache, path_trials, trials, path_libri, validation, val_speakers, val_trials, seg_size,
    num_seg, rand_seed, aug_prob, path_musan, path_rir); refuse trial lists that score training speakers; check every
    trial key."""
    dev = scan_voxceleb(as_roots(args['path_train'], 'path_train'), cache_dir=args['path_cache'])
    pool = scan_voxceleb(as_roots(args['path_test'], 'path_test'), cache_dir=args['path_cache'])
    lists = find_trial_lists(args['path_trials'], args['trials'])
    trials = [read_trials(path, name) for name, path in lists.items()]
    training_speakers = dev.speakers()
    for t in trials:
        refuse_training_speakers(t, training_speakers, lists[t.name])
    available = set(pool.keys())
    for t in trials:
        check_trial_keys(t, available, hint='' if t.name == 'O' else WHOLE_VOX1_HINT)
    test_spec = _eval_spec('test', pool, trials, args['seg_size'], args['num_seg'])
    train_utts = dev
    if args['validation'] == 'heldout':
        rng = np.random.default_rng([args['rand_seed'], 7])
        train_utts, val_utts = hold_out_speakers(dev, args['val_speakers'], rng)
        val_utts = _long_enough(val_utts)
        val_trials = heldout_trials(val_utts, args['val_trials'], rng)
        validation = _eval_spec('validation', val_utts, [val_trials], args['seg_size'], args['num_seg'])
    elif len(trials) == 1:
        validation = EvalSpec('validation', test_spec.eval_set, test_spec.keys, trials)
    else:  # several lists: epochs are selected on the O list (or the first given), not on ~145 k E/H utterances
        chosen = next((t for t in trials if t.name == 'O'), trials[0])
        validation = _eval_spec('validation', test_spec.eval_set.utts, [chosen], args['seg_size'], args['num_seg'],
                                check_audio=False)
    kd_paths = scan_librispeech(args['path_libri']) if args['path_libri'] else []
    augmenter = Augmenter(scan_noise_sets(args['path_musan'], args['path_rir'])) if args['aug_prob'] > 0 else None
    return DataBundle(train_utts, speaker_table(train_utts), kd_paths, validation, test_spec, augmenter)
