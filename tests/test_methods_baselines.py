"""The two released baselines at their seams: postcomp's KD data switch, its embedding MSE on the KD rows, a frozen
encoder in eval mode with a fresh Adam when it unfreezes, phases that open only the audio they use, and the learning
rate set before each epoch as the release does."""
import math
import os

import pytest
import torch

import data.curriculum
from arguments import get_args
from data.bundle import build_data
from data.curriculum import Batch
from helpers_trainer import phase_trainer, tiny_arguments
from trainer.distributed import DistEnv
from trainer.methods import METHODS, finetuned_targets
from trainer.run import build_parts
from utils.seed import seed_everything

ENV = DistEnv(0, 1, torch.device('cpu'))


def _trainer(root: str, method: str, index: int, **extra):
    args = get_args(tiny_arguments(root, method=method, **extra))
    data = build_data(args)
    seed_everything(args['rand_seed'])
    parts = build_parts(args, ENV, data)
    trainer = phase_trainer(args, ENV, data, parts, METHODS[method].phases[index], root)
    return args, parts, trainer


def test_postcomp_kd_data_switch_to_voxceleb_at_nine_tenths(root):
    args, _, trainer = _trainer(root, 'postcomp', 1, epoch_KD=10)
    dev = os.path.realpath(args['path_train'])
    train_set = trainer.train_set
    assert train_set.schedule == 'switch' and train_set.total_epochs == 10
    for epoch in range(1, 11):
        train_set.set_epoch(epoch)
        sources = [train_set.kd_source(i) for i in range(len(train_set))]
        from_dev = [os.path.realpath(path).startswith(dev) for _, path in sources]
        assert all(from_dev) == (epoch >= int(0.9 * 10)) and any(from_dev) == (epoch >= 9), epoch
        assert [vox for vox, _ in sources] == from_dev


def test_postcomp_embedding_mse_is_computed_on_the_kd_rows(root):
    _, parts, trainer = _trainer(root, 'postcomp', 1)
    trainer.train_set.set_epoch(1)
    batch = next(iter(trainer.loader))
    width = batch.x_kd.shape[1]
    x_ft = torch.randn(batch.x_kd.shape[0], width, generator=torch.Generator().manual_seed(3))  # FT audio of any kind
    module = trainer.core.eval()
    batches = [Batch(batch.x_kd, scale * x_ft, batch.y, batch.from_vox, []) for scale in (1.0, 3.0)]
    losses = [module(b, finetuned_targets(parts, b)) for b in batches]
    assert torch.equal(losses[0]['loss/mse'], losses[1]['loss/mse'])
    hidden, embedding = finetuned_targets(parts, batch)  # the same KD audio through teacher → its back-end
    student = module.backend(module.student(batch.x_kd))
    assert torch.allclose(losses[0]['loss/mse'], ((student - embedding) ** 2).mean(), rtol=1e-6, atol=0)
    other = Batch(torch.flip(batch.x_kd, dims=[1]), x_ft, batch.y, batch.from_vox, [])
    assert not torch.equal(module(other, finetuned_targets(parts, other))['loss/mse'], losses[0]['loss/mse'])


@pytest.mark.parametrize('method, index', [('precomp', 1), ('postcomp', 0)])
def test_frozen_encoder_runs_in_eval_mode_then_a_fresh_adam_trains_everything(root, method, index):
    _, _, trainer = _trainer(root, method, index, freeze_epochs=2)
    encoder = trainer.core.student
    first = trainer.optimizer
    for epoch in (1, 2):
        trainer.start_epoch(epoch)
        trainer.model.train()
        assert trainer.core.frozen and not encoder.training and trainer.core.backend.training
        assert trainer.optimizer is first
    first.state[next(iter(trainer.core.backend.parameters()))]['marker'] = 1  # state a fresh Adam must not carry
    trainer.start_epoch(3)
    trainer.model.train()
    assert not trainer.core.frozen and encoder.training
    assert trainer.optimizer is not first and len(trainer.optimizer.state) == 0
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group['params']}
    assert optimised == {id(p) for p in trainer.core.parameters() if p.requires_grad}
    assert {id(p) for p in encoder.parameters()} <= optimised


@pytest.mark.parametrize('method, index, unused', [('precomp', 1, 'path_libri'), ('postcomp', 0, 'path_libri'),
                                                   ('precomp', 0, 'path_train')])
def test_a_phase_opens_only_the_audio_it_uses(root, monkeypatch, method, index, unused):
    args, _, trainer = _trainer(root, method, index)
    opened = []
    real = data.curriculum.read_crop

    def read_crop(path, *rest, **kwargs):
        opened.append(os.path.realpath(path))
        return real(path, *rest, **kwargs)

    monkeypatch.setattr(data.curriculum, 'read_crop', read_crop)
    trainer.train_set.set_epoch(1)
    batches = list(trainer.loader)
    assert opened and len(opened) == sum(len(b.y) for b in batches)  # one file per item: the one crop it uses
    folder = os.path.realpath(args[unused])
    assert not any(path.startswith(folder) for path in opened)


def test_learning_rate_is_set_before_each_epoch_as_released(root):
    lr, lr_min, epochs = 2e-3, 1e-4, 3
    _, _, trainer = _trainer(root, 'os_kdft2', 0, lr=lr, lr_min=lr_min, epoch=epochs)
    for epoch in range(1, 2 * epochs + 1):  # T_0 = epochs: back at the base rate at epoch T_0 (a warm restart)
        trainer.start_epoch(epoch)
        expected = lr_min + (lr - lr_min) * (1 + math.cos(math.pi * (epoch % epochs) / epochs)) / 2
        assert trainer.optimizer.param_groups[0]['lr'] == pytest.approx(expected, rel=1e-12)
