"""Verification trial lists: reading the VoxCeleb1 O/E/H lists, checking their keys, drawing held-out trials."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from data.utterance_index import Utterance

# Accepted file names per list, preferred first (cleaned lists, Kaldi-style names, original uncleaned lists).
TRIAL_FILES = {
    'O': ('veri_test2.txt', 'trials.txt', 'veri_test.txt'),
    'E': ('list_test_all2.txt', 'trials_E.txt', 'list_test_all.txt'),
    'H': ('list_test_hard2.txt', 'trials_H.txt', 'list_test_hard.txt'),
}


@dataclass
class Trials:
    """A trial list: label 1 (same speaker) or 0 per (enroll key, test key) pair."""
    name: str
    labels: np.ndarray  # [N] int64, 0/1
    enroll: list[str]
    test: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def read_trials(path: str, name: str = 'O') -> Trials:
    """Parse lines `label enroll test`; a malformed line stops with the file and line number."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"trial list {name!r} not found: {path}")
    labels, enroll, test = [], [], []
    with open(path, encoding='utf-8') as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 3 or fields[0] not in ('0', '1'):
                raise ValueError(f"{path}, line {number}: expected 'label enroll_key test_key' with label 0 or 1, "
                                 f"got {line.rstrip()!r}")
            labels.append(int(fields[0]))
            enroll.append(fields[1])
            test.append(fields[2])
    if not labels:
        raise ValueError(f"trial list {path} holds no trials; expected lines 'label enroll_key test_key'")
    return Trials(name=name, labels=np.array(labels, dtype=np.int64), enroll=enroll, test=test)


def find_trial_lists(path_trials: str, which: list[str]) -> dict[str, str]:
    """Paths of the requested lists ('O', 'E', 'H'): `path_trials` is the O list itself or a directory of lists."""
    unknown = [w for w in which if w not in TRIAL_FILES]
    if unknown:
        raise ValueError(f"unknown trial list(s) {unknown}; choose among {sorted(TRIAL_FILES)}")
    if os.path.isfile(path_trials):
        if any(w != 'O' for w in which):
            raise ValueError(f"path_trials={path_trials!r} is a single file (used as list 'O'); lists {which} "
                             f"need a directory holding {TRIAL_FILES}")
        return {'O': path_trials}
    if not os.path.isdir(path_trials):
        raise FileNotFoundError(f"path_trials not found: {path_trials!r}; give a trial list file or a directory")
    found = {}
    for w in which:
        names = [n for n in TRIAL_FILES[w] if os.path.isfile(os.path.join(path_trials, n))]
        if not names:
            raise FileNotFoundError(f"trial list {w!r} not found in {path_trials!r}; expected one of "
                                    f"{', '.join(TRIAL_FILES[w])}")
        found[w] = os.path.join(path_trials, names[0])
    return found


def check_trial_keys(trials: Trials, available: set[str], hint: str = '') -> None:
    """Stop before training when a trial key is not among the `available` utterance keys (`hint` says where
    they should come from)."""
    missing = [k for k in dict.fromkeys(trials.enroll + trials.test) if k not in available]
    if missing:
        raise ValueError(f"trial list {trials.name!r}: {len(missing)} key(s) not found among the {len(available)} "
                         f"test utterances, first {min(10, len(missing))}: {missing[:10]}{hint}")


def trial_speakers(trials: Trials) -> set[str]:
    """The speakers a trial list scores: the first component of every key (<speaker>/<video>/<utt>)."""
    return {k.split('/', 1)[0] for k in dict.fromkeys(trials.enroll + trials.test)}


def refuse_training_speakers(trials: Trials, training_speakers: Iterable[str], source: str = '') -> None:
    """Stop before training when a trial list scores speakers of the training set: an EER on speakers the model
    was trained to classify says nothing about unseen speakers (the E and H lists draw on all of VoxCeleb1)."""
    shared = sorted(trial_speakers(trials) & set(training_speakers))
    if shared:
        where = f" ({source})" if source else ''
        raise ValueError(f"trial list {trials.name!r}{where} scores {len(shared):,} speaker(s) of the training set, "
                         f"e.g. {', '.join(shared[:5])}: evaluate on speakers never trained on (the E and H lists "
                         f"cover all of VoxCeleb1, dev included: train on VoxCeleb2 to use them, or score 'O' only)")


