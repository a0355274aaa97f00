"""Exact resume of a two-phase run: postcomp stopped by SIGTERM in the middle of phase 1, resumed, stopped again in
the middle of phase 2, resumed again, ends with the same weights, histories, phase files and final metrics as the
uninterrupted run, and every training step ran exactly once."""
import json
import os

import pytest
import torch

import main
from helpers_trainer import comparable_results, sigterm_after_steps, tiny_arguments
from trainer import checkpoint

SETTINGS = dict(method='postcomp', epoch=2, epoch_KD=2, freeze_epochs=1)
STEPS_PER_EPOCH = 4  # 36 training utterances, batch 8, drop_last
STOP_AFTER = {STEPS_PER_EPOCH + 2, 3 * STEPS_PER_EPOCH + 1}  # phase 1 epoch 2 step 2; phase 2 epoch 2 step 1
FILES = (checkpoint.LAST, checkpoint.BEST, 'checkpoint_teacher_ft_best.pt', 'checkpoint_teacher_ft_last.pt')


def _run_dir(root, name):
    return os.path.join(root, 'runs', 'OS-KDFT2', name)


def _state(root, name, file=checkpoint.LAST):
    saved = checkpoint.load(os.path.join(_run_dir(root, name), file))
    return saved['phase'], saved['state']['epoch'], saved['state']['step']


@pytest.mark.slow  # signals, and four runs
def test_postcomp_stopped_in_each_phase_resumes_there_and_equals_the_straight_run(tmp_path, monkeypatch):
    root = str(tmp_path)
    main.main(tiny_arguments(root, name='straight', **SETTINGS))

    calls = sigterm_after_steps(monkeypatch, STOP_AFTER)
    main.main(tiny_arguments(root, name='resumed', **SETTINGS))
    assert _state(root, 'resumed') == ('teacher_ft', 1, 2)
    assert not os.path.exists(os.path.join(_run_dir(root, 'resumed'), 'checkpoint_teacher_ft_last.pt'))

    main.main(tiny_arguments(root, name='resumed', resume=True, **SETTINGS))
    assert _state(root, 'resumed') == ('kd', 1, 1)
    assert _state(root, 'resumed', 'checkpoint_teacher_ft_last.pt') == ('teacher_ft', 2, 0)
    assert not os.path.exists(os.path.join(_run_dir(root, 'resumed'), 'results.json'))
    phases = json.load(open(os.path.join(_run_dir(root, 'resumed'), 'phases.json')))
    assert list(phases) == ['teacher_ft']

    main.main(tiny_arguments(root, name='resumed', resume=True, **SETTINGS))
    assert calls['n'] == 4 * STEPS_PER_EPOCH  # every step of both phases ran exactly once over the three sessions

    for name in FILES:
        a = checkpoint.load(os.path.join(_run_dir(root, 'straight'), name))
        b = checkpoint.load(os.path.join(_run_dir(root, 'resumed'), name))
        assert a['phase'] == b['phase'] and a['model'].keys() == b['model'].keys(), name
        for key in a['model']:
            assert torch.equal(a['model'][key], b['model'][key]), (name, key)
        assert a['state']['history'] == b['state']['history'], name
    assert comparable_results(_run_dir(root, 'straight')) == comparable_results(_run_dir(root, 'resumed'))
