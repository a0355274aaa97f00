"""data/utterance_index.py: the compact utterance list against the Utterance objects it stands for."""
import os

import numpy as np
import pytest

from data.utterance_index import Utterance, UtteranceIndex, concatenate


def _utts(speakers, per_speaker, root='/data'):
    return [Utterance(f'{root}/{s}/vid{u % 2}/{u:05d}.wav', f'{s}/vid{u % 2}/{u:05d}.wav', s)
            for s in speakers for u in range(per_speaker)]


def test_fields_match_the_utterances_it_was_built_from():
    utts = _utts(['id3', 'id1', 'id2'], 3) + [Utterance('/dätä/id1/vidé/00009.wav', 'id1/vidé/00009.wav', 'id1')]
    index = UtteranceIndex.from_utterances(utts)
    assert len(index) == 10 and list(index) == utts and [index[i] for i in range(-10, 0)] == utts
    assert [index.key(i) for i in range(10)] == index.keys() == [u.key for u in utts]
    assert index.path(9) == '/dätä/id1/vidé/00009.wav' and index.speaker(9) == 'id1'
    assert index.speakers() == ['id1', 'id2', 'id3'] and index.speaker_ids.tolist() == ['id1', 'id2', 'id3']
    np.testing.assert_array_equal(index.labels, [2, 2, 2, 0, 0, 0, 1, 1, 1, 0])
    np.testing.assert_array_equal(index.labels_in({'id1': 5, 'id2': 6, 'id3': 7}), [7, 7, 7, 5, 5, 5, 6, 6, 6, 5])
    with pytest.raises(ValueError, match=r"missing from the speaker table: \['id3'\] \(1 in all\)"):
        index.labels_in({'id1': 0, 'id2': 1})
    with pytest.raises(ValueError, match='do not follow from the path'):
        UtteranceIndex.from_utterances([Utterance('/x/id1/v/1.wav', 'id1/v/2.wav', 'id1')])


def test_subsets_share_the_path_bytes():
    utts = _utts(['id1', 'id2', 'id3'], 4)
    index = UtteranceIndex.from_utterances(utts)
    picked = index.subset(np.array([11, 0, 5]))
    assert list(picked) == [utts[11], utts[0], utts[5]] and picked.blob is index.blob
    masked = index.subset(index.labels == 1)
    assert list(masked) == utts[4:8] and masked.speakers() == ['id2']
    assert masked.labels_in({'id2': 0}).tolist() == [0, 0, 0, 0]  # speakers absent from a subset need no class
    assert len(index.subset(np.array([], dtype=np.int64))) == 0


def test_concatenation_orders_by_speaker_and_refuses_shared_keys():
    a = UtteranceIndex.from_relative('/vox2', [os.path.join('id00012', 'v', f'{u}.wav') for u in range(3)])
    b = UtteranceIndex.from_relative('/vox1', [os.path.join('id10001', 'w', f'{u}.wav') for u in range(2)])
    joined = concatenate([b, a])
    assert joined.keys() == sorted(a.keys() + b.keys()) and joined.roots == ('/vox1', '/vox2')
    assert [joined.path(i) for i in range(5)] == [a.path(i) for i in range(3)] + [b.path(i) for i in range(2)]
    same_speaker = UtteranceIndex.from_relative('/more', [os.path.join('id00012', 'x', '0.wav')])
    assert concatenate([a, same_speaker]).keys() == a.keys() + same_speaker.keys()
    clash = UtteranceIndex.from_relative('/copy', [os.path.join('id00012', 'v', '1.wav')])
    with pytest.raises(ValueError, match="share the key 'id00012/v/1.wav': /vox2/id00012/v/1.wav and "
                                         "/copy/id00012/v/1.wav"):
        concatenate([a, clash])
