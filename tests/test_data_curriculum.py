"""data/curriculum.py: schedules, the VoxCeleb/LibriSpeech draw, crops of the right files, determinism."""
import math
import os

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from data.audio import AudioError
from data.curriculum import SCHEDULES, CurriculumTrainSet, collate_train, kd_probability
from data.utterance_index import Utterance, UtteranceIndex
from data.voxceleb import speaker_table
from tests.helpers_data import coded_corpus, decode, expected_crop
from utils.min_audio import MIN_AUDIO_SAMPLES

CROP = 1000  # longer than some files (wrap-padded), shorter than others


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    """6 speakers x 3 utterances of coded audio (some shorter than the crop) and 5 LibriSpeech-style files."""
    return coded_corpus(str(tmp_path_factory.mktemp('curriculum')), speakers=6, libri_files=5, low=MIN_AUDIO_SAMPLES,
                        high=1500)


def _fake_utts(n: int) -> UtteranceIndex:
    return UtteranceIndex.from_utterances([Utterance(f'/nowhere/id{i % 7}/v/{i}.wav', f'id{i % 7}/v/{i}.wav',
                                                     f'id{i % 7}') for i in range(n)])


def test_schedules_by_name():
    assert [SCHEDULES['linear'](e, 10, 0.5) for e in (1, 5, 10)] == [0.1, 0.5, 1.0]
    assert [SCHEDULES['constant'](e, 10, 0.3) for e in (1, 10)] == [0.3, 0.3]
    assert [SCHEDULES['step'](e, 10, 0.5) for e in range(1, 11)] == [0.0] * 5 + [1.0] * 5
    assert SCHEDULES['cosine'](5, 10, 0.5) == pytest.approx(0.5)
    assert SCHEDULES['cosine'](2, 10, 0.5) == pytest.approx((1 - math.cos(math.pi * 0.2)) / 2)
    assert SCHEDULES['cosine'](10, 10, 0.5) == pytest.approx(1.0)
    assert SCHEDULES['none'](7, 10, 0.5) == 0.0
    with pytest.raises(AssertionError):  # epochs are numbered from 1
        kd_probability('linear', 0, 10, 0.5)


@pytest.mark.parametrize('schedule', ['linear', 'cosine'])
def test_voxceleb_fraction_follows_the_schedule(schedule):
    n, total = 3000, 10
    data = CurriculumTrainSet(_fake_utts(n), speaker_table(_fake_utts(7)), [f'/nowhere/l{k}.flac' for k in range(50)],
                              CROP, schedule=schedule, total_epochs=total, seed=5)
    for epoch in (1, 3, 6, 9, 10):
        data.set_epoch(epoch)
        p = SCHEDULES[schedule](epoch, total, 0.5)
        fraction = np.mean([data.kd_source(i)[0] for i in range(n)])
        assert abs(fraction - p) <= 4 * math.sqrt(p * (1 - p) / n) + 1e-12, (epoch, fraction, p)
        sources = [data.kd_source(i) for i in range(0, n, 97)]
        assert all(path.startswith('/nowhere/id') == from_vox for from_vox, path in sources)


def test_librispeech_is_cycled_in_a_per_epoch_permutation():
    kd = [f'/nowhere/l{k}.flac' for k in range(40)]
    data = CurriculumTrainSet(_fake_utts(100), speaker_table(_fake_utts(7)), kd, CROP, schedule='none', total_epochs=3,
                              seed=11)
    orders = []
    for epoch in (1, 2):
        data.set_epoch(epoch)
        drawn = [data.kd_source(i)[1] for i in range(100)]
        assert sorted(drawn[:40]) == sorted(kd) and drawn[40:80] == drawn[:40] and drawn[80:] == drawn[:20]
        permutation = np.random.default_rng([11, epoch]).permutation(40)
        assert drawn[:40] == [kd[k] for k in permutation]
        orders.append(drawn[:40])
    assert orders[0] != orders[1]


def test_items_are_crops_of_the_right_files(corpus):
    utts, table, libri = corpus
    data = CurriculumTrainSet(utts, table, libri, CROP, schedule='constant', total_epochs=4, seed=1, p_const=0.5)
    seen_sources = set()
    for epoch in (1, 2):
        data.set_epoch(epoch)
        for i in range(len(data)):
            wav_kd, wav_ft, label, from_vox, skipped = data[i]
            assert skipped == ()
            assert wav_kd.shape == wav_ft.shape == (CROP,) and wav_kd.dtype == wav_ft.dtype == np.float32
            assert label == table[utts[i].speaker]
            np.testing.assert_array_equal(wav_ft, expected_crop(utts[i].path, wav_ft))
            assert set(decode(wav_ft)[0].tolist()) == {i}  # write_vox_tree numbers files in key order
            source_is_vox, kd_path = data.kd_source(i)
            assert source_is_vox == from_vox == (kd_path in {u.path for u in utts})
            np.testing.assert_array_equal(wav_kd, expected_crop(kd_path, wav_kd))
            seen_sources.add(from_vox)
    assert seen_sources == {True, False}


