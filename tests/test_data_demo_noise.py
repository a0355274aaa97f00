"""The demo's augmentation set (data/demo.py, data/noise_synth.py): MUSAN and simulated-RIR layouts the scanner
reads, generated once apart from the corpus, the same bytes for the same seed, other noise for the 'eval' stream,
impulse responses whose largest sample is the direct path."""
import os

import numpy as np
import soundfile as sf

from data.augment import scan_noise_sets
from data.demo import MARKER, NOISE_SET_SIZES, make_demo_noise_set, write_noise_set
from data.noise_synth import room_impulse_response
from tests.helpers_data import tree_bytes

TINY = {'noise': 2, 'music': 2, 'speech': 3, 'rooms': 3, 'rirs_per_room': 2}


def test_demo_set_has_the_layouts_and_is_generated_once(tmp_path, capsys):
    paths = make_demo_noise_set(str(tmp_path), seed=1)
    lists = scan_noise_sets(paths.path_musan, paths.path_rir)
    assert (len(lists.noise), len(lists.music), len(lists.speech)) == tuple(NOISE_SET_SIZES[p] for p in
                                                                           ('noise', 'music', 'speech'))
    assert len(lists.rirs) == NOISE_SET_SIZES['rooms'] * NOISE_SET_SIZES['rirs_per_room']
    assert os.path.relpath(lists.noise[0], paths.path_musan) == os.path.join('noise', 'free-sound',
                                                                             'noise-free-sound-0000.wav')
    assert all(os.path.basename(os.path.dirname(os.path.dirname(p))) in ('smallroom', 'mediumroom', 'largeroom')
               for p in lists.rirs)
    assert os.path.isfile(os.path.join(paths.root, MARKER)) and os.listdir(tmp_path) == [os.path.basename(paths.root)]
    capsys.readouterr()
    before = tree_bytes(paths.root)
    assert make_demo_noise_set(str(tmp_path), seed=1) == paths and 'generating' not in capsys.readouterr().out
    assert tree_bytes(paths.root) == before
    for path in lists.noise + lists.music + lists.speech:
        wav, rate = sf.read(path)
        assert rate == 16000 and wav.shape[0] >= 4 * 16000 and 0 < np.max(np.abs(wav)) < 1.0


def test_same_seed_same_bytes_and_the_eval_stream_differs(tmp_path):
    a = tree_bytes(write_noise_set(str(tmp_path / 'a'), 3, 'train', TINY).root)
    b = tree_bytes(write_noise_set(str(tmp_path / 'b'), 3, 'train', TINY).root)
    evaluation = tree_bytes(write_noise_set(str(tmp_path / 'c'), 3, 'eval', TINY).root)
    assert a == b and len(a) == 7 + 6
    assert not set(a.values()) & set(evaluation.values())  # no file of the eval set is one the training set has


def test_impulse_responses_peak_at_their_direct_path():
    for seed in range(20):
        rng = np.random.default_rng(seed)
        rt60 = float(rng.uniform(0.15, 0.9))
        rir = room_impulse_response(rng, rt60)
        direct = int(np.flatnonzero(rir)[0])
        assert int(np.argmax(np.abs(rir))) == direct and rir[direct] == 1.0 and direct < 0.01 * 16000
        assert rir.shape[0] == int(min(rt60, 1.0) * 16000)
        late = rir[direct + int(rt60 * 16000 * 0.8):]  # the last fifth of the decay, 48-60 dB down
        assert np.max(np.abs(late)) < 0.02
