"""data/augment.py and its use by the training set: the drawn SNR is the SNR of the output, reverberation keeps length,
level and alignment, every type is used, noise is read by seeking, draws repeat under resume, aug_prob=0 changes
nothing, and missing or empty folders are named before anything starts."""
import os
import pickle

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from arguments import check_args, get_args
from data.augment import (AUGMENTATIONS, BABBLE_TALKERS, FIELD_SNR_DB, Augmenter, NoiseLists, add_at_snr, energy,
                          reverberate, scan_noise_sets)
from data.curriculum import CurriculumTrainSet, collate_train
from tests.helpers_data import CODE_SCALE, coded_corpus, coded_signal, decode, write_audio
from trainer.distributed import DistEnv
from trainer.loop import ResumableSampler

CROP = 1600
RIR_PEAK = 30  # the direct path of the test impulse responses


def _rir(rng: np.random.Generator, peak: int = RIR_PEAK, length: int = 800) -> np.ndarray:
    """A decaying-noise impulse response whose largest sample (the direct path) is at `peak`."""
    rir = np.zeros(length)
    rir[peak + 1:] = 0.3 * rng.standard_normal(length - peak - 1) * np.exp(-np.arange(length - peak - 1) / 150)
    rir[peak] = 1.0
    return rir


@pytest.fixture(scope='module')
def noise_root(tmp_path_factory):
    """A MUSAN-layout folder (noise as .wav, music as .flac, seven speech files, nested like MUSAN) and a
    simulated_rirs-layout folder of three impulse responses."""
    root = tmp_path_factory.mktemp('augment')
    rng = np.random.default_rng(3)
    t = np.arange(24000) / 16000
    for k in range(2):
        write_audio(str(root / 'musan' / 'noise' / 'free-sound' / f'noise-free-sound-{k:04d}.wav'),
                    (0.1 * rng.standard_normal(20000)).astype(np.float32))
        write_audio(str(root / 'musan' / 'music' / 'fma' / f'music-fma-{k:04d}.flac'),
                    0.2 * np.sin(2 * np.pi * (220 + 110 * k) * t), subtype='PCM_16')
    for k in range(7):
        write_audio(str(root / 'musan' / 'speech' / 'librivox' / f'speech-librivox-{k:04d}.wav'),
                    (0.05 * rng.standard_normal(3000 + 1000 * k) * (1 + np.sin(np.arange(3000 + 1000 * k) / 300)))
                    .astype(np.float32))
    for room in ('smallroom', 'largeroom'):
        for k in range(1 + (room == 'largeroom')):
            write_audio(str(root / 'rirs' / room / 'Room001' / f'Room001-{k + 1:05d}.wav'),
                        _rir(rng).astype(np.float32))
    return root


@pytest.fixture(scope='module')
def lists(noise_root):
    return scan_noise_sets(str(noise_root / 'musan'), str(noise_root / 'rirs'))


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    """4 speakers x 3 utterances of coded audio and 3 LibriSpeech-style files."""
    return coded_corpus(str(tmp_path_factory.mktemp('aug_corpus')), speakers=4, libri_files=3, low=1800, high=3500)


def _clean(seed: int) -> np.ndarray:
    """A speech-like crop: amplitude-modulated noise, float32 [CROP]."""
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(CROP) * (1.2 + np.sin(np.arange(CROP) / 90))).astype(np.float32)


def _snr_db(clean: np.ndarray, out: np.ndarray) -> float:
    """SNR of `out` against `clean`, computed in float64 from the two signals alone."""
    noise = out.astype(np.float64) - clean.astype(np.float64)
    return 10 * np.log10(np.sum(clean.astype(np.float64) ** 2) / np.sum(noise ** 2))


def test_scan_finds_every_part_recursively(lists, noise_root):
    assert [len(lists.noise), len(lists.music), len(lists.speech), len(lists.rirs)] == [2, 2, 7, 3]
    assert all(p.endswith('.flac') for p in lists.music) and lists.rirs == tuple(sorted(lists.rirs))
    assert os.path.join('largeroom', 'Room001', 'Room001-00002.wav') in lists.rirs[1]