def test_same_seed_epoch_rank_repeat_and_others_differ(corpus):
    utts, table, libri = corpus

    def items(seed=1, epoch=2, rank=0):
        data = CurriculumTrainSet(utts, table, libri, CROP, schedule='linear', total_epochs=4, seed=seed, rank=rank)
        data.set_epoch(epoch)
        return [data[i] for i in range(len(data))]

    def same(a, b):
        return all(np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) and x[2:] == y[2:] for x, y in zip(a, b))

    reference = items()
    assert same(reference, items())
    for other in (items(rank=1), items(epoch=3), items(seed=2)):
        assert not same(reference, other)
        differing = sum(not np.array_equal(x[1], y[1]) for x, y in zip(reference, other))
        assert differing >= len(reference) // 3


def test_dataloader_workers_give_the_same_batches(corpus):
    utts, table, libri = corpus
    data = CurriculumTrainSet(utts, table, libri, CROP, schedule='linear', total_epochs=4, seed=3)
    data.set_epoch(2)
    serial = list(DataLoader(data, batch_size=4, collate_fn=collate_train))
    parallel = list(DataLoader(data, batch_size=4, collate_fn=collate_train, num_workers=2))
    assert len(serial) == len(parallel) == math.ceil(len(utts) / 4)
    for a, b in zip(serial, parallel):
        fields = ('x_kd', 'x_ft', 'y', 'from_vox')
        assert all(torch.equal(getattr(a, f), getattr(b, f)) for f in fields) and a.skipped == b.skipped == []
    first = serial[0]
    x_kd, x_ft, y, from_vox, skipped = first.x_kd, first.x_ft, first.y, first.from_vox, first.skipped
    assert (x_kd.dtype, x_ft.dtype, y.dtype, from_vox.dtype) == (torch.float32, torch.float32, torch.int64,
                                                                 torch.bool)
    assert x_kd.shape == x_ft.shape == (4, CROP)
    for row in range(4):
        wav_kd, wav_ft, label, vox, _ = data[row]
        assert torch.equal(x_kd[row], torch.from_numpy(wav_kd)) and torch.equal(x_ft[row], torch.from_numpy(wav_ft))
        assert int(y[row]) == label and bool(from_vox[row]) == vox


def test_without_librispeech_only_all_voxceleb_schedules_are_allowed(corpus):
    utts, table, _ = corpus
    with pytest.raises(ValueError, match='path_libri'):
        CurriculumTrainSet(utts, table, [], CROP, schedule='linear', total_epochs=4, seed=1)
    data = CurriculumTrainSet(utts, table, [], CROP, schedule='constant', total_epochs=4, seed=1, p_const=1.0)
    assert all(data[i][3] for i in range(len(data)))
    with pytest.raises(AssertionError):
        data.set_epoch(5)


def test_unreadable_training_files(corpus, tmp_path):
    utts, table, libri = corpus
    broken = str(tmp_path / 'id10000' / 'brokenvideo' / '00001.wav')
    os.makedirs(os.path.dirname(broken))
    with open(broken, 'wb') as handle:
        handle.write(b'not a wav file at all' * 20)
    with_broken = UtteranceIndex.from_utterances([Utterance(broken, 'id10000/brokenvideo/00001.wav', 'id10000')] +
                                                 list(utts))
    strict = CurriculumTrainSet(with_broken, table, libri, CROP, schedule='none', total_epochs=4, seed=1)
    with pytest.raises(AudioError, match='brokenvideo'):
        strict[0]
    tolerant = CurriculumTrainSet(with_broken, table, libri, CROP, schedule='none', total_epochs=4, seed=1,
                                  max_bad_fraction=0.2)
    with pytest.warns(UserWarning, match='brokenvideo'):
        _, wav_ft, label, _, skipped = tolerant[0]
    assert skipped == (broken,)
    assert tolerant[1][4] == ()
    replacement = with_broken[int(decode(wav_ft[:1])[0][0]) + 1]  # coded file j is utts[j]
    assert label == table[replacement.speaker]
    np.testing.assert_array_equal(wav_ft, expected_crop(replacement.path, wav_ft))
    too_strict = CurriculumTrainSet(with_broken, table, libri, CROP, schedule='none', total_epochs=4, seed=1,
                                    max_bad_fraction=0.01)
    with pytest.raises(AudioError, match='max_bad_audio_fraction'):
        too_strict[0]
