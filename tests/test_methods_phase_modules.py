"""The two-phase baselines' fine-tuning phases learn: the speaker loss falls over repeated passes on a few fixed
batches (a tiny run has too few steps for it to fall epoch over epoch), a frozen encoder stays exactly as it was;
the phases that learn from labels run no teacher, and postcomp's fine-tuned teacher stays frozen."""
import pytest
import torch

from arguments import get_args
from helpers_trainer import tiny_arguments
from trainer.baselines import FineTunedTeacher
from data.bundle import build_data
from trainer.build import build_parts, build_trainer
from trainer.distributed import DistEnv
from trainer.methods import METHOD_PHASES
from trainer.steps import Batch, train_step
from utils.seed import seed_everything

PASSES = 10
ENV = DistEnv(0, 1, torch.device('cpu'))


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    return str(tmp_path_factory.mktemp('phase_modules'))


def _phase_trainer(root: str, method: str, index: int):
    args = get_args(tiny_arguments(root, method=method, lr=5e-3, lr_min=5e-3))
    data = build_data(args)
    seed_everything(args['rand_seed'])
    parts = build_parts(args, ENV, data)
    trainer = build_trainer(args, ENV, data, None, root, parts, METHOD_PHASES[method][index], best_name='unused',
                            log_prefix='', label='')
    trainer.train_set.set_epoch(1)
    trainer.sampler.set_epoch(1)
    return trainer, [Batch.from_loader(items, ENV.device) for items in trainer.loader]


def _mean_losses(trainer, batches, epoch: int) -> list[float]:
    """Mean loss of every pass over `batches`, training as epoch `epoch` of the phase."""
    trainer.core.start_epoch(epoch)
    trainer.model.train()
    means = []
    for _ in range(PASSES):
        losses = [train_step(trainer.model, trainer.teacher, b, trainer.optimizer, ENV, amp=False,
                             targets_of=trainer.core.targets)['loss'] for b in batches]
        means.append(sum(losses) / len(losses))
    return means


@pytest.mark.parametrize('method, index, epoch, frozen', [
    ('precomp', 1, 1, True), ('precomp', 1, 6, False), ('postcomp', 0, 6, False)])
def test_speaker_fine_tuning_phases_learn(root, method, index, epoch, frozen):
    """The speaker loss of a fine-tuning phase falls, with its encoder frozen (epoch 1 of freeze_epochs = 5: only the
    back-end and classifier learn, the encoder stays bit-identical) or trained (epoch 6). The distillation phases'
    losses fall within a tiny run already (test_methods_two_phase.py)."""
    trainer, batches = _phase_trainer(root, method, index)
    encoder = trainer.core.student
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    means = _mean_losses(trainer, batches, epoch)
    assert trainer.core.frozen == frozen
    assert sum(means[-3:]) < 0.9 * sum(means[:3]), means
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items()) == frozen


def test_label_phases_run_no_teacher_and_the_fine_tuned_teacher_stays_frozen(root):
    precomp_ft, _ = _phase_trainer(root, 'precomp', 1)
    postcomp_ft, _ = _phase_trainer(root, 'postcomp', 0)
    assert precomp_ft.teacher is None and postcomp_ft.teacher is None
    distil, batches = _phase_trainer(root, 'postcomp', 1)
    teacher = distil.teacher
    assert isinstance(teacher, FineTunedTeacher)
    distil.model.train()
    assert not teacher.training and not teacher.encoder.training
    assert not any(p.requires_grad for p in teacher.parameters())
    hidden, embedding = teacher(batches[0].x_kd, batches[0].x_ft)  # [B, Lt+1, T, H], [B, E]
    assert hidden.shape[:2] == (batches[0].x_kd.shape[0], 4) and embedding.shape == (batches[0].x_ft.shape[0], 16)
    again = teacher(batches[0].x_kd, batches[0].x_ft)
    assert torch.equal(hidden, again[0]) and torch.equal(embedding, again[1])  # eval mode: deterministic
