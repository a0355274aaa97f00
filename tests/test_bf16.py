"""bf16 autocast (amp=True) where it cannot change the result: every loss computes in fp32 (a bf16 cosine times an
AAM scale of 32 is ±0.1 in a logit), and evaluation embeds in fp32 even inside autocast, as the export scores. Run on
the CPU under torch.autocast('cpu', torch.bfloat16), which casts the same operations a GPU's autocast does."""
import pytest
import torch

from arguments import get_args
from data.bundle import build_data
from helpers_trainer import phase_trainer, tiny_arguments
from models.losses import AAMSoftmaxLoss, DistilHuBERTLoss, SoftmaxLoss, embedding_mse
from trainer.distributed import DistEnv
from trainer.evaluate import evaluate_trials, extract_embeddings
from trainer.loop import train_step
from trainer.methods import JOINT
from trainer.run import build_parts
from utils.seed import seed_everything

ENV = DistEnv(0, 1, torch.device('cpu'))


def bf16():
    return torch.autocast('cpu', dtype=torch.bfloat16)


def _inputs():
    g = torch.Generator().manual_seed(0)
    embedding = torch.randn(6, 16, generator=g)  # [B, E]
    labels = torch.tensor([0, 1, 2, 3, 4, 0])  # [B]
    student = torch.randn(2, 7, 32, generator=g)  # [B, T, H]
    teacher = torch.randn(2, 4, 7, 32, generator=g)  # [B, Lt+1, T, H]
    return embedding, labels, student, teacher


@pytest.mark.parametrize('name', ['softmax', 'aam', 'kd', 'embedding_mse'])
def test_losses_are_fp32_inside_autocast(name):
    """Inside autocast each loss equals its fp32 value to float32 rounding (bf16 logits or heads would be off by
    ~1e-2) and is a float32 tensor; its gradient flows."""
    torch.manual_seed(0)
    embedding, labels, student, teacher = _inputs()
    weights = torch.tensor([1.0, 2.0, 2.0, 2.0, 2.0, 1.5])
    losses = {'softmax': SoftmaxLoss(16, 6, weights, 0.2, 32.0), 'aam': AAMSoftmaxLoss(16, 6, weights, 0.2, 32.0),
              'kd': DistilHuBERTLoss(32, [1, 2, 3], 1.0, 'sum')}
    if name == 'embedding_mse':
        def compute(x):
            return embedding_mse(x, embedding.flip(0) * 0.3)
        x = embedding
    elif name == 'kd':
        def compute(x):
            return losses['kd'](x, teacher)
        x = student
    else:
        def compute(x):
            return losses[name](x, labels)
        x = embedding
    exact = compute(x)
    leaf = x.clone().requires_grad_(True)
    with bf16():
        inside = compute(leaf)
    assert inside.dtype == torch.float32
    assert abs(inside.item() - exact.item()) <= 1e-6 * max(1.0, abs(exact.item())), (inside.item(), exact.item())
    inside.backward()
    assert leaf.grad.dtype == torch.float32 and torch.isfinite(leaf.grad).all() and leaf.grad.abs().sum() > 0


@pytest.fixture(scope='module')
def joint(root):
    args = get_args(tiny_arguments(root, ft_loss='aam'))
    data = build_data(args)
    seed_everything(args['rand_seed'])
    parts = build_parts(args, ENV, data)
    trainer = phase_trainer(args, ENV, data, parts, JOINT, root)
    trainer.train_set.set_epoch(1)
    trainer.sampler.set_epoch(1)
    return trainer, data


def test_the_joint_step_runs_in_autocast_with_fp32_losses(joint):
    trainer, _ = joint
    batch = next(iter(trainer.loader))
    trainer.model.train()
    with bf16():
        targets = trainer.targets_of(batch)  # [B, Lt+1, T, H], bf16 where the teacher's matmuls ran
        losses = trainer.model(batch, targets)
    assert {name: value.dtype for name, value in losses.items()} == dict.fromkeys(losses, torch.float32)
    losses['loss'].backward()
    grads = [p.grad for p in trainer.core.parameters() if p.requires_grad]
    assert all(g is None or (g.dtype == torch.float32 and torch.isfinite(g).all()) for g in grads)
    assert sum(g is not None for g in grads) > 10
    with bf16():  # the whole step: forward, backward, the non-finite check and Adam, as amp=True runs it on a GPU
        stepped = train_step(trainer.model, trainer.targets_of, batch, trainer.optimizer, ENV, amp=True)
    assert stepped is not None and all(torch.isfinite(torch.tensor(v)) for v in stepped.values())


def test_evaluation_embeds_in_fp32_inside_autocast(joint):
    """Validation, final evaluation, cohort and export all embed through extract_embeddings: inside autocast it gives
    bit for bit the fp32 embeddings, and the trial metrics are the same."""
    trainer, data = joint
    trainer.core.eval()
    exact = extract_embeddings(trainer.core.embed, data.test.eval_set, ENV)
    with bf16():
        inside = extract_embeddings(trainer.core.embed, data.test.eval_set, ENV)
    assert inside[0].dtype == inside[1].dtype == exact[1].dtype == 'float32'
    assert (inside[0] == exact[0]).all() and (inside[1] == exact[1]).all()
    with bf16():
        metrics, _ = evaluate_trials(*inside, data.test.keys, data.test.trials[0])
    assert metrics == evaluate_trials(*exact, data.test.keys, data.test.trials[0])[0]
