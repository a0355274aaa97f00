"""The two-phase baselines' fine-tuning phases learn: the speaker loss falls over repeated passes on a few fixed
batches (a tiny run has too few steps for it to fall epoch over epoch), a frozen encoder stays exactly as it was;
the phases that learn from labels run no teacher, and postcomp's fine-tuned teacher gives fixed targets."""
import pytest
import torch

from arguments import get_args
from data.bundle import build_data
from helpers_trainer import phase_trainer, tiny_arguments
from trainer.distributed import DistEnv
from trainer.loop import train_step
from trainer.methods import METHODS
from trainer.run import build_parts
from utils.seed import seed_everything

PASSES = 10
ENV = DistEnv(0, 1, torch.device('cpu'))


def _phase_trainer(root: str, method: str, index: int):
    args = get_args(tiny_arguments(root, method=method, lr=5e-3, lr_min=5e-3))
    data = build_data(args)
    seed_everything(args['rand_seed'])
    parts = build_parts(args, ENV, data)
    trainer = phase_trainer(args, ENV, data, parts, METHODS[method].phases[index], root)
    trainer.train_set.set_epoch(1)
    trainer.sampler.set_epoch(1)
    return trainer, parts, list(trainer.loader)


def _mean_losses(trainer, batches, epoch: int) -> list[float]:
    """Mean loss of every pass over `batches`, training as epoch `epoch` of the phase."""
    trainer.start_epoch(epoch)
    trainer.model.train()
    means = []
    for _ in range(PASSES):
        losses = [train_step(trainer.model, trainer.targets_of, b, trainer.optimizer, ENV, amp=False)['loss']
                  for b in batches]
        means.append(sum(losses) / len(losses))
    return means


@pytest.mark.parametrize('method, index, epoch, frozen', [
    ('precomp', 1, 1, True), ('precomp', 1, 6, False), ('postcomp', 0, 6, False)])
def test_speaker_fine_tuning_phases_learn(root, method, index, epoch, frozen):
    """The speaker loss of a fine-tuning phase falls, with its encoder frozen (epoch 1 of freeze_epochs = 5: only the
    back-end and classifier learn, the encoder stays bit-identical) or trained (epoch 6). The distillation phases'
    losses fall within a tiny run already (test_methods_two_phase.py)."""
    trainer, _, batches = _phase_trainer(root, method, index)
    encoder = trainer.core.student
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    means = _mean_losses(trainer, batches, epoch)
    assert trainer.core.frozen == frozen
    assert sum(means[-3:]) < 0.9 * sum(means[:3]), means
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items()) == frozen


def test_label_phases_run_no_teacher_and_the_fine_tuned_teacher_gives_fixed_targets(root):
    for method, index in (('precomp', 1), ('postcomp', 0)):
        trainer, parts, batches = _phase_trainer(root, method, index)
        calls = []
        parts.teacher.register_forward_hook(lambda *_: calls.append(1))
        trainer.start_epoch(1)
        trainer.model.train()
        assert train_step(trainer.model, trainer.targets_of, batches[0], trainer.optimizer, ENV, amp=False)
        assert trainer.targets_of(batches[0]) is None and calls == [], method
    distil, parts, batches = _phase_trainer(root, 'postcomp', 1)
    parts.teacher_ft.train()
    distil.model.train()
    hidden, embedding = distil.targets_of(batches[0])  # [B, Lt+1, T, H], [B, E]
    assert not parts.teacher_ft.training and not parts.teacher_backend.training
    assert not hidden.requires_grad and not embedding.requires_grad
    assert hidden.shape[:2] == (batches[0].x_kd.shape[0], 4) and embedding.shape == (batches[0].x_ft.shape[0], 16)
    again = distil.targets_of(batches[0])
    assert torch.equal(hidden, again[0]) and torch.equal(embedding, again[1])  # eval mode: deterministic
