"""Audio too short for the model is caught where it enters: the minimum (utils/min_audio.py) is exactly what the
student + back-end need; a too short trial file stops the run before training with one line; a too short training
file is skipped and counted like an unreadable one; `python -m export verify` refuses a 100-sample and a truncated
wav with one `error:` line and exit status 2 on both runtimes."""
import os

import numpy as np
import pytest
import soundfile as sf
import torch

import main
from data.audio import AudioError
from data.curriculum import CurriculumTrainSet
from data.demo import make_demo_corpus
from data.utterance_index import UtteranceIndex
from data.voxceleb import scan_voxceleb, speaker_table
from export.cli import main as export_main
from helpers_export import onnx_setup
from helpers_trainer import TINY_SIZES, tiny_arguments
from utils.errors import EXIT_USER_ERROR, UserError, exit_on_user_error
from utils.min_audio import MIN_AUDIO_SAMPLES

SHORT = 100  # samples: the short file of the issue


def _write_wav(path: str, samples: int, seed: int = 0) -> str:
    """A 16 kHz 16-bit wav of `samples` samples of noise."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    wav = np.random.default_rng(seed).uniform(-0.5, 0.5, samples).astype(np.float32)  # [samples]
    sf.write(path, wav, 16000, subtype='PCM_16')
    return path


def _truncate(source: str, target: str, samples: int) -> str:
    """A copy of the 16-bit wav `source` cut after `samples` samples; its header still promises the full length."""
    with open(source, 'rb') as f:
        data = f.read()
    with open(target, 'wb') as f:
        f.write(data[:44 + 2 * samples])
    return target


def test_the_minimum_is_exactly_what_the_model_needs():
    """The student + back-end of a real export embed MIN_AUDIO_SAMPLES (720) samples and fail one sample shorter."""
    setup = onnx_setup()
    core = setup.core
    assert MIN_AUDIO_SAMPLES == 720
    with torch.no_grad():
        embedding = core.backend(core.student(torch.zeros(1, MIN_AUDIO_SAMPLES), num_kd=0))  # [1, E]
        assert embedding.shape == (1, 16) and torch.isfinite(embedding).all()
        with pytest.raises(ValueError, match='at least 2 frames'):
            core.backend(core.student(torch.zeros(1, MIN_AUDIO_SAMPLES - 1), num_kd=0))


def test_a_100_sample_trial_file_is_refused_before_training(tmp_path):
    """One file the trial list needs holds 100 samples: the run stops at the checks, naming it, its length and the
    minimum, and makes no run directory."""
    root = str(tmp_path)
    argv = tiny_arguments(root, name='short_trial', epoch=1)
    paths = make_demo_corpus(os.path.join(root, 'corpus'), seed=1, **TINY_SIZES)
    with open(paths.path_trials) as f:
        key = f.readline().split()[1]
    short = _write_wav(os.path.join(paths.path_test, key), SHORT)
    with pytest.raises(UserError) as stop:
        main.main(argv)
    assert str(stop.value) == (f'{short} (a file the trial lists need): 100 samples at 16 kHz (6.25 ms), shorter than '
                               f'the 720 samples (45 ms) the model needs: two frames of its CNN front-end for '
                               f'statistics pooling; remove its trials from the lists')
    assert not os.path.exists(os.path.join(root, 'runs'))


def test_a_too_short_training_file_is_skipped_and_counted(tmp_path):
    """A 100-sample dev file is an item's FT file: it is skipped like an unreadable file (a replacement drawn, the
    skip reported with the item), and refused where no bad files are tolerated."""
    for speaker in ('id10000', 'id10001'):
        for utt in range(2):
            _write_wav(str(tmp_path / 'dev' / speaker / 'v' / f'{utt:05d}.wav'), 1600, seed=utt)
    short = _write_wav(str(tmp_path / 'dev' / 'id10000' / 'short' / '00001.wav'), SHORT)
    utts = scan_voxceleb(str(tmp_path / 'dev'))
    row = utts.keys().index('id10000/short/00001.wav')
    first = UtteranceIndex.from_utterances([utts[row]] + [utts[i] for i in range(len(utts)) if i != row])
    table = speaker_table(first)
    with pytest.raises(AudioError, match='100 samples at 16 kHz .* shorter than the 720 samples'):
        CurriculumTrainSet(first, table, [], 800, schedule='none', total_epochs=1, seed=1, kd_audio=False)[0]
    tolerant = CurriculumTrainSet(first, table, [], 800, schedule='none', total_epochs=1, seed=1, kd_audio=False,
                                  max_bad_fraction=0.2)
    with pytest.warns(UserWarning, match='short/00001.wav: 100 samples'):
        _, wav_ft, _, _, skipped = tolerant[0]
    assert skipped == (short,) and tolerant.bad_files == {short}
    assert wav_ft.shape == (800,) and np.abs(wav_ft).max() > 0


@pytest.mark.parametrize('runtime', ['torch', 'onnx'])
def test_export_verify_refuses_short_and_truncated_wavs(tmp_path, capsys, runtime):
    """`python -m export verify` (its entry point, in this process): a 100-sample wav and a wav truncated to 600
    samples each stop with one `error:` line naming the file, its length and the minimum, exit status 2."""
    setup = onnx_setup()
    good = setup.files[setup.pairs[0][0]]
    full = _write_wav(str(tmp_path / 'full.wav'), 16000)
    cases = {_write_wav(str(tmp_path / 'short.wav'), SHORT): SHORT,
             _truncate(full, str(tmp_path / 'truncated.wav'), 600): 600}
    for path, samples in cases.items():
        capsys.readouterr()
        with pytest.raises(SystemExit) as stop:
            exit_on_user_error(lambda: export_main(['verify', '--model', setup.model, '--runtime', runtime, good,
                                                    path]))
        assert stop.value.code == EXIT_USER_ERROR
        err = capsys.readouterr().err
        assert err.startswith(f'error: {path}: {samples} samples at 16 kHz') and err.count('\n') == 1
        assert 'shorter than the 720 samples (45 ms) the model needs' in err
