"""data/audio.py on real files: crops, wrap-padding, resampling, partial reads, segments, errors."""
import math

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from data.audio import AudioError, audio_length, read_audio, read_crop, read_segments, segment_starts
from tests.helpers_data import coded_signal, decode, write_audio


def test_crop_of_long_file_is_a_slice_and_covers_the_file(tmp_path):
    path = write_audio(str(tmp_path / 'long.wav'), coded_signal(3, 3000))
    full, _ = sf.read(path, dtype='float32')
    starts = []
    for seed in range(200):
        crop = read_crop(path, 700, np.random.default_rng(seed))
        ids, pos = decode(crop)
        assert crop.dtype == np.float32 and crop.shape == (700,)
        assert np.all(ids == 3)
        np.testing.assert_array_equal(crop, full[pos[0]:pos[0] + 700])
        starts.append(int(pos[0]))
    assert min(starts) < 100 and max(starts) > 2300 - 100 and max(starts) <= 2300


def test_crop_of_exact_and_short_files(tmp_path):
    exact = write_audio(str(tmp_path / 'exact.wav'), coded_signal(1, 700))
    short = write_audio(str(tmp_path / 'short.wav'), coded_signal(2, 300))
    full_exact, _ = sf.read(exact, dtype='float32')
    np.testing.assert_array_equal(read_crop(exact, 700, np.random.default_rng(0)), full_exact)
    full_short, _ = sf.read(short, dtype='float32')
    crop = read_crop(short, 700, np.random.default_rng(0))
    expected = np.concatenate([full_short, full_short, full_short[:100]])  # wrap-padding = repetition
    np.testing.assert_array_equal(crop, expected)
    assert crop[300] == full_short[0] and crop[699] == full_short[99]


def test_flac_and_pcm16_read_like_soundfile(tmp_path):
    rng = np.random.default_rng(0)
    pcm = (rng.standard_normal(5000) * 3000).astype(np.int16)
    path = write_audio(str(tmp_path / 'a' / 'x.flac'), pcm, subtype='PCM_16')
    np.testing.assert_array_equal(read_audio(path), pcm.astype(np.float32) / 32768)
    np.testing.assert_array_equal(read_audio(path, 1234, 2345), pcm[1234:2345].astype(np.float32) / 32768)
    assert audio_length(path) == 5000


def test_44k_stereo_comes_back_16k_mono(tmp_path):
    rng = np.random.default_rng(1)
    stereo = (rng.standard_normal((57330, 2)) * 0.1).astype(np.float32)  # 1.3 s at 44.1 kHz
    path = write_audio(str(tmp_path / 'stereo.wav'), stereo, rate=44100)
    reference = AF.resample(torch.from_numpy(stereo.mean(axis=1)), 44100, 16000).numpy()
    expected_length = math.ceil(57330 * 16000 / 44100)
    assert audio_length(path) == expected_length == reference.shape[0]
    whole = read_audio(path)
    assert whole.shape == (expected_length,) and whole.dtype == np.float32
    np.testing.assert_allclose(whole, reference, atol=1e-6)
    np.testing.assert_allclose(read_audio(path, 3001, 15007), reference[3001:15007], atol=1e-6)
    np.testing.assert_allclose(read_audio(path, expected_length - 500), reference[-500:], atol=1e-6)


def _record_reads(monkeypatch) -> list[int]:
    """Wrap the real SoundFile.read so that the frame counts it is asked for are recorded."""
    frames_read: list[int] = []
    real_read = sf.SoundFile.read

    def recording_read(self, frames=-1, *args, **kwargs):
        data = real_read(self, frames, *args, **kwargs)
        frames_read.append(len(data))
        return data

    monkeypatch.setattr(sf.SoundFile, 'read', recording_read)
    return frames_read


def test_long_files_are_read_partially(tmp_path, monkeypatch):
    long16 = write_audio(str(tmp_path / 'long16.wav'), np.zeros(16000 * 60, np.int16), subtype='PCM_16')
    long44 = write_audio(str(tmp_path / 'long44.flac'), np.zeros(44100 * 30, np.int16), rate=44100,
                         subtype='PCM_16')
    frames_read = _record_reads(monkeypatch)
    assert read_crop(long16, 8000, np.random.default_rng(0)).shape == (8000,)
    assert frames_read == [8000]
    frames_read.clear()
    assert read_crop(long44, 8000, np.random.default_rng(0)).shape == (8000,)
    assert len(frames_read) == 1 and 8000 * 44100 / 16000 < frames_read[0] < 8000 * 44100 / 16000 + 2 * 8 * 441
    assert frames_read[0] < 44100 * 30 / 20


def test_segments_start_on_linspace_positions(tmp_path):
    assert segment_starts(10000, 4000, 3).tolist() == [0, 3000, 6000]
    assert segment_starts(10001, 4000, 4).tolist() == [0, 2000, 4001, 6001]  # 2000.33 and 4000.67 rounded
    path = write_audio(str(tmp_path / 'seg.wav'), coded_signal(0, 3001))
    full, _ = sf.read(path, dtype='float32')
    segments = read_segments(path, 1000, 4)
    assert segments.shape == (4, 1000)
    for segment, start in zip(segments, [0, 667, 1334, 2001]):
        np.testing.assert_array_equal(segment, full[start:start + 1000])


def test_segments_of_short_file_are_wrap_padded(tmp_path):
    path = write_audio(str(tmp_path / 'seg.wav'), coded_signal(0, 400))
    full, _ = sf.read(path, dtype='float32')
    segments = read_segments(path, 1000, 3)
    expected = np.concatenate([full, full, full[:200]])
    for segment in segments:
        np.testing.assert_array_equal(segment, expected)


def test_bad_files_are_reported_by_path(tmp_path):
    missing = str(tmp_path / 'nope.wav')
    with pytest.raises(AudioError, match='not found.*nope.wav'):
        read_audio(missing)
    garbage = tmp_path / 'garbage.wav'
    garbage.write_bytes(b'this is not audio' * 10)
    with pytest.raises(AudioError, match='cannot read audio file .*garbage.wav'):
        read_crop(str(garbage), 100, np.random.default_rng(0))
    empty = write_audio(str(tmp_path / 'empty.wav'), np.zeros(0, np.float32))
    with pytest.raises(AudioError, match='empty audio file .*empty.wav'):
        audio_length(empty)
    short = write_audio(str(tmp_path / 'short.wav'), np.zeros(100, np.float32))
    with pytest.raises(AudioError, match=r'\[50, 200\) of .*short.wav: it has 100 samples'):
        read_audio(short, 50, 200)
    pcm = (np.random.default_rng(0).standard_normal(40000) * 3000).astype(np.int16)
    encoded = open(write_audio(str(tmp_path / 'ok.flac'), pcm, subtype='PCM_16'), 'rb').read()
    truncated = tmp_path / 'truncated.flac'
    truncated.write_bytes(encoded[:len(encoded) // 2])  # the header still promises 40000 samples
    assert audio_length(str(truncated)) == 40000
    with pytest.raises(AudioError, match='cannot decode .*truncated.flac'):
        read_audio(str(truncated))