def trial_index(trials: Trials, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the enroll and test utterances of every trial in an embedding matrix ordered like `keys`."""
    row = {k: i for i, k in enumerate(keys)}
    check_trial_keys(trials, row.keys())
    enroll = np.fromiter((row[k] for k in trials.enroll), dtype=np.int64, count=len(trials))  # [N]
    test = np.fromiter((row[k] for k in trials.test), dtype=np.int64, count=len(trials))  # [N]
    return enroll, test


def _distinct_pairs(draw, count: int, num_utts: int, rng: np.random.Generator) -> np.ndarray:
    """`count` distinct unordered pairs from repeated calls draw(rng, size) -> (a [size], b [size])."""
    chosen: dict[int, None] = {}
    while len(chosen) < count:
        a, b = draw(rng, 2 * count)  # [2c], [2c]
        codes = np.minimum(a, b) * num_utts + np.maximum(a, b)  # [2c] one integer per unordered pair
        for code in codes.tolist():
            chosen.setdefault(code, None)
            if len(chosen) == count:
                break
    codes = np.array(list(chosen), dtype=np.int64)  # [count]
    return np.stack([codes // num_utts, codes % num_utts], axis=1)  # [count, 2]


def heldout_trials(utts: Sequence[Utterance], num_trials: int, rng: np.random.Generator) -> Trials:
    """`num_trials` distinct trials among `utts`, half same-speaker and half different-speaker, shuffled."""
    if num_trials <= 0:
        raise ValueError(f"num_trials must be positive, got {num_trials}")
    order = sorted(range(len(utts)), key=lambda i: utts[i].speaker)
    speakers = np.array([utts[i].speaker for i in order])  # [U] sorted
    _, first, size = np.unique(speakers, return_index=True, return_counts=True)  # [S], [S]
    spk_of = np.repeat(np.arange(len(size)), size)  # [U] speaker index of each sorted position
    num_target = num_trials // 2
    possible_target = int((size * (size - 1) // 2).sum())
    possible_nontarget = len(utts) * (len(utts) - 1) // 2 - possible_target
    if num_target > possible_target or num_trials - num_target > possible_nontarget:
        raise ValueError(f"cannot draw {num_trials} distinct trials (half target) from {len(utts)} utterances of "
                         f"{len(size)} speakers: {possible_target} target / {possible_nontarget} non-target pairs "
                         f"exist")
    eligible = np.flatnonzero(size[spk_of] >= 2)  # [E] positions whose speaker has a partner utterance

    def draw_target(gen: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        a = gen.choice(eligible, size=n)  # [n]
        s = spk_of[a]  # [n]
        shift = 1 + gen.integers(0, size[s] - 1)  # [n] in 1..size-1, never the utterance itself
        return a, first[s] + (a - first[s] + shift) % size[s]

    def draw_nontarget(gen: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        a, b = gen.integers(0, len(utts), size=(2, 4 * n))  # [4n], [4n]
        keep = spk_of[a] != spk_of[b]  # [4n]
        return a[keep][:n], b[keep][:n]

    pairs = np.concatenate([_distinct_pairs(draw_target, num_target, len(utts), rng),
                            _distinct_pairs(draw_nontarget, num_trials - num_target, len(utts), rng)])  # [N, 2]
    labels = np.concatenate([np.ones(num_target, np.int64), np.zeros(num_trials - num_target, np.int64)])  # [N]
    perm = rng.permutation(num_trials)  # [N]
    pairs, labels = pairs[perm], labels[perm]
    flip = rng.random(num_trials) < 0.5  # [N] random enroll/test roles (pairs are stored low index first)
    pairs[flip] = pairs[flip, ::-1]
    keys = [utts[i].key for i in order]
    return Trials(name='heldout', labels=labels, enroll=[keys[i] for i in pairs[:, 0]],
                  test=[keys[i] for i in pairs[:, 1]])