@pytest.mark.parametrize('kind', ['noise', 'music', 'babble'])
def test_additive_types_hit_the_drawn_snr(lists, kind):
    augmenter = Augmenter(lists)
    rng = np.random.default_rng(11)
    low, high = FIELD_SNR_DB[kind]
    for draw in range(25):
        clean = _clean(draw)
        out, applied = augmenter.apply(kind, clean, rng)
        assert out.dtype == np.float32 and out.shape == clean.shape and applied.kind == kind
        assert low <= applied.snr_db <= high
        assert abs(_snr_db(clean, out) - applied.snr_db) <= 0.5, (draw, applied)
        if kind == 'babble':
            assert BABBLE_TALKERS[0] <= len(applied.files) <= BABBLE_TALKERS[1]
            assert set(applied.files) <= set(lists.speech)


def test_add_at_snr_is_exact_in_float64():
    clean, noise = _clean(1).astype(np.float64), np.random.default_rng(2).standard_normal(CROP)
    for snr in (-5.0, 0.0, 7.5, 20.0):
        out = add_at_snr(clean, noise, snr)
        assert _snr_db(clean, out) == pytest.approx(snr, abs=1e-3)  # float32 output: ~1e-7 relative per sample
    assert np.array_equal(add_at_snr(clean, np.zeros(CROP), 5.0), clean.astype(np.float32))


def test_noise_is_a_seeked_crop_of_its_file(tmp_path):
    """A coded noise file (sample t holds (id * span + t) / 2^23): the added noise, divided by its gain, is one
    contiguous span of the file."""
    path = write_audio(str(tmp_path / 'noise' / 'coded.wav'), coded_signal(3, 4000))
    augmenter = Augmenter(NoiseLists((path,), (), (), ()), kinds=('noise',))
    clean = _clean(5)
    rng = np.random.default_rng(0)
    for _ in range(5):
        out, applied = augmenter.augment(clean, rng)
        added = out.astype(np.float64) - clean  # [CROP] = g * (file[start:start+CROP])
        gain = np.polyfit(np.arange(CROP), added, 1)[0] * CODE_SCALE  # the file's slope is 1 / 2^23 per sample
        ids, positions = decode(added / gain)
        assert applied.files == [path] and set(ids.tolist()) == {3}
        assert np.array_equal(positions, positions[0] + np.arange(CROP)) and positions[0] + CROP <= 4000


def test_a_delta_rir_returns_the_input():
    x = _clean(7)
    for offset in (0, 1, 37):
        rir = np.zeros(200)
        rir[offset] = 0.5
        out = reverberate(x, rir)
        assert out.shape == x.shape and out.dtype == np.float32
        # float64 FFT convolution: error ~ 1e-16 x log2(size) x |x|max, far below float32's rounding
        np.testing.assert_allclose(out, x, rtol=0, atol=1e-6 * np.abs(x).max())


def test_reverberation_is_aligned_level_kept_and_equals_a_direct_convolution():
    rng = np.random.default_rng(4)
    x = rng.standard_normal(4000).astype(np.float32)  # white: its autocorrelation peaks sharply at lag 0
    rir = _rir(rng, peak=RIR_PEAK, length=600)
    out = reverberate(x, rir)
    assert out.shape == x.shape
    lags = np.arange(-200, 201)
    xcorr = [np.dot(out[max(0, k):4000 + min(0, k)].astype(np.float64), x[max(0, -k):4000 - max(0, k)])
             for k in lags]
    assert lags[int(np.argmax(xcorr))] == 0
    assert energy(out) == pytest.approx(energy(x), rel=1e-6)
    h = rir / np.sqrt(np.sum(rir ** 2))
    direct = np.convolve(x.astype(np.float64), h)[RIR_PEAK:RIR_PEAK + 4000]  # independent: direct-form convolution
    direct *= np.sqrt(energy(x) / energy(direct))
    np.testing.assert_allclose(out, direct, rtol=0, atol=1e-5 * np.abs(direct).max())


