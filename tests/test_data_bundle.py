"""data/bundle.py: training on VoxCeleb2 and scoring the VoxCeleb1 O/E/H lists, trial lists that score training
speakers refused before training, validation on held-out speakers or on the O list."""
import os

import numpy as np
import pytest

from data.bundle import build_data
from data.curriculum import CurriculumTrainSet
from data.voxceleb import class_counts
from tests.helpers_data import write_vox_tree

# lengths at least the 720 samples the model needs (utils/min_audio.py): trial files are checked for it
VOX2 = {f'id0{n:04d}': {'21Uxsk56VDQ': [1300, 1310], 'u7VNkYraCw0': [1320]} for n in (12, 15, 20, 31)}
VOX1_DEV = {'id10001': {'1zcIwhmdeo4': [1300, 1310]}, 'id10002': {'zZ9-aBcDeFg': [1330, 1340]}}
VOX1_TEST = {'id10270': {'x6uYqmx31kE': [1300, 1305]}, 'id10271': {'8jEAjG6SegY': [1310, 1315]}}
O_TRIALS = [(1, 'id10270/x6uYqmx31kE/00001.wav', 'id10270/x6uYqmx31kE/00002.wav'),
            (0, 'id10270/x6uYqmx31kE/00001.wav', 'id10271/8jEAjG6SegY/00001.wav')]
E_TRIALS = [(1, 'id10001/1zcIwhmdeo4/00001.wav', 'id10001/1zcIwhmdeo4/00002.wav'),
            (0, 'id10002/zZ9-aBcDeFg/00001.wav', 'id10271/8jEAjG6SegY/00002.wav')]
H_TRIALS = [(0, 'id10001/1zcIwhmdeo4/00002.wav', 'id10002/zZ9-aBcDeFg/00002.wav')]


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    """VoxCeleb2 dev (4 speakers), VoxCeleb1 dev (2) and test (2) as .wav trees, and the cleaned O/E/H lists."""
    root = tmp_path_factory.mktemp('bundle')
    write_vox_tree(str(root / 'vox2' / 'dev' / 'wav'), VOX2)
    write_vox_tree(str(root / 'vox1' / 'dev' / 'wav'), VOX1_DEV, first_id=20)
    write_vox_tree(str(root / 'vox1' / 'test' / 'wav'), VOX1_TEST, first_id=30)
    os.makedirs(root / 'lists')
    for name, trials in (('veri_test2.txt', O_TRIALS), ('list_test_all2.txt', E_TRIALS),
                         ('list_test_hard2.txt', H_TRIALS)):
        (root / 'lists' / name).write_text(''.join(f'{label} {a} {b}\n' for label, a, b in trials))
    return root


def _args(root, **extra) -> dict:
    args = dict(path_train=str(root / 'vox2' / 'dev' / 'wav'),
                path_test=[str(root / 'vox1' / 'dev' / 'wav'), str(root / 'vox1' / 'test' / 'wav')],
                path_cache='', path_trials=str(root / 'lists'), trials=['O', 'E', 'H'], path_libri='',
                validation='test', val_speakers=2, val_trials=6, seg_size=200, num_seg=2, rand_seed=1,
                aug_prob=0.0, path_musan='', path_rir='')
    args.update(extra)
    return args


def test_train_on_voxceleb2_and_score_o_e_h_on_voxceleb1(corpus):
    data = build_data(_args(corpus))
    assert sorted(data.speakers) == sorted(VOX2) and len(data.train_utts) == 12
    assert [t.name for t in data.test.trials] == ['O', 'E', 'H']
    used = sorted({k for trials in (O_TRIALS, E_TRIALS, H_TRIALS) for _, a, b in trials for k in (a, b)})
    assert sorted(data.test.keys) == used and data.test.keys == data.test.eval_set.keys
    assert [t.name for t in data.validation.trials] == ['O']  # epochs are selected on the O list only
    assert sorted(data.validation.keys) == sorted({k for _, a, b in O_TRIALS for k in (a, b)})
    assert data.validation.keys == data.validation.eval_set.keys
    wav, _, _ = data.test.eval_set[data.test.keys.index('id10001/1zcIwhmdeo4/00002.wav')]
    assert wav.shape == (1310,)  # the E list's dev utterance is read from the VoxCeleb1 dev root
    # the two calls trainer/build.py makes
    np.testing.assert_array_equal(class_counts(data.train_utts, data.speakers), [3, 3, 3, 3])
    train_set = CurriculumTrainSet(data.train_utts, data.speakers, data.kd_paths, 100, schedule='constant',
                                   total_epochs=2, seed=1, rank=0, p_const=1.0, max_bad_fraction=0.0)
    assert [train_set[i][2] for i in range(0, 12, 3)] == [0, 1, 2, 3]


def test_lists_that_score_training_speakers_are_refused(corpus):
    vox1_dev = str(corpus / 'vox1' / 'dev' / 'wav')
    with pytest.raises(ValueError, match=r"trial list 'E' \(.*list_test_all2\.txt\) scores 2 speaker\(s\) of the "
                                         r"training set, e\.g\. id10001, id10002"):
        build_data(_args(corpus, path_train=vox1_dev, path_test=str(corpus / 'vox1' / 'test' / 'wav')))
    with pytest.raises(ValueError, match=r"trial list 'H' .* scores 2 speaker\(s\)"):
        build_data(_args(corpus, path_train=[vox1_dev, str(corpus / 'vox2' / 'dev' / 'wav')], trials=['O', 'H']))
    with pytest.raises(ValueError, match=r"trial list 'O' .* scores 2 speaker\(s\) of the training set, e\.g\. "
                                         r"id10270, id10271"):
        build_data(_args(corpus, path_train=[str(corpus / 'vox1' / 'test' / 'wav')], trials=['O']))
    data = build_data(_args(corpus, path_train=vox1_dev, path_test=str(corpus / 'vox1' / 'test' / 'wav'),
                            trials=['O']))
    assert sorted(data.speakers) == ['id10001', 'id10002'] and data.validation.eval_set is data.test.eval_set


def test_e_list_keys_missing_from_path_test_name_the_fix(corpus):
    with pytest.raises(ValueError, match=r"trial list 'E': 3 key\(s\) not found among the 4 test utterances.*"
                                         r"give path_test both roots"):
        build_data(_args(corpus, path_test=str(corpus / 'vox1' / 'test' / 'wav')))


def test_heldout_validation_holds_out_training_speakers(corpus):
    data = build_data(_args(corpus, validation='heldout'))
    held = {k.split('/')[0] for k in data.validation.keys}
    assert len(held) == 2 and held <= set(VOX2) and not held & set(data.speakers)
    assert len(data.train_utts) == 6 and len(data.speakers) == 2
    trials = data.validation.trials[0]
    assert trials.name == 'heldout' and len(trials) == 6 and int(trials.labels.sum()) == 3
    assert [t.name for t in data.test.trials] == ['O', 'E', 'H']
