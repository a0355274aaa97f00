"""Placement without a GPU: every phase module's forward and backward, and the validation embedding, with the model and
the batch on the `meta` device. A tensor made on the CPU inside a forward or a loss (torch.tensor(...) without
device=, a CPU buffer created on the fly) meets meta tensors there and fails with a device mismatch, as it would meet
CUDA tensors on a GPU; the first test shows the stand-in catches exactly that."""
import pytest
import torch
from torch import nn

from arguments import get_args
from data.bundle import build_data
from data.curriculum import Batch
from helpers_trainer import tiny_arguments
from trainer.distributed import DistEnv
from trainer.methods import LMFT, METHODS
from trainer.run import build_parts
from utils.seed import seed_everything

META = torch.device('meta')
ENV = DistEnv(0, 1, torch.device('cpu'))  # the parts are built on the CPU, then moved, as build_parts moves them
ROWS, SAMPLES = 4, 8000


class MakesACpuTensor(nn.Module):
    """What the test must catch: a tensor created on the CPU inside forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.arange(x.shape[-1], dtype=x.dtype)  # [B, S]


def test_a_cpu_tensor_inside_forward_fails_on_meta():
    with pytest.raises(RuntimeError, match='device'):
        MakesACpuTensor()(torch.zeros(2, 5, device=META))
    assert MakesACpuTensor()(torch.ones(2, 5)).sum().item() == 20.0  # and runs where everything is on the CPU


def _batch() -> Batch:
    return Batch(torch.randn(ROWS, SAMPLES, device=META), torch.randn(ROWS, SAMPLES, device=META),
                 torch.randint(0, 6, (ROWS,), device=META), torch.zeros(ROWS, dtype=torch.bool, device=META), [])


@pytest.fixture(scope='module')
def data_of(root):
    """The arguments and data of each method, read once."""
    found = {}

    def get(method: str):
        if method not in found:
            args = get_args(tiny_arguments(root, method=method, ft_loss='aam' if method == 'os_kdft2' else 'softmax'))
            found[method] = (args, build_data(args))
        return found[method]
    return get


CASES = [('os_kdft2', 'joint', 1), ('os_kdft', 'joint', 1), ('precomp', 'kd', 1), ('precomp', 'ft', 1),
         ('precomp', 'ft', 6), ('postcomp', 'teacher_ft', 6), ('postcomp', 'kd', 1), ('os_kdft2', 'lmft', 1)]


@pytest.mark.parametrize('method, phase_name, epoch', CASES)
def test_every_phase_trains_and_embeds_on_the_meta_device(data_of, method, phase_name, epoch):
    """Forward + backward of the phase (epoch 1 of precomp's ft: encoder frozen; epoch 6: trained), then the
    validation embedding of its speaker model: all outputs and gradients on meta, nothing left on the CPU."""
    args, data = data_of(method)
    phase = {p.name: p for p in (*METHODS[method].phases, LMFT)}[phase_name]
    seed_everything(args['rand_seed'])
    parts = build_parts(args, ENV, data)
    core = phase.module(parts, args)
    parts.to(META)
    core.to(META)
    assert {t.device.type for t in (*parts.parameters(), *parts.buffers(), *core.parameters())} == {'meta'}
    core.start_epoch(epoch)
    core.train()
    batch = _batch()
    losses = core(batch, phase.targets(parts, batch))
    assert {value.device.type for value in losses.values()} == {'meta'}
    assert losses['loss'].dtype == torch.float32 and losses['loss'].shape == ()
    losses['loss'].backward()
    grads = [p.grad for p in core.parameters() if p.requires_grad and p.grad is not None]
    assert len(grads) > 4 and {g.device.type for g in grads} == {'meta'}
    if phase.validates:
        core.eval()
        with torch.no_grad():
            embedding = core.embed(torch.randn(args['num_seg'], args['seg_size'], device=META))  # [K, E]
        assert embedding.device.type == 'meta' and embedding.shape == (args['num_seg'], args['embed_size'])