def test_reverb_type_reads_an_impulse_response_of_the_list(lists):
    x = _clean(8)
    out, applied = Augmenter(lists).apply('reverb', x, np.random.default_rng(1))
    rir, _ = sf.read(applied.files[0], dtype='float32')
    assert applied.kind == 'reverb' and applied.snr_db is None and applied.files[0] in lists.rirs
    np.testing.assert_array_equal(out, reverberate(x, rir))


def test_every_type_is_drawn_about_equally(lists):
    augmenter = Augmenter(lists)
    rng = np.random.default_rng(9)
    clean = _clean(9)
    counts = {kind: 0 for kind in AUGMENTATIONS}
    n = 200
    for _ in range(n):
        counts[augmenter.augment(clean, rng)[1].kind] += 1
    sd = np.sqrt(n * 0.25 * 0.75)
    assert all(abs(c - n / 4) <= 4 * sd for c in counts.values()), counts
    assert set(AUGMENTATIONS) == {'reverb', 'noise', 'music', 'babble'}


def _items(data: CurriculumTrainSet) -> list[tuple[np.ndarray, np.ndarray]]:
    return [data[i][:2] for i in range(len(data))]


def test_aug_prob_zero_gives_the_released_crops_and_augmentation_moves_no_crop(corpus, lists):
    utts, table, libri = corpus
    released = CurriculumTrainSet(utts, table, libri, CROP, schedule='constant', total_epochs=4, seed=3, p_const=0.5)
    plain = CurriculumTrainSet(utts, table, libri, CROP, schedule='constant', total_epochs=4, seed=3, p_const=0.5,
                               augmenter=Augmenter(lists), aug_prob=0.0, aug_rows='both')
    ft_only = CurriculumTrainSet(utts, table, libri, CROP, schedule='constant', total_epochs=4, seed=3, p_const=0.5,
                                 augmenter=Augmenter(lists), aug_prob=0.6, aug_rows='ft')
    both = CurriculumTrainSet(utts, table, libri, CROP, schedule='constant', total_epochs=4, seed=3, p_const=0.5,
                              augmenter=Augmenter(lists), aug_prob=0.6, aug_rows='both')
    changed = {'ft': 0, 'kd': 0}
    for epoch in (1, 2, 3):
        for data in (released, plain, ft_only, both):
            data.set_epoch(epoch)
        for i in range(len(utts)):
            kd, ft = released[i][:2]
            for wav in (kd, ft):  # the released crops are spans of their coded files
                _, positions = decode(wav)
                assert positions.shape == (CROP,)
            assert all(np.array_equal(a, b) for a, b in zip(plain[i][:2], (kd, ft)))
            kd_ft_only, ft_aug = ft_only[i][:2]
            kd_both, ft_both = both[i][:2]
            assert np.array_equal(kd_ft_only, kd)  # aug_rows='ft' never touches the KD crop
            assert np.array_equal(ft_aug, ft_both)  # the FT row's draws do not depend on aug_rows
            if not np.array_equal(ft_aug, ft):
                changed['ft'] += 1
                assert ft_aug.shape == ft.shape and ft_aug.dtype == np.float32
            changed['kd'] += not np.array_equal(kd_both, kd)
            assert released[i][2:4] == both[i][2:4]  # labels and KD sources unchanged
    n = 3 * len(utts)
    for row, count in changed.items():  # augmented with probability 0.6 (binomial, 4 sd)
        assert abs(count - 0.6 * n) <= 4 * np.sqrt(n * 0.24), (row, count)


def test_same_item_same_augmentation_other_epochs_differ(corpus, lists):
    utts, table, libri = corpus
    make = lambda rank: CurriculumTrainSet(utts, table, libri, CROP, schedule='linear', total_epochs=4, seed=5,
                                           rank=rank, augmenter=Augmenter(lists), aug_prob=1.0, aug_rows='both')
    a, b, other_rank = make(0), make(0), make(1)
    b = pickle.loads(pickle.dumps(b))  # what a DataLoader worker receives
    first = _items(a)
    assert all(np.array_equal(x, y) for p, q in zip(first, _items(b)) for x, y in zip(p, q))
    assert not all(np.array_equal(p[1], q[1]) for p, q in zip(first, _items(other_rank)))
    a.set_epoch(2)
    assert not any(np.array_equal(p[1], q[1]) for p, q in zip(first, _items(a)))


