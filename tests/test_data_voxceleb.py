"""data/voxceleb.py on small trees written in the real VoxCeleb1 layout."""
import os

import numpy as np
import pytest

from data.voxceleb import Utterance, class_counts, hold_out_speakers, scan_voxceleb, speaker_table
from tests.helpers_data import write_audio, write_vox_tree

LAYOUT = {'id10002': {'zZ9-aBcDeFg': [100, 120]},
          'id10001': {'1zcIwhmdeo4': [100, 110, 130], '_aB3dEf9hIj': [90]}}


def test_scan_finds_every_utterance_with_key_and_speaker(tmp_path, capsys):
    root = tmp_path / 'vox1_dev' / 'wav'
    files = write_vox_tree(str(root), LAYOUT)
    utts = scan_voxceleb(str(root), 'dev')
    assert [u.key for u in utts] == sorted(files)
    assert utts[0] == Utterance(path=str(root / 'id10001' / '1zcIwhmdeo4' / '00001.wav'),
                                key='id10001/1zcIwhmdeo4/00001.wav', speaker='id10001')
    assert all(u.path == files[u.key] and u.speaker == u.key.split('/')[0] for u in utts)
    assert 'VoxCeleb1 dev: found 2 speakers, 6 utterances (official: 1,211 / 148,642)' in capsys.readouterr().out


def test_scan_accepts_flac_and_deeper_roots(tmp_path, capsys):
    write_vox_tree(str(tmp_path / 'test' / 'wav'), {'id10270': {'x6uYqmx31kE': [50, 60]}}, ext='.flac')
    write_vox_tree(str(tmp_path / 'test' / 'wav'), {'id10300': {'ize_eiCFEg0': [50]}}, first_id=5)
    (tmp_path / 'test' / 'wav' / 'README.txt').write_text('not audio')
    utts = scan_voxceleb(str(tmp_path / 'test'), 'test')
    assert [u.key for u in utts] == ['id10270/x6uYqmx31kE/00001.flac', 'id10270/x6uYqmx31kE/00002.flac',
                                     'id10300/ize_eiCFEg0/00001.wav']
    assert 'VoxCeleb1 test: found 2 speakers, 3 utterances (official: 40 / 4,874)' in capsys.readouterr().out


def test_missing_empty_or_flat_directories_are_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere.*<root>/<speaker>/<video>/<utt>\.wav"):
        scan_voxceleb(str(tmp_path / 'nowhere'), 'dev')
    os.makedirs(tmp_path / 'empty' / 'id10001')
    with pytest.raises(ValueError, match=r"no \.wav or \.flac files below .*empty.*<speaker>/<video>/<utt>\.wav"):
        scan_voxceleb(str(tmp_path / 'empty'), 'dev')
    write_audio(str(tmp_path / 'flat' / 'id10001' / '00001.wav'), np.zeros(10, np.float32))
    with pytest.raises(ValueError, match=r"00001\.wav is only 2 level"):
        scan_voxceleb(str(tmp_path / 'flat'), 'dev')
    with pytest.raises(ValueError, match="split must be one of"):
        scan_voxceleb(str(tmp_path / 'flat'), 'train')


def test_duplicate_keys_are_refused(tmp_path):
    write_vox_tree(str(tmp_path / 'a'), {'id10001': {'1zcIwhmdeo4': [10]}})
    write_vox_tree(str(tmp_path / 'b'), {'id10001': {'1zcIwhmdeo4': [10]}})
    with pytest.raises(ValueError, match="share the key 'id10001/1zcIwhmdeo4/00001.wav'"):
        scan_voxceleb(str(tmp_path), 'dev')


def test_speaker_table_and_class_counts():
    utts = [Utterance(f'/x/{k}', k, k.split('/')[0]) for k in
            ['id3/v/1.wav', 'id1/v/1.wav', 'id3/v/2.wav', 'id2/v/1.wav', 'id3/w/1.wav']]
    table = speaker_table(utts)
    assert table == {'id1': 0, 'id2': 1, 'id3': 2}
    np.testing.assert_array_equal(class_counts(utts, table), [1, 1, 3])
    with pytest.raises(ValueError, match=r"\['id3'\]"):
        class_counts(utts, {'id1': 0, 'id2': 1})


def test_hold_out_speakers_splits_whole_speakers():
    utts = [Utterance(f'/x/id{s}/v/{u}.wav', f'id{s}/v/{u}.wav', f'id{s}') for s in range(10) for u in range(3)]
    train, held = hold_out_speakers(utts, 3, np.random.default_rng(0))
    held_speakers = {u.speaker for u in held}
    assert len(held_speakers) == 3 and len(held) == 9 and len(train) == 21
    assert not held_speakers & {u.speaker for u in train}
    assert sorted(train + held, key=lambda u: u.key) == sorted(utts, key=lambda u: u.key)
    again = hold_out_speakers(utts, 3, np.random.default_rng(0))[1]
    assert again == held
    with pytest.raises(ValueError, match='cannot hold out 10 of 10 speakers'):
        hold_out_speakers(utts, 10, np.random.default_rng(0))
