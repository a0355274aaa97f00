"""data/voxceleb.py on small trees written in the real VoxCeleb layouts: one or several roots, the official counts,
the on-disk index cache, .m4a refusal, speaker tables and held-out speakers."""
import os
import time

import numpy as np
import pytest

from data.index_cache import cache_path
from data.utterance_index import Utterance, UtteranceIndex
from data.voxceleb import class_counts, hold_out_speakers, recognise, scan_voxceleb, speaker_table
from tests.helpers_data import write_audio, write_vox_tree

LAYOUT = {'id10002': {'zZ9-aBcDeFg': [100, 120]},
          'id10001': {'1zcIwhmdeo4': [100, 110, 130], '_aB3dEf9hIj': [90]}}
VOX2_LAYOUT = {'id00012': {'21Uxsk56VDQ': [80, 90]}, 'id09272': {'u7VNkYraCw0': [70]}}


def _age(root) -> None:
    """Date every folder below `root` an hour back, as on a data set written long before the run."""
    old = time.time_ns() - 3600 * 10**9
    for folder, _, _ in os.walk(root):
        os.utime(folder, ns=(old, old))


def _same(a: UtteranceIndex, b: UtteranceIndex) -> bool:
    return list(a) == list(b) and np.array_equal(a.labels, b.labels) and list(a.speaker_ids) == list(b.speaker_ids)


def test_scan_finds_every_utterance_with_key_and_speaker(tmp_path, capsys):
    root = tmp_path / 'vox1_dev' / 'wav'
    files = write_vox_tree(str(root), LAYOUT)
    utts = scan_voxceleb(str(root))
    assert isinstance(utts, UtteranceIndex) and utts.keys() == sorted(files)
    assert utts[0] == Utterance(path=str(root / 'id10001' / '1zcIwhmdeo4' / '00001.wav'),
                                key='id10001/1zcIwhmdeo4/00001.wav', speaker='id10001')
    assert utts[-1].key == 'id10002/zZ9-aBcDeFg/00002.wav'
    assert all(u.path == files[u.key] and u.speaker == u.key.split('/')[0] for u in utts)
    assert [utts.path(i) for i in range(len(utts))] == [files[k] for k in sorted(files)]
    assert utts.speakers() == ['id10001', 'id10002'] and utts.labels.tolist() == [0, 0, 0, 0, 1, 1]
    assert 'VoxCeleb1 dev: found 2 speakers, 6 utterances (official: 1,211 / 148,642)' in capsys.readouterr().out
    with pytest.raises(IndexError, match='out of range'):
        utts[6]


def test_scan_accepts_flac_and_deeper_roots(tmp_path, capsys):
    write_vox_tree(str(tmp_path / 'test' / 'wav'), {'id10270': {'x6uYqmx31kE': [50, 60]}}, ext='.flac')
    write_vox_tree(str(tmp_path / 'test' / 'wav'), {'id10300': {'ize_eiCFEg0': [50]}}, first_id=5)
    (tmp_path / 'test' / 'wav' / 'README.txt').write_text('not audio')
    utts = scan_voxceleb(str(tmp_path / 'test'))
    assert utts.keys() == ['id10270/x6uYqmx31kE/00001.flac', 'id10270/x6uYqmx31kE/00002.flac',
                           'id10300/ize_eiCFEg0/00001.wav']
    assert utts.path(2) == str(tmp_path / 'test' / 'wav' / 'id10300' / 'ize_eiCFEg0' / '00001.wav')
    assert 'VoxCeleb1 test: found 2 speakers, 3 utterances (official: 40 / 4,874)' in capsys.readouterr().out


def test_counts_are_compared_with_the_recognised_corpus():
    assert recognise(['id10001', 'id10270'], 5) == ('VoxCeleb1 dev+test: found 2 speakers, 5 utterances '
                                                    '(official: 1,251 / 153,516)')
    assert recognise(['id00012', 'id09272'], 3) == ('VoxCeleb2: found 2 speakers, 3 utterances (official dev: '
                                                    '5,994 / 1,092,009; test: 118 / 36,237)')
    assert 'no official counts' in recognise(['id00012', 'id10001'], 2)
    assert 'no official counts' in recognise(['spk1'], 1)


