"""Exact resume: a run stopped by SIGTERM (at an epoch boundary, then mid-epoch) and resumed ends with the
same parameters, validation history and final metrics as the uninterrupted run."""
import os

import pytest
import torch

import main
from helpers_trainer import comparable_results, sigterm_after_steps, tiny_arguments
from trainer import checkpoint

STEPS_PER_EPOCH = 4  # 36 training utterances, batch 8, drop_last


def _run_dir(root, name):
    return os.path.join(root, 'runs', 'OS-KDFT2', name)


@pytest.mark.slow  # three runs
def test_interrupted_and_resumed_run_equals_straight_run(root, monkeypatch):
    main.main(tiny_arguments(root, name='straight'))

    calls = sigterm_after_steps(monkeypatch, {STEPS_PER_EPOCH, STEPS_PER_EPOCH + 1})  # end of epoch 1, then 1 step
    main.main(tiny_arguments(root, name='resumed'))
    stopped = checkpoint.load(os.path.join(_run_dir(root, 'resumed'), checkpoint.LAST))
    assert (stopped['state']['epoch'], stopped['state']['step']) == (0, STEPS_PER_EPOCH)
    assert not os.path.exists(os.path.join(_run_dir(root, 'resumed'), 'results.json'))

    main.main(tiny_arguments(root, name='resumed', resume=True))
    stopped = checkpoint.load(os.path.join(_run_dir(root, 'resumed'), checkpoint.LAST))
    assert (stopped['state']['epoch'], stopped['state']['step']) == (1, 1)

    main.main(tiny_arguments(root, name='resumed', resume=True))
    assert calls['n'] == 2 * STEPS_PER_EPOCH  # every step ran exactly once over the three sessions

    a = checkpoint.load(os.path.join(_run_dir(root, 'straight'), checkpoint.LAST))
    b = checkpoint.load(os.path.join(_run_dir(root, 'resumed'), checkpoint.LAST))
    assert a['model'].keys() == b['model'].keys()
    for key in a['model']:
        assert torch.equal(a['model'][key], b['model'][key]), key
    assert a['state']['history'] == b['state']['history']
    ra = comparable_results(_run_dir(root, 'straight'))
    rb = comparable_results(_run_dir(root, 'resumed'))
    assert ra == rb