def test_an_interrupted_epoch_resumes_with_the_same_augmented_items(corpus, lists):
    """The trainer's sampler: a session stopped after 2 batches of epoch 2 and a new one (fresh set, augmenter and
    loader with a worker process) that skips those batches see exactly the batches of an uninterrupted epoch."""
    utts, table, libri = corpus
    env, batch = DistEnv(0, 1, torch.device('cpu')), 2

    def loader(workers: int) -> tuple[CurriculumTrainSet, ResumableSampler, DataLoader]:
        data = CurriculumTrainSet(utts, table, libri, CROP, schedule='linear', total_epochs=3, seed=2,
                                  augmenter=Augmenter(lists), aug_prob=0.6, aug_rows='both')
        sampler = ResumableSampler(data, env, seed=2)
        return data, sampler, DataLoader(data, batch_size=batch, sampler=sampler, num_workers=workers,
                                         collate_fn=collate_train, drop_last=True)

    data, sampler, straight_loader = loader(0)
    data.set_epoch(2)
    sampler.set_epoch(2)
    straight = list(straight_loader)
    data, sampler, resumed_loader = loader(1)
    data.set_epoch(2)
    sampler.set_epoch(2, skip=2 * batch)
    resumed = list(resumed_loader)
    assert len(straight) == len(utts) // batch and len(resumed) == len(straight) - 2
    for a, b in zip(straight[2:], resumed):
        assert torch.equal(a.x_kd, b.x_kd) and torch.equal(a.x_ft, b.x_ft) and torch.equal(a.y, b.y)


def test_augmentation_without_files_is_an_invariant_the_settings_check_keeps(corpus):
    utts, table, libri = corpus  # the user-facing refusal is arguments.check_args' (below)
    with pytest.raises(AssertionError):
        CurriculumTrainSet(utts, table, libri, CROP, schedule='linear', total_epochs=3, seed=2, aug_prob=0.5)


def test_missing_or_empty_folders_are_named(noise_root, tmp_path):
    musan, rirs = str(noise_root / 'musan'), str(noise_root / 'rirs')
    with pytest.raises(FileNotFoundError, match=f"argument 'path_musan': audio directory not found: "
                                                f"'{tmp_path / 'none' / 'noise'}'"):
        scan_noise_sets(str(tmp_path / 'none'), rirs)
    empty = tmp_path / 'musan'
    for part in ('noise', 'music', 'speech'):
        os.makedirs(empty / part)
    write_audio(str(empty / 'noise' / 'a.wav'), np.ones(100, dtype=np.float32))
    (empty / 'music' / 'README').write_text('no audio here')
    with pytest.raises(ValueError, match=f"argument 'path_musan': no .wav or .flac files below '{empty / 'music'}'"):
        scan_noise_sets(str(empty), rirs)
    os.makedirs(tmp_path / 'rirs')
    with pytest.raises(ValueError, match=f"argument 'path_rir': no .wav or .flac files below '{tmp_path / 'rirs'}'"):
        scan_noise_sets(musan, str(tmp_path / 'rirs'))
    with pytest.raises(ValueError, match="argument 'path_rir': empty"):
        scan_noise_sets(musan, '')


def test_check_args_names_the_augmentation_keys(noise_root, tmp_path):
    base = [f'path_train={tmp_path}', f'path_test={tmp_path}', f'path_trials={tmp_path}', 'usable_gpu=cpu']
    with pytest.raises(SystemExit, match="argument 'aug_prob': got 0.6; augmentation reads MUSAN .* give path_musan "
                                         ".* and path_rir .* or aug_prob=0.0"):
        check_args(get_args(base + ['recipe=modern']), 1)
    with pytest.raises(SystemExit, match=f"argument 'path_rir': got '{tmp_path / 'nowhere'}'; that path does not"):
        check_args(get_args(base + ['aug_prob=0.5', f"path_musan={noise_root / 'musan'}",
                                    f"path_rir={tmp_path / 'nowhere'}"]), 1)
    check_args(get_args(base + ['recipe=modern', 'aug_prob=0.0']), 1)
