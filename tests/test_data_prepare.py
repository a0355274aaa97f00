"""data/prepare.py convert: .m4a trees (AAC, as VoxCeleb2 is distributed) into 16 kHz mono .wav with ffmpeg;
resumable, each output's length checked against its source, outputs that are wrong reported and left alone."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from data.prepare import LENGTH_TOLERANCE_S, main
from data.voxceleb import scan_voxceleb

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYS = {'id00012/21Uxsk56VDQ/00001': 16000, 'id00012/21Uxsk56VDQ/00002': 23456, 'id00012/u7VNkYraCw0/00001': 9000,
        'id00015/0fnfAZp-UKg/00001': 40000, 'id00015/0fnfAZp-UKg/00002': 12345}
needs_ffmpeg = pytest.mark.skipif(shutil.which('ffmpeg') is None or shutil.which('ffprobe') is None,
                                  reason='ffmpeg/ffprobe not on PATH (apt-get install ffmpeg): the converter needs '
                                         'them, and so does writing the .m4a test files')


def _signal(n: int, seed: int) -> np.ndarray:
    """A modulated tone with a little noise: [n] float32, 16 kHz."""
    t = np.arange(n) / 16000
    noise = np.random.default_rng(seed).standard_normal(n)
    return (0.3 * np.sin(2 * np.pi * 440 * t) * np.sin(2 * np.pi * 1.3 * t) + 0.05 * noise).astype(np.float32)


@pytest.fixture
def m4a_tree(tmp_path):
    """SRC/<spk>/<video>/<utt>.m4a encoded by ffmpeg's AAC encoder from known signals; returns (SRC, signals)."""
    src, signals = tmp_path / 'aac', {}
    for seed, (key, n) in enumerate(KEYS.items()):
        wav = str(tmp_path / 'originals' / f'{seed}.wav')
        os.makedirs(os.path.dirname(wav), exist_ok=True)
        signals[key] = _signal(n, seed)
        sf.write(wav, signals[key], 16000, subtype='PCM_16')
        os.makedirs(src / os.path.dirname(key), exist_ok=True)
        subprocess.run(['ffmpeg', '-nostdin', '-v', 'error', '-y', '-i', wav, '-c:a', 'aac', '-b:a', '64k',
                        str(src / f'{key}.m4a')], check=True)
    return src, signals


@pytest.mark.slow  # a real data.prepare process
@needs_ffmpeg
def test_convert_writes_verified_wav_and_resumes(m4a_tree, tmp_path, capsys):
    src, signals = m4a_tree
    dst = tmp_path / 'wav'
    with pytest.raises(ValueError, match=r"5 \.m4a file\(s\).*python -m data\.prepare convert"):
        scan_voxceleb(str(src))
    done = subprocess.run([sys.executable, '-m', 'data.prepare', 'convert', str(src), str(dst), '--workers', '2'],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert '5 converted, 0 already done (verified), 0 failed, of 5 .m4a files' in done.stdout
    for key, original in signals.items():
        decoded, rate = sf.read(str(dst / f'{key}.wav'), dtype='float32')
        assert rate == 16000 and decoded.ndim == 1 and sf.info(str(dst / f'{key}.wav')).subtype == 'PCM_16'
        assert abs(len(decoded) - len(original)) <= LENGTH_TOLERANCE_S * 16000
        n = min(len(decoded), len(original))
        assert np.corrcoef(decoded[:n], original[:n])[0, 1] > 0.99  # the same audio, aligned from the start
    assert sorted(os.path.relpath(os.path.join(d, f), dst) for d, _, fs in os.walk(dst) for f in fs) == \
        sorted(f'{key}.wav' for key in KEYS)  # no partial files left
    assert scan_voxceleb(str(dst)).keys() == sorted(f'{key}.wav' for key in KEYS)
    capsys.readouterr()
    assert main(['convert', str(src), str(dst), '--workers', '1']) == 0  # 5 files through a window of 4
    assert '0 converted, 5 already done (verified), 0 failed' in capsys.readouterr().out


@needs_ffmpeg
def test_wrong_outputs_and_broken_sources_are_reported_not_replaced(m4a_tree, tmp_path, capsys):
    src, _ = m4a_tree
    dst = tmp_path / 'wav'
    short = dst / 'id00012' / '21Uxsk56VDQ' / '00002.wav'
    os.makedirs(short.parent)
    sf.write(str(short), np.zeros(800, np.float32), 16000, subtype='PCM_16')
    before = short.read_bytes()
    (src / 'id00015' / '0fnfAZp-UKg' / '00003.m4a').write_bytes(b'not an m4a file')
    assert main(['convert', str(src), str(dst), '--workers', '2']) == 1
    out = capsys.readouterr().out
    assert '4 converted, 0 already done (verified), 2 failed, of 6 .m4a files' in out
    assert f'{short} exists but is 0.050 s long but the source lasts 1.466 s; remove it' in out
    assert 'ffprobe cannot read the duration of ' + str(src / 'id00015' / '0fnfAZp-UKg' / '00003.m4a') in out
    assert short.read_bytes() == before and not (dst / 'id00015' / '0fnfAZp-UKg' / '00003.wav').exists()
    assert (dst / 'id00015' / '0fnfAZp-UKg' / '00001.wav').exists()


def test_bad_folders_and_missing_ffmpeg_are_explained(tmp_path, monkeypatch):
    src = tmp_path / 'aac'
    os.makedirs(src / 'id00012' / 'v')
    (src / 'id00012' / 'v' / '00001.m4a').write_bytes(b'')
    with pytest.raises(SystemExit, match="is not a folder"):
        main(['convert', str(tmp_path / 'nowhere'), str(tmp_path / 'wav')])
    with pytest.raises(SystemExit, match="DST .* holds SRC"):
        main(['convert', str(src), str(tmp_path)])
    with pytest.raises(SystemExit, match="holds SRC"):
        main(['convert', str(src), str(src)])
    monkeypatch.setenv('PATH', str(tmp_path / 'empty_bin'))
    with pytest.raises(SystemExit, match='convert needs ffmpeg and ffprobe on PATH'):
        main(['convert', str(src), str(tmp_path / 'wav')])
