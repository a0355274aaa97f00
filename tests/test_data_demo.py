"""data/demo.py: a deterministic synthetic corpus in the real layouts, generated safely, on which speakers can be
told apart (a simple non-neural scorer already beats chance) but not trivially."""
import os
import re
import time
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
from sklearn.metrics import roc_curve

import data.demo as demo
from data.demo import MARKER, make_demo_corpus
from data.librispeech import scan_librispeech
from data.trials import check_trial_keys, find_trial_lists, read_trials, trial_index
from data.voxceleb import scan_voxceleb

SMALL = dict(dev_speakers=3, utts_per_speaker=3, test_speakers=3, test_utts_per_speaker=4, libri_speakers=2,
             libri_utts_per_speaker=3, num_trials=20)


def _files(root: str) -> dict[str, bytes]:
    """Every file below `root` by relative path, with its bytes."""
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, 'rb') as handle:
                found[os.path.relpath(path, root)] = handle.read()
    return found


@pytest.fixture(scope='module')
def small(tmp_path_factory):
    return make_demo_corpus(str(tmp_path_factory.mktemp('demo_a')), seed=7, **SMALL)


def test_same_seed_gives_byte_identical_corpora(small, tmp_path):
    other = make_demo_corpus(str(tmp_path), seed=7, **SMALL)
    first, second = _files(small.root), _files(other.root)
    assert len(first) == 9 + 12 + 6 + 4 + 1 + 1  # wav, flac, transcripts (2 chapters each), trial list, marker
    assert first == second
    different = make_demo_corpus(str(tmp_path), seed=8, **SMALL)
    assert _files(different.root).keys() != first.keys()


def test_corpus_has_the_real_layouts(small):
    dev = scan_voxceleb(small.path_train)
    test = scan_voxceleb(small.path_test)
    assert len(dev) == 9 and len({u.speaker for u in dev}) == 3
    assert len(test) == 12 and not {u.speaker for u in dev} & {u.speaker for u in test}
    assert all(re.fullmatch(r'id1\d{4}/[A-Za-z0-9_-]{11}/\d{5}\.wav', u.key) for u in list(dev) + list(test))
    for utt in list(dev) + list(test):
        info = sf.info(utt.path)
        assert (info.samplerate, info.channels, info.subtype, info.format) == (16000, 1, 'PCM_16', 'WAV')
        assert 1.5 <= info.duration <= 4.0
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        libri = scan_librispeech(small.path_libri)
    assert len(libri) == 6
    for path in libri:
        assert re.fullmatch(r'(\d+)-(\d+)-\d{4}\.flac', os.path.basename(path))
        assert sf.info(path).samplerate == 16000 and sf.info(path).format == 'FLAC'
    found = find_trial_lists(small.path_trials, ['O'])
    trials = read_trials(found['O'])
    check_trial_keys(trials, {u.key for u in test})
    speaker = {u.key: u.speaker for u in test}
    assert len(trials) == 20 and int(trials.labels.sum()) == 10
    assert all(label == (speaker[e] == speaker[t]) for label, e, t in zip(trials.labels, trials.enroll, trials.test))


def test_existing_corpus_is_reused_and_foreign_directories_are_left_alone(small, tmp_path, capsys):
    before = {p: os.stat(os.path.join(small.root, p)).st_mtime_ns for p in _files(small.root)}
    again = make_demo_corpus(os.path.dirname(small.root), seed=7, **SMALL)
    assert again == small and 'generating' not in capsys.readouterr().out
    assert {p: os.stat(os.path.join(small.root, p)).st_mtime_ns for p in _files(small.root)} == before
    target = os.path.join(str(tmp_path), os.path.basename(small.root).replace('seed7', 'seed9'))
    os.makedirs(target)
    with open(os.path.join(target, 'mine.txt'), 'w') as handle:
        handle.write('keep me')
    with pytest.raises(FileExistsError, match=re.escape(target) + f'.*no {MARKER}'):
        make_demo_corpus(str(tmp_path), seed=9, **SMALL)
    assert os.listdir(target) == ['mine.txt']


def test_interrupted_generation_leaves_nothing_behind(tmp_path, monkeypatch):
    real_synthesize, calls = demo.synthesize, []

    def failing_synthesize(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt('simulated interruption')
        return real_synthesize(*args, **kwargs)

    monkeypatch.setattr(demo, 'synthesize', failing_synthesize)
    with pytest.raises(KeyboardInterrupt):
        make_demo_corpus(str(tmp_path), seed=7, **SMALL)
    assert os.listdir(tmp_path) == []


def _mfcc_means(paths: list[str]) -> np.ndarray:
    """Per utterance: mean over high-energy frames of MFCC 1..19 (c0, the level, dropped), [U, 19]."""
    mel = torchaudio.transforms.MelSpectrogram(16000, n_fft=512, hop_length=160, n_mels=40)
    dct = torchaudio.functional.create_dct(20, 40, 'ortho')  # [40, 20]
    means = []
    for path in paths:
        wav, _ = sf.read(path, dtype='float32')
        log_mel = torch.log(mel(torch.from_numpy(wav)) + 1e-6)  # [40, T]
        energy = log_mel.mean(0)  # [T]
        mfcc = log_mel[:, energy > energy.max() - 6].T @ dct  # [T', 20]
        means.append(mfcc[:, 1:].mean(0).numpy())
    return np.array(means)  # [U, 19]


@pytest.mark.slow  # generates the full demo corpus
def test_default_corpus_is_learnable_but_not_trivial(tmp_path_factory):
    started = time.perf_counter()
    paths = make_demo_corpus(str(tmp_path_factory.mktemp('demo_default')))
    print(f"\ndefault demo corpus generated in {time.perf_counter() - started:.1f} s")
    test = scan_voxceleb(paths.path_test)
    assert (len(scan_voxceleb(paths.path_train)), len(test)) == (800, 120)
    assert len(scan_librispeech(paths.path_libri)) == 100
    trials = read_trials(paths.path_trials)
    assert len(trials) == 1000 and int(trials.labels.sum()) == 500
    features = _mfcc_means([u.path for u in test])  # [U, 19]
    features = (features - features.mean(0)) / features.std(0)  # each coefficient standardised over the set
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    enroll, probe = trial_index(trials, [u.key for u in test])
    scores = np.sum(features[enroll] * features[probe], axis=1)  # cosine, [N]
    fpr, tpr, _ = roc_curve(trials.labels, scores)
    fnr = 1 - tpr
    k = np.argmin(np.abs(fnr - fpr))
    eer = 100 * (fpr[k] + fnr[k]) / 2
    print(f"non-neural scorer (standardised MFCC means, cosine) on the demo trials: EER {eer:.1f} %")
    assert 5.0 <= eer <= 35.0
