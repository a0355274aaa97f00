"""Augmentation in a run: a run with aug_prob > 0 stopped mid-epoch and resumed ends with the same parameters and
history as the uninterrupted run, its training crops are augmented as drawn, and a missing or empty augmentation
folder stops the start with one line naming the key before any run directory exists."""
import os

import numpy as np
import pytest
import torch

import main
from arguments import get_args
from data.bundle import build_data
from data.demo import make_demo_noise_set
from helpers_trainer import phase_trainer, sigterm_after_steps, tiny_arguments
from trainer import checkpoint
from trainer.distributed import DistEnv
from trainer.methods import METHODS
from trainer.run import build_parts
from utils.errors import UserError

STEPS_PER_EPOCH = 4  # 36 training utterances, batch 8, drop_last
SETTINGS = dict(epoch=1, crop_size=4000, seg_size=4000, aug_prob=0.6, aug_rows='both')


@pytest.fixture(scope='module')
def noise(root):
    return make_demo_noise_set(os.path.join(root, 'noise'), seed=1)


def _run_dir(root: str, name: str) -> str:
    return os.path.join(root, 'runs', 'OS-KDFT2', name)


def _arguments(root: str, noise, **extra) -> list[str]:
    return tiny_arguments(root, path_musan=noise.path_musan, path_rir=noise.path_rir, **SETTINGS, **extra)


def test_the_training_set_of_a_run_augments_as_drawn(root, noise):
    args = get_args(_arguments(root, noise))
    data = build_data(args)
    assert data.augmenter is not None and len(data.augmenter.lists.rirs) == 24
    env = DistEnv(0, 1, torch.device('cpu'))
    trainer = phase_trainer(args, env, data, build_parts(args, env, data), METHODS['os_kdft2'].phases[0], root)
    augmented = trainer.train_set
    plain = get_args(tiny_arguments(root, crop_size=4000, seg_size=4000))
    reference = phase_trainer(plain, env, build_data(plain), build_parts(plain, env, data),
                              METHODS['os_kdft2'].phases[0], root).train_set
    changed = [[not np.array_equal(a, b) for a, b in zip(augmented[i][:2], reference[i][:2])]
               for i in range(len(augmented))]
    n = len(changed)
    for row in (0, 1):  # KD and FT rows (aug_rows='both'), each augmented with probability 0.6
        count = sum(c[row] for c in changed)
        assert abs(count - 0.6 * n) <= 4 * np.sqrt(n * 0.24), (row, count)


@pytest.mark.slow  # three runs
def test_an_augmented_run_resumes_exactly(root, noise, monkeypatch):
    main.main(_arguments(root, noise, name='aug_straight'))
    calls = sigterm_after_steps(monkeypatch, {2})  # mid-epoch
    main.main(_arguments(root, noise, name='aug_resumed'))
    stopped = checkpoint.load(os.path.join(_run_dir(root, 'aug_resumed'), checkpoint.LAST))
    assert (stopped['state']['epoch'], stopped['state']['step']) == (0, 2)
    main.main(_arguments(root, noise, name='aug_resumed', resume=True))
    assert calls['n'] == STEPS_PER_EPOCH
    a = checkpoint.load(os.path.join(_run_dir(root, 'aug_straight'), checkpoint.LAST))
    b = checkpoint.load(os.path.join(_run_dir(root, 'aug_resumed'), checkpoint.LAST))
    for key in a['model']:
        assert torch.equal(a['model'][key], b['model'][key]), key
    assert a['state']['history'] == b['state']['history']


def test_missing_or_empty_augmentation_folders_stop_the_start(root, noise, tmp_path):
    empty = tmp_path / 'musan'
    for part in ('noise', 'music', 'speech'):
        os.makedirs(empty / part)
    with pytest.raises(UserError, match=f"argument 'path_musan': no .wav or .flac files below '{empty / 'noise'}'"):
        main.main(tiny_arguments(root, name='empty_musan', path_musan=str(empty), path_rir=noise.path_rir,
                                 **SETTINGS))
    with pytest.raises(UserError, match="argument 'aug_prob': got 0.6; .*give path_musan .* and path_rir"):
        main.main(tiny_arguments(root, name='modern_without_musan', recipe='modern'))
    with pytest.raises(UserError, match=f"argument 'path_rir': got '{tmp_path / 'nowhere'}'; that path does not"):
        main.main(tiny_arguments(root, name='no_rir', path_musan=noise.path_musan, path_rir=str(tmp_path / 'nowhere'),
                                 **SETTINGS))
    for name in ('empty_musan', 'modern_without_musan', 'no_rir'):
        assert not os.path.exists(_run_dir(root, name))
