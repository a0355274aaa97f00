"""A mid-epoch checkpoint resumes on any device: its RNG states are plain values that restore on the CPU whatever
device the weights are mapped to (here `meta`, a non-CPU stand-in for a GPU), and only the current device's CUDA RNG
state is kept (a resume on a node with fewer visible GPUs works)."""
import os
import random

import numpy as np
import pytest
import torch

import main
from arguments import get_args
from data.bundle import build_data
from helpers_trainer import phase_trainer, sigterm_after_steps, tiny_arguments
from trainer import checkpoint
from trainer.distributed import DistEnv
from trainer.methods import phases_of
from trainer.run import build_parts
from utils.seed import get_rng_state, set_rng_state


@pytest.mark.slow
def test_mid_epoch_checkpoint_restores_rng_with_weights_on_meta(tmp_path, monkeypatch):
    root = str(tmp_path)
    argv = tiny_arguments(root, name='stopped', epoch=1)
    sigterm_after_steps(monkeypatch, {1})  # a real SIGTERM after the first step: a mid-epoch checkpoint
    main.main(argv)
    path = os.path.join(root, 'runs', 'OS-KDFT2', 'stopped', checkpoint.LAST)
    on_cpu = checkpoint.load(path)
    assert (on_cpu['state']['epoch'], on_cpu['state']['step']) == (0, 1)

    args = get_args(argv)
    env = DistEnv(0, 1, torch.device('meta'))
    data = build_data(args)
    parts = build_parts(args, env, data)
    phase = phases_of(args)[0]
    trainer = phase_trainer(args, env, data, parts, phase, os.path.dirname(path))
    assert next(trainer.core.parameters()).device.type == 'meta'
    trainer.resume(path)
    assert (trainer.state.epoch, trainer.state.step) == (0, 1)
    assert next(iter(trainer.optimizer.state.values()))['exp_avg'].device.type == 'meta'  # optimiser on the device

    torch.manual_seed(12345)  # some other state, which the restore must replace
    random.seed(12345)
    np.random.seed(12345)
    set_rng_state(trainer.rng_on_resume)
    saved = on_cpu['rng'][0]
    assert torch.equal(torch.get_rng_state(), torch.frombuffer(bytearray(saved['torch']), dtype=torch.uint8))
    assert random.getstate() == saved['python']
    draws = (random.random(), float(np.random.random()), float(torch.rand(1)))
    set_rng_state(trainer.rng_on_resume)  # the same state again gives the same draws
    assert draws == (random.random(), float(np.random.random()), float(torch.rand(1)))
    assert set(saved) == set(get_rng_state())  # 'cuda', where present, is one state: the current device's
