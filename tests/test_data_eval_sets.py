"""data/eval_sets.py: whole utterances and TTA segments of real files."""
import numpy as np
import pytest
import soundfile as sf

from data.eval_sets import EvalSet
from data.voxceleb import scan_voxceleb
from tests.helpers_data import write_vox_tree


def test_items_hold_the_whole_file_and_its_segments(tmp_path):
    write_vox_tree(str(tmp_path), {'id10270': {'x6uYqmx31kE': [2500, 1001]}, 'id10271': {'8jEAjG6SegY': [700]}})
    utts = scan_voxceleb(str(tmp_path))
    data = EvalSet(utts, seg_size=1000, num_seg=3)
    assert len(data) == 3 and data.keys == [u.key for u in utts]
    expected_starts = {2500: [0, 750, 1500], 1001: [0, 0, 1], 700: [0, 0, 0]}  # linspace(0, n - 1000, 3) rounded
    for i, utt in enumerate(utts):
        full, _ = sf.read(utt.path, dtype='float32')
        wav, segments, index = data[i]
        assert index == i and wav.dtype == np.float32
        np.testing.assert_array_equal(wav, full)
        padded = np.tile(full, 2)[:max(1000, full.shape[0])]  # a short file is wrap-padded to one segment
        assert segments.shape == (3, 1000)
        for segment, start in zip(segments, expected_starts[full.shape[0]]):
            np.testing.assert_array_equal(segment, padded[start:start + 1000])


def test_empty_list_and_bad_sizes_are_refused(tmp_path):
    with pytest.raises(ValueError, match='path_test'):
        EvalSet([], 1000, 3)
    write_vox_tree(str(tmp_path), {'id10270': {'x6uYqmx31kE': [100]}})
    with pytest.raises(ValueError, match='num_seg'):
        EvalSet(scan_voxceleb(str(tmp_path)), 1000, 0)
