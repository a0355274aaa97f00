"""data/trials.py: the real VoxCeleb1-O list, both naming conventions, key checks, held-out trials."""
import os

import numpy as np
import pytest

from data.trials import Trials, check_trial_keys, find_trial_lists, heldout_trials, read_trials, trial_index
from data.utterance_index import Utterance

# the real original VoxCeleb1-O list, shipped in the repository (bench/scoring.py scores it)
VERI_TEST = os.path.join(os.path.dirname(__file__), '..', 'data', 'lists', 'veri_test.txt')


def _write(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as handle:
        handle.write(''.join(f"{line}\n" for line in lines))
    return path


def test_real_voxceleb1_o_list():
    trials = read_trials(VERI_TEST)
    with open(VERI_TEST) as handle:
        rows = [line.split() for line in handle if line.strip()]
    assert len(trials) == len(rows) == 37720
    assert int(trials.labels.sum()) == sum(r[0] == '1' for r in rows) == 18860
    assert len(set(trials.enroll) | set(trials.test)) == 4715
    assert (trials.name, int(trials.labels[0]), trials.enroll[0], trials.test[0]) == \
        ('O', 1, 'id10270/x6uYqmx31kE/00001.wav', 'id10270/8jEAjG6SegY/00008.wav')
    assert trials.enroll[1] == rows[1][1] and trials.test[-1] == rows[-1][2]


def test_malformed_lines_name_file_and_line(tmp_path):
    path = _write(str(tmp_path / 'bad.txt'), ['1 a/b/c.wav a/b/d.wav', '', '0 a/b/c.wav', '1 x y'])
    with pytest.raises(ValueError, match=r"bad\.txt, line 3: expected 'label enroll_key test_key'"):
        read_trials(path)
    path = _write(str(tmp_path / 'label.txt'), ['1 a/b/c.wav a/b/d.wav', 'yes a/b/c.wav a/b/d.wav'])
    with pytest.raises(ValueError, match=r"label\.txt, line 2"):
        read_trials(path)
    with pytest.raises(FileNotFoundError, match='absent.txt'):
        read_trials(str(tmp_path / 'absent.txt'))


@pytest.mark.parametrize('names', [('veri_test2.txt', 'list_test_all2.txt', 'list_test_hard2.txt'),
                                   ('trials.txt', 'trials_E.txt', 'trials_H.txt')])
def test_find_lists_in_a_directory_under_both_conventions(tmp_path, names):
    for name, label in zip(names, '101'):
        _write(str(tmp_path / name), [f'{label} id1/v/1.wav id2/v/1.wav'])
    found = find_trial_lists(str(tmp_path), ['O', 'E', 'H'])
    assert found == {w: str(tmp_path / n) for w, n in zip('OEH', names)}
    assert [read_trials(found[w], w).labels.tolist() for w in 'OEH'] == [[1], [0], [1]]


def test_find_lists_file_and_errors(tmp_path):
    single = _write(str(tmp_path / 'my_list.txt'), ['1 id1/v/1.wav id1/v/2.wav'])
    assert find_trial_lists(single, ['O']) == {'O': single}
    with pytest.raises(ValueError, match='single file'):
        find_trial_lists(single, ['O', 'E'])
    _write(str(tmp_path / 'lists' / 'veri_test.txt'), ['1 id1/v/1.wav id1/v/2.wav'])
    assert find_trial_lists(str(tmp_path / 'lists'), ['O']) == {'O': str(tmp_path / 'lists' / 'veri_test.txt')}
    with pytest.raises(FileNotFoundError, match=r"'H' not found in .*lists.*list_test_hard2\.txt, trials_H\.txt"):
        find_trial_lists(str(tmp_path / 'lists'), ['O', 'H'])
    with pytest.raises(FileNotFoundError, match='nothing_here'):
        find_trial_lists(str(tmp_path / 'nothing_here'), ['O'])
    with pytest.raises(ValueError, match='unknown trial list'):
        find_trial_lists(str(tmp_path / 'lists'), ['X'])


def test_missing_keys_are_named_and_counted():
    trials = Trials('O', np.array([1, 0, 1]), ['a/b/1.wav', 'a/b/1.wav', 'c/d/9.wav'],
                    ['a/b/2.wav', 'x/y/3.wav', 'a/b/2.wav'])
    check_trial_keys(trials, {'a/b/1.wav', 'a/b/2.wav', 'x/y/3.wav', 'c/d/9.wav'})
    with pytest.raises(ValueError, match=r"'O': 1 key\(s\) not found .*\['c/d/9\.wav'\]"):
        check_trial_keys(trials, {'a/b/1.wav', 'a/b/2.wav', 'x/y/3.wav'})
    many = Trials('E', np.ones(15, np.int64), [f'e/v/{i}.wav' for i in range(15)], ['t/v/0.wav'] * 15)
    with pytest.raises(ValueError) as caught:
        check_trial_keys(many, {'t/v/0.wav'})
    message = str(caught.value)
    assert "'E': 15 key(s)" in message and 'e/v/9.wav' in message and 'e/v/10.wav' not in message


def test_trial_index_maps_keys_to_rows():
    keys = ['k/v/3.wav', 'k/v/1.wav', 'k/v/2.wav', 'k/v/0.wav']
    rng = np.random.default_rng(0)
    enroll = [keys[i] for i in rng.integers(0, 4, 50)]
    test = [keys[i] for i in rng.integers(0, 4, 50)]
    e, t = trial_index(Trials('O', np.zeros(50, np.int64), enroll, test), keys)
    assert e.tolist() == [keys.index(k) for k in enroll] and t.tolist() == [keys.index(k) for k in test]
    with pytest.raises(ValueError, match='other/v/1.wav'):
        trial_index(Trials('O', np.zeros(1, np.int64), ['other/v/1.wav'], ['k/v/1.wav']), keys)


def test_heldout_trials_are_balanced_distinct_and_correct():
    utts = [Utterance(f'/d/id{s}/v/{u}.wav', f'id{s}/v/{u}.wav', f'id{s}') for s in range(6) for u in range(s + 1)]
    trials = heldout_trials(utts, 41, np.random.default_rng(3))
    speaker = {u.key: u.speaker for u in utts}
    assert len(trials) == 41 and int(trials.labels.sum()) == 20
    assert all(label == (speaker[e] == speaker[t]) for label, e, t in zip(trials.labels, trials.enroll, trials.test))
    pairs = {frozenset(p) for p in zip(trials.enroll, trials.test)}
    assert len(pairs) == 41 and all(len(p) == 2 for p in pairs)
    assert 0 < sum(e > t for e, t in zip(trials.enroll, trials.test)) < 41  # roles not ordered by key
    again = heldout_trials(utts, 41, np.random.default_rng(3))
    assert again.enroll == trials.enroll and again.test == trials.test
    possible_target = sum(n * (n - 1) // 2 for n in range(1, 7))  # 35
    assert heldout_trials(utts, 2 * possible_target, np.random.default_rng(0)).labels.sum() == possible_target
    with pytest.raises(ValueError, match='35 target'):
        heldout_trials(utts, 2 * possible_target + 2, np.random.default_rng(0))
