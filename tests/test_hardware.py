"""What a run computes on, said and set before training: TF32 and deterministic algorithms set explicitly on every
rank, one start line naming devices, world size, backend, precision and determinism, and a machine whose GPUs torch
cannot use stops with one error instead of training on the CPU."""
import os

import pytest
import torch

from arguments import SYSTEM_ARGS, check_devices, get_args
from data.bundle import build_data
from helpers_trainer import phase_trainer, tiny_arguments
from trainer.distributed import DistEnv, local_rank_device
from trainer.loop import train_step
from trainer.methods import JOINT
from trainer.run import build_parts
from utils.errors import UserError
from utils.hardware import CUBLAS_WORKSPACE, apply_numerics, start_line, unusable_cuda
from utils.seed import seed_everything


@pytest.fixture
def numerics():
    """Put torch's numeric flags and CUBLAS_WORKSPACE_CONFIG back as they were after the test."""
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark)
    workspace = os.environ.pop('CUBLAS_WORKSPACE_CONFIG', None)
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags[:2]
    torch.use_deterministic_algorithms(flags[2])
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags[3:]
    os.environ.pop('CUBLAS_WORKSPACE_CONFIG', None)
    if workspace is not None:
        os.environ['CUBLAS_WORKSPACE_CONFIG'] = workspace


def test_defaults_are_stated():
    args = get_args([])
    assert (args['tf32'], args['deterministic'], args['amp']) == (True, False, False)
    assert SYSTEM_ARGS['tf32'] is True  # the release's NGC 23.08 container: TF32 for matmul and cuDNN


def test_tf32_and_deterministic_are_set_explicitly_both_ways(numerics):
    torch.backends.cudnn.benchmark = True
    apply_numerics(tf32=True, deterministic=True)
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    assert not torch.backends.cudnn.benchmark
    assert os.environ['CUBLAS_WORKSPACE_CONFIG'] == CUBLAS_WORKSPACE
    apply_numerics(tf32=False, deterministic=False)
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32  # cuDNN's default is on
    assert not torch.are_deterministic_algorithms_enabled() and not torch.backends.cudnn.deterministic
    os.environ['CUBLAS_WORKSPACE_CONFIG'] = ':16:8'  # the user's own valid choice is kept
    apply_numerics(tf32=False, deterministic=True)
    assert os.environ['CUBLAS_WORKSPACE_CONFIG'] == ':16:8'


def test_start_line_names_devices_world_size_backend_precision_and_determinism():
    assert start_line(['cpu'], [], None, tf32=True, amp=False, deterministic=False, timeout_min=60.0) == \
        'hardware: 1 process on cpu, no process group | precision: fp32 | deterministic: off'
    assert start_line(['cpu', 'cpu'], [], 'gloo', tf32=True, amp=True, deterministic=True, timeout_min=60.0) == \
        ('hardware: 2 processes on cpu, gloo process group (process_group_timeout_min=60) | precision: fp32 '
         '(amp=True applies to GPUs only) | deterministic: on')
    assert start_line(['cuda:0', 'cuda:1'], ['NVIDIA H100', 'NVIDIA H100'], 'nccl', tf32=True, amp=False,
                      deterministic=False, timeout_min=90.0) == (
        'hardware: 2 processes on cuda:0, cuda:1 (NVIDIA H100), nccl process group (process_group_timeout_min=90) | '
        'precision: TF32 (matmul + cuDNN) | deterministic: off')
    assert 'precision: fp32 (TF32 off) |' in start_line(['cuda:0'], ['A100'], None, False, False, False, 60.0)
    assert ('precision: bf16 autocast in the training step, TF32 (matmul + cuDNN) elsewhere (losses, validation, '
            'evaluation)') in start_line(['cuda:0'], ['A100'], None, True, True, False, 60.0)


def test_gpus_torch_cannot_use_are_named():
    nodes = ['/dev/nvidia0', '/dev/nvidia1']
    too_old = unusable_cuda(nodes, None, available=False, cuda_build='13.0')
    assert '/dev/nvidia0, /dev/nvidia1' in too_old and 'CUDA 13.0' in too_old and 'driver' in too_old
    assert 'CPU-only build' in unusable_cuda(nodes, '0,1', available=False, cuda_build=None)
    assert unusable_cuda(nodes, None, available=True, cuda_build='13.0') == ''
    assert unusable_cuda([], None, available=False, cuda_build='13.0') == ''  # no GPU: the CPU is the machine
    for hidden in ('', '-1'):  # hidden on purpose
        assert unusable_cuda(nodes, hidden, available=False, cuda_build='13.0') == ''


def test_unusable_gpus_stop_the_run_unless_the_cpu_is_asked_for():
    problem = unusable_cuda(['/dev/nvidia0'], None, available=False, cuda_build='13.0')
    for usable_gpu in ('', '0'):
        with pytest.raises(SystemExit) as stop:
            check_devices(usable_gpu, 0, problem)
        assert str(stop.value).startswith("argument 'usable_gpu'") and 'usable_gpu=cpu' in str(stop.value)
        assert '/dev/nvidia0' in str(stop.value)
    check_devices('cpu', 0, problem)  # on purpose: runs, and the start line says cpu
    check_devices('', 0, '')


def test_torchrun_local_ranks_get_their_gpu_or_a_clear_error():
    assert local_rank_device(0, 0) == torch.device('cpu') and local_rank_device(3, 0) == torch.device('cpu')
    assert local_rank_device(1, 2) == torch.device('cuda', 1)
    with pytest.raises(UserError, match=r'local rank 2, but this node has 2 visible GPU\(s\).*--nproc_per_node=2'):
        local_rank_device(2, 2)


def test_a_training_step_runs_with_deterministic_algorithms(root, numerics):
    """deterministic=True raises for an operation without a deterministic kernel: the joint step of the CPU has none
    such, and gives the same losses as with torch's defaults (the CPU's kernels are deterministic either way)."""
    env = DistEnv(0, 1, torch.device('cpu'))
    losses = {}
    for deterministic in (False, True):
        apply_numerics(tf32=True, deterministic=deterministic)
        args = get_args(tiny_arguments(root, deterministic=deterministic))
        data = build_data(args)
        seed_everything(args['rand_seed'])
        trainer = phase_trainer(args, env, data, build_parts(args, env, data), JOINT, root)
        trainer.train_set.set_epoch(1)
        trainer.sampler.set_epoch(1)
        batch = next(iter(trainer.loader))
        seed_everything(args['rand_seed'], 1, 0)
        trainer.model.train()
        losses[deterministic] = train_step(trainer.model, trainer.targets_of, batch, trainer.optimizer, env, amp=False)
    assert losses[True] == losses[False] and losses[True]['loss'] > 0
