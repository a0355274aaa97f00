"""The Python API: export → load (PyTorch or onnxruntime) → embed / score / verify give the numbers of
`python -m export`, arrays at any rate and channel count equal the training reader's files, bad input is named."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from export import Embedding, ExportError, load_speaker_model
from export.cli import main
from helpers_export import NUM_SEG, onnx_setup

# a trained run exported to both runtimes (the fast tier's export check: test_trainer_end_to_end)
pytestmark = pytest.mark.slow
RUNTIMES = ['torch', 'onnx']
TOLERANCE = {'torch': 2e-5, 'onnx': 1e-4}  # against the in-training model: float noise / the ONNX parity bound


@pytest.fixture(scope='module')
def setup():
    return onnx_setup()


@pytest.fixture(scope='module', params=RUNTIMES)
def runtime(request):
    return request.param


@pytest.fixture(scope='module')
def model(setup, runtime):
    return load_speaker_model(setup.model, runtime=runtime, device='cpu')


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_embed_gives_the_numbers_of_the_embed_command(setup, runtime, model, tmp_path):
    keys = list(setup.files)[:3]
    out = str(tmp_path / 'emb.npz')
    main(['embed', '--model', setup.model, '--runtime', runtime, '--out', out] + [setup.files[k] for k in keys])
    saved = np.load(out)
    for row, key in enumerate(keys):
        embedding = model.embed(setup.files[key])
        assert embedding.full.shape == (16,) and embedding.tta.shape == (NUM_SEG, 16)
        assert np.abs(embedding.full - saved['full'][row]).max() <= 1e-6
        assert np.abs(embedding.tta - saved['tta'][row]).max() <= 1e-6
        full, tta = setup.reference[key]  # the in-training model, computed independently
        assert np.abs(_unit(embedding.full) - _unit(full.numpy())).max() <= TOLERANCE[runtime]
        assert np.abs(_unit(embedding.tta) - _unit(tta.numpy())).max() <= TOLERANCE[runtime]


def test_score_and_verify_follow_the_exports_protocol_and_threshold(setup, runtime, model):
    assert model.threshold == pytest.approx(setup.threshold, abs=1e-12)
    assert (model.sample_rate, model.embed_size) == (16000, 16)
    above = np.flatnonzero(setup.scores >= setup.threshold + 2 * TOLERANCE[runtime])[:2]
    below = np.flatnonzero(setup.scores < setup.threshold - 2 * TOLERANCE[runtime])[:2]
    assert len(above) == len(below) == 2  # both decisions are exercised, clear of the threshold
    for trial in np.concatenate([above, below]):
        a, b = setup.pairs[trial]
        assert model.score(setup.files[a], setup.files[b]) == pytest.approx(setup.scores[trial],
                                                                              abs=TOLERANCE[runtime])
        assert model.verify(setup.files[a], setup.files[b]) == (trial in above)
    a, b = setup.pairs[above[0]]
    embedded = model.embed(setup.files[a])
    assert model.score(embedded, setup.files[b]) == pytest.approx(model.score(setup.files[a], setup.files[b]),
                                                                  abs=1e-6)


def test_arrays_are_read_like_the_training_reader_reads_files(model, tmp_path):
    rng = np.random.default_rng(4)
    t = np.arange(int(1.3 * 44100)) / 44100
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 180 * t), 0.2 * np.sin(2 * np.pi * 260 * t)], axis=1)  # [n, 2]
    stereo = (stereo + 0.02 * rng.standard_normal(stereo.shape)).astype(np.float32)
    path = str(tmp_path / 'stereo_44k.wav')
    sf.write(path, stereo, 44100, subtype='FLOAT')
    from_file = model.embed(path)  # data.audio.read_audio: channel mean + torchaudio resampling
    from_array = model.embed(stereo, sample_rate=44100)
    from_tensor = model.embed(torch.from_numpy(stereo), sample_rate=44100)
    assert np.abs(from_array.full - from_file.full).max() <= 1e-6
    assert np.abs(from_tensor.tta - from_file.tta).max() <= 1e-6
    mono = model.embed(stereo.mean(axis=1), sample_rate=44100)
    assert np.abs(mono.full - from_file.full).max() <= 1e-5  # mixing first: the same signal
    unresampled = model.embed(stereo[:, 0], sample_rate=16000)  # a wrong rate changes the result
    assert np.abs(unresampled.full - from_file.full).max() > 1e-2


def test_bad_input_is_named(setup, runtime, model, tmp_path):
    with pytest.raises(ExportError, match=r'audio array of shape \(2, 32000\): expected \[samples\] or \[samples, '
                                          r'channels\]'):
        model.embed(np.zeros((2, 32000), dtype=np.float32))
    with pytest.raises(ExportError, match='expected floating-point samples in .-1, 1., got int16'):
        model.embed(np.zeros(32000, dtype=np.int16))
    with pytest.raises(ExportError, match=r'\(700,\): 700 samples at 16 kHz \(43.75 ms\), shorter than the 720 samples \(45 ms\)'):
        model.embed(np.zeros(700, dtype=np.float32))
    with pytest.raises(ExportError, match='unsupported audio format: .*voice.mp3'):
        model.embed(str(tmp_path / 'voice.mp3'))
    with pytest.raises(ExportError, match='Embedding of shapes'):
        model.score(Embedding(np.zeros(8), np.zeros((NUM_SEG, 8))), setup.files[setup.pairs[0][0]])


def test_load_names_a_directory_that_is_not_an_export(tmp_path):
    with pytest.raises(ExportError, match=f'{tmp_path} is not an export: no export.json'):
        load_speaker_model(str(tmp_path), runtime='torch')
    with pytest.raises(ExportError, match=f'{tmp_path} has no model.onnx; write it with `python -m export onnx'):
        load_speaker_model(str(tmp_path), runtime='onnx')
    with pytest.raises(ExportError, match=f'{tmp_path / "missing"} is not a directory'):
        load_speaker_model(str(tmp_path / 'missing'), runtime='onnx')
    with pytest.raises(ExportError, match="runtime 'tensorflow': expected one of \\['onnx', 'torch'\\]"):
        load_speaker_model(str(tmp_path), runtime='tensorflow')