def test_several_roots_join_sorted_by_key(tmp_path, capsys):
    vox1 = write_vox_tree(str(tmp_path / 'vox1' / 'dev' / 'wav'), LAYOUT)
    vox2 = write_vox_tree(str(tmp_path / 'vox2' / 'dev' / 'wav'), VOX2_LAYOUT, first_id=10)
    utts = scan_voxceleb([str(tmp_path / 'vox1' / 'dev' / 'wav'), str(tmp_path / 'vox2' / 'dev' / 'wav')])
    files = {**vox1, **vox2}
    assert utts.keys() == sorted(files) and [u.path for u in utts] == [files[k] for k in sorted(files)]
    assert speaker_table(utts) == {'id00012': 0, 'id09272': 1, 'id10001': 2, 'id10002': 3}
    out = capsys.readouterr().out
    assert 'VoxCeleb1 dev: found 2 speakers, 6 utterances (official: 1,211 / 148,642)' in out
    assert 'VoxCeleb2: found 2 speakers, 3 utterances (official dev: 5,994 / 1,092,009' in out
    assert '2 roots together: 4 speakers, 9 utterances' in out
    with pytest.raises(ValueError, match="share the key 'id10001/1zcIwhmdeo4/00001.wav'.*overlapping"):
        scan_voxceleb([str(tmp_path / 'vox1'), str(tmp_path / 'vox1' / 'dev' / 'wav')])
    with pytest.raises(ValueError, match='path_train: expected a folder or a non-empty list'):
        scan_voxceleb([])


def test_missing_empty_or_flat_directories_are_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere.*<root>/<speaker>/<video>/<utt>\.wav"):
        scan_voxceleb(str(tmp_path / 'nowhere'))
    os.makedirs(tmp_path / 'empty' / 'id10001')
    with pytest.raises(ValueError, match=r"no \.wav or \.flac files below .*empty.*<speaker>/<video>/<utt>\.wav"):
        scan_voxceleb(str(tmp_path / 'empty'))
    write_audio(str(tmp_path / 'flat' / 'id10001' / '00001.wav'), np.zeros(10, np.float32))
    with pytest.raises(ValueError, match=r"00001\.wav is only 2 level"):
        scan_voxceleb(str(tmp_path / 'flat'))


def test_m4a_files_are_refused_with_the_conversion_command(tmp_path):
    root = tmp_path / 'vox2' / 'dev' / 'aac'
    for key in ('id00012/21Uxsk56VDQ/00001.m4a', 'id00012/21Uxsk56VDQ/00002.M4A'):
        os.makedirs(root / os.path.dirname(key), exist_ok=True)
        (root / key).write_bytes(b'\x00\x00\x00\x18ftypM4A ')
    write_vox_tree(str(root), {'id00013': {'abcdefghijk': [10]}})
    with pytest.raises(ValueError, match=rf"2 \.m4a file\(s\) below '{root}'.*"
                                         rf"`python -m data\.prepare convert {root} <new wav root> --workers N`"):
        scan_voxceleb(str(root))


def test_duplicate_keys_are_refused(tmp_path):
    write_vox_tree(str(tmp_path / 'a'), {'id10001': {'1zcIwhmdeo4': [10]}})
    write_vox_tree(str(tmp_path / 'b'), {'id10001': {'1zcIwhmdeo4': [10]}})
    with pytest.raises(ValueError, match="share the key 'id10001/1zcIwhmdeo4/00001.wav'"):
        scan_voxceleb(str(tmp_path))


