"""Reliability: invalid arguments stop at once (user errors, before any run directory exists), broken audio is
skipped (or stops early when a trial needs it), non-finite losses are skipped and counted, and a run of them stops
with a loadable checkpoint."""
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

import main
import trainer.methods
from data.audio import AudioError
from helpers_trainer import tiny_arguments
from trainer import checkpoint
from utils.errors import UserError


def _run_dir(root, name):
    return os.path.join(root, 'runs', 'OS-KDFT2', name)


@pytest.mark.parametrize('override, key', [
    (dict(batch_size=7, cpu_processes=2), 'batch_size'), (dict(crop_size=0), 'crop_size'),
    (dict(seg_size=-1), 'seg_size'), (dict(num_seg=0), 'num_seg'), (dict(init_teacher_idx=[0, 9]), 'init_teacher_idx'),
    (dict(target_layer_idx=[1, 2, 99]), 'target_layer_idx'), (dict(path_train='/no/such/dir'), 'path_train'),
    (dict(curriculum='sudden'), 'curriculum'), (dict(student_hidden_layer_size=64), 'student_hidden_layer_size'),
    (dict(log_interval_s=-1.0), 'log_interval_s')])
def test_invalid_arguments_stop_before_anything_runs(root, override, key):
    name = f'invalid_{key}'
    with pytest.raises(UserError, match=f"'{key}'"):
        main.main(tiny_arguments(root, name=name, **override))
    assert not os.path.exists(_run_dir(root, name))


def _break(path, how):
    if how == 'corrupt':
        open(path, 'wb').write(b'RIFF\x00\x00\x00\x00garbage, not audio' * 10)
    elif how == 'empty':
        sf.write(path, np.zeros(0, dtype=np.float32), 16000)
    else:  # truncated inside the header
        data = open(path, 'rb').read()
        open(path, 'wb').write(data[:30])


def test_broken_training_files_are_skipped_and_named(root, tmp_path):
    args = dict(a.split('=', 1) for a in tiny_arguments(root))
    dev = str(tmp_path / 'dev')
    shutil.copytree(args['path_train'], dev)
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(dev) for f in fs)
    broken = {how: files[i] for how, i in (('corrupt', 3), ('empty', 11), ('truncated', 20))}
    for how, path in broken.items():
        _break(path, how)
    main.main(tiny_arguments(root, name='bad_audio', path_train=dev, epoch=1, max_bad_audio_fraction=0.2))
    run = _run_dir(root, 'bad_audio')
    assert os.path.isfile(os.path.join(run, 'results.json'))
    logged = open(os.path.join(run, 'texts', 'bad_audio.txt')).read()
    for path in broken.values():
        assert path in logged
    state = checkpoint.load(os.path.join(run, checkpoint.LAST))['state']
    assert sorted(state['bad_files']) == sorted(broken.values())


def test_broken_file_needed_by_a_trial_stops_before_training(root, tmp_path):
    args = dict(a.split('=', 1) for a in tiny_arguments(root))
    test = str(tmp_path / 'test')
    shutil.copytree(args['path_test'], test)
    victim = sorted(os.path.join(d, f) for d, _, fs in os.walk(test) for f in fs)[2]
    _break(victim, 'empty')
    with pytest.raises(UserError, match=os.path.basename(os.path.dirname(victim))) as stop:
        main.main(tiny_arguments(root, name='bad_trial', path_test=test))
    assert isinstance(stop.value.__cause__, AudioError)
    assert not os.path.exists(_run_dir(root, 'bad_trial'))  # checked before the run directory is made


def _nan_at(monkeypatch, calls_with_nan):
    real, calls = trainer.methods.JointKDFT.forward, {'n': 0}

    def forward(self, *args, **kwargs):
        out = real(self, *args, **kwargs)
        calls['n'] += 1
        if calls['n'] in calls_with_nan:
            out['loss'] = out['loss'] * float('nan')
        return out

    monkeypatch.setattr(trainer.methods.JointKDFT, 'forward', forward)
    return calls


def test_a_nan_loss_is_skipped_and_counted(root, monkeypatch):
    _nan_at(monkeypatch, {2})
    main.main(tiny_arguments(root, name='one_nan'))
    run = _run_dir(root, 'one_nan')
    state = checkpoint.load(os.path.join(run, checkpoint.LAST))['state']
    assert state['nonfinite_total'] == 1 and state['epoch'] == 2
    assert open(os.path.join(run, 'nonfinite_steps.txt')).read().splitlines()[-1] == '[2] nonfinite_steps: 1.0'


@pytest.mark.slow  # a run stopped and resumed
def test_nans_in_a_row_stop_with_a_loadable_checkpoint(root, monkeypatch):
    calls = _nan_at(monkeypatch, set(range(3, 100)))
    with pytest.raises(FloatingPointError, match='3 non-finite losses in a row'):
        main.main(tiny_arguments(root, name='nan_run', max_nonfinite_steps=3))
    assert calls['n'] == 5  # two good steps, then three skipped ones
    saved = checkpoint.load(os.path.join(_run_dir(root, 'nan_run'), checkpoint.LAST))
    assert saved['state']['nonfinite_total'] == 3
    assert all(torch.isfinite(v).all() for v in saved['model'].values() if v.is_floating_point())
