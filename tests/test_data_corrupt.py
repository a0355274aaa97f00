"""data/corrupt.py: the noisy copy keeps every relative path and length, its noise sits at the SNR it records, the
same arguments give the same bytes, and an existing --out is refused untouched."""
import json
import os

import numpy as np
import pytest
import soundfile as sf

from data.corrupt import ADDITIVE, MANIFEST, main
from tests.helpers_data import tree_bytes, write_audio
from utils.errors import UserError

KEYS = ['id10270/abcdefghijk/00001.wav', 'id10270/abcdefghijk/00002.wav', 'id10271/ABCDEFGHIJK/00001.wav']


@pytest.fixture(scope='module')
def src(tmp_path_factory):
    """A VoxCeleb-layout test tree of three 16-bit files of modulated noise (0.4-0.7 s)."""
    root = tmp_path_factory.mktemp('corrupt') / 'test' / 'wav'
    rng = np.random.default_rng(1)
    for k, key in enumerate(KEYS):
        n = 6400 + 1600 * k
        wav = 0.1 * rng.standard_normal(n) * (1.2 + np.sin(np.arange(n) / 200))
        write_audio(str(root / key), wav, subtype='PCM_16')
    return str(root)


def test_noise_is_added_at_the_recorded_snr(src, tmp_path):
    out = str(tmp_path / 'noisy')
    assert main(['--src', src, '--out', out, '--seed', '3', '--reverb-prob', '0', '--snr-low', '2',
                 '--snr-high', '8']) == 0
    with open(os.path.join(out, MANIFEST)) as handle:
        manifest = json.load(handle)
    assert sorted(manifest['files']) == KEYS and sorted(tree_bytes(out)) == sorted(KEYS + [MANIFEST])
    for key, done in manifest['files'].items():
        clean, _ = sf.read(os.path.join(src, key), dtype='float64')
        noisy, rate = sf.read(os.path.join(out, key), dtype='float64')
        assert rate == 16000 and noisy.shape == clean.shape and sf.info(os.path.join(out, key)).subtype == 'PCM_16'
        assert done['rir'] is None and done['kind'] in ADDITIVE and 2 <= done['snr_db'] <= 8
        noise = noisy / done['gain'] - clean
        snr = 10 * np.log10(np.sum(clean ** 2) / np.sum(noise ** 2))
        assert abs(snr - done['snr_db']) <= 0.5, (key, snr, done)


@pytest.mark.slow  # three corrupted copies of a tree
def test_reverberant_copy_is_reproducible_and_never_overwrites(src, tmp_path):
    first, second = str(tmp_path / 'a'), str(tmp_path / 'b')
    assert main(['--src', src, '--out', first, '--seed', '5']) == 0
    assert main(['--src', src, '--out', second, '--seed', '5']) == 0
    a, b = tree_bytes(first), tree_bytes(second)
    assert a == b
    manifest = json.loads(a[MANIFEST])
    for key, done in manifest['files'].items():
        assert done['rir'].startswith(os.path.join('RIRS_NOISES', 'simulated_rirs'))
        assert sf.info(os.path.join(first, key)).frames == sf.info(os.path.join(src, key)).frames
        assert not np.array_equal(sf.read(os.path.join(first, key))[0], sf.read(os.path.join(src, key))[0])
    other = str(tmp_path / 'c')
    assert main(['--src', src, '--out', other, '--seed', '6']) == 0
    assert all(tree_bytes(other)[key] != a[key] for key in KEYS)
    with pytest.raises(UserError, match=f'--out {first} exists; nothing is overwritten'):
        main(['--src', src, '--out', first, '--seed', '6'])
    assert tree_bytes(first) == a
    assert sorted(os.listdir(tmp_path)) == ['a', 'b', 'c']  # no staging folder left behind
