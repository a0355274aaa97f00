"""data/librispeech.py on small trees written in the real LibriSpeech layout."""
import os
import warnings

import numpy as np
import pytest

from data.librispeech import scan_librispeech
from tests.helpers_data import write_audio


def _write_chapter(root, speaker: int, chapter: int, utts: int, ext: str = '.flac', transcript: bool = True):
    folder = os.path.join(root, str(speaker), str(chapter))
    paths = [write_audio(os.path.join(folder, f"{speaker}-{chapter}-{u:04d}{ext}"),
                         np.full(200, 0.01 * (u + 1), np.float32), subtype='PCM_16') for u in range(utts)]
    if transcript:
        with open(os.path.join(folder, f"{speaker}-{chapter}.trans.txt"), 'w') as handle:
            handle.writelines(f"{speaker}-{chapter}-{u:04d} SOME WORDS\n" for u in range(utts))
    return paths


def test_scan_lists_every_file_and_prints_counts(tmp_path, capsys):
    root = str(tmp_path / 'train-clean-100')
    expected = (_write_chapter(root, 19, 198, 3) + _write_chapter(root, 19, 227, 2)
                + _write_chapter(root, 103, 1240, 2, ext='.wav'))
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        paths = scan_librispeech(root)
    assert paths == sorted(expected)
    assert 'LibriSpeech train-clean-100: found 2 speakers, 7 utterances (official: 251 / 28,539)' in \
        capsys.readouterr().out


def test_missing_transcript_and_odd_names_warn(tmp_path):
    root = str(tmp_path / 'libri')
    _write_chapter(root, 19, 198, 2)
    _write_chapter(root, 26, 495, 2, transcript=False)
    write_audio(os.path.join(root, '26', '495', 'stray.flac'), np.zeros(100, np.float32), subtype='PCM_16')
    with pytest.warns(UserWarning) as caught:
        paths = scan_librispeech(root)
    messages = [str(w.message) for w in caught]
    assert len(paths) == 5
    assert any(os.path.join(root, '26', '495') in m and '26-495.trans.txt' in m for m in messages)
    assert not any(os.path.join(root, '19', '198') + ' ' in m for m in messages)
    assert any('1 audio file(s)' in m and 'stray.flac' in m for m in messages)


def test_missing_or_empty_root_is_explained(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent.*<spk>/<chapter>/<spk>-<chapter>-<utt>\.flac"):
        scan_librispeech(str(tmp_path / 'absent'))
    os.makedirs(tmp_path / 'empty' / '19' / '198')
    with pytest.raises(ValueError, match=r"no \.wav or \.flac files below .*empty"):
        scan_librispeech(str(tmp_path / 'empty'))