def test_the_index_cache_is_reused_until_a_folder_changes(tmp_path, capsys):
    root, cache = tmp_path / 'dev', str(tmp_path / 'cache')
    write_vox_tree(str(root), LAYOUT)
    fresh = scan_voxceleb(str(root), cache_dir=cache)
    assert '(listed, ' in capsys.readouterr().out and not os.path.exists(cache)  # folders just written: not cached
    _age(root)
    listed = scan_voxceleb(str(root), cache_dir=cache)
    assert '(listed, cached,' in capsys.readouterr().out
    assert os.listdir(cache) == [os.path.basename(cache_path(cache, str(root)))]  # no temporary file left
    cached = scan_voxceleb(str(root), cache_dir=cache)
    assert '(cached index,' in capsys.readouterr().out and _same(cached, listed) and _same(cached, fresh)
    assert cached.path(0) == str(root / 'id10001' / '1zcIwhmdeo4' / '00001.wav')

    added = write_audio(str(root / 'id10002' / 'zZ9-aBcDeFg' / '00003.wav'), np.zeros(10, np.float32))
    after_add = scan_voxceleb(str(root), cache_dir=cache)
    assert '(listed, ' in capsys.readouterr().out and len(after_add) == 7 and after_add.path(6) == added
    _age(root)
    scan_voxceleb(str(root), cache_dir=cache)
    os.unlink(added)
    after_remove = scan_voxceleb(str(root), cache_dir=cache)
    assert '(listed, ' in capsys.readouterr().out and _same(after_remove, listed)
    _age(root)
    scan_voxceleb(str(root), cache_dir=cache)
    os.rename(root / 'id10002' / 'zZ9-aBcDeFg', root / 'id10002' / 'renamed0000')
    assert scan_voxceleb(str(root), cache_dir=cache).key(5) == 'id10002/renamed0000/00002.wav'
    assert '(listed, ' in capsys.readouterr().out


def test_an_unreadable_cache_is_rescanned(tmp_path, capsys):
    root, cache = tmp_path / 'dev', str(tmp_path / 'cache')
    write_vox_tree(str(root), LAYOUT)
    _age(root)
    listed = scan_voxceleb(str(root), cache_dir=cache)
    with open(cache_path(cache, str(root)), 'r+b') as handle:
        handle.truncate(100)
    with pytest.warns(UserWarning, match='unreadable utterance-index cache'):
        again = scan_voxceleb(str(root), cache_dir=cache)
    assert _same(again, listed) and '(listed, cached,' in capsys.readouterr().out
    assert _same(scan_voxceleb(str(root), cache_dir=cache), listed) and '(cached index,' in capsys.readouterr().out


def test_speaker_table_and_class_counts():
    utts = UtteranceIndex.from_utterances([Utterance(f'/x/{k}', k, k.split('/')[0]) for k in
                                           ['id3/v/1.wav', 'id1/v/1.wav', 'id3/v/2.wav', 'id2/v/1.wav', 'id3/w/1.wav']])
    table = speaker_table(utts)
    assert table == {'id1': 0, 'id2': 1, 'id3': 2}
    np.testing.assert_array_equal(class_counts(utts, table), [1, 1, 3])
    np.testing.assert_array_equal(class_counts(utts, {'id0': 0, 'id1': 1, 'id2': 2, 'id3': 3}), [0, 1, 1, 3])
    with pytest.raises(ValueError, match=r"\['id3'\]"):
        class_counts(utts, {'id1': 0, 'id2': 1})


def test_hold_out_speakers_splits_whole_speakers():
    utts = UtteranceIndex.from_utterances([Utterance(f'/x/id{s}/v/{u}.wav', f'id{s}/v/{u}.wav', f'id{s}')
                                           for s in range(10) for u in range(3)])
    train, held = hold_out_speakers(utts, 3, np.random.default_rng(0))
    held_speakers = {u.speaker for u in held}
    assert len(held_speakers) == 3 and len(held) == 9 and len(train) == 21
    assert not held_speakers & {u.speaker for u in train}
    assert held_speakers == set(np.random.default_rng(0).choice(sorted({u.speaker for u in utts}), 3, replace=False))
    assert sorted(list(train) + list(held), key=lambda u: u.key) == sorted(utts, key=lambda u: u.key)
    assert speaker_table(train) == {s: i for i, s in enumerate(sorted({u.speaker for u in train}))}
    again = hold_out_speakers(utts, 3, np.random.default_rng(0))[1]
    assert list(again) == list(held)
    with pytest.raises(ValueError, match='cannot hold out 10 of 10 speakers'):
        hold_out_speakers(utts, 10, np.random.default_rng(0))
