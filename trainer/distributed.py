"""Processes and ranks: spawn one process per GPU (as the original), join torchrun's ranks, or gloo on CPU.

Only this file and main.py know how processes start; the rest reads a `DistEnv`. Under torchrun every rank runs
main.py: main joins the process group first (torchrun_group), global rank 0 alone checks the arguments and data and
prepares the run directory while the others wait (run_on_main_rank), then every rank trains.
"""
from __future__ import annotations

import datetime
import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import resource_tracker
from typing import Callable, Iterator, TypeVar

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

from data.workers import stop_signals_blocked, stop_signals_handled
from utils.hardware import apply_numerics, start_line
from utils.errors import EXIT_USER_ERROR, UserError
from utils.launcher import launched_rank

T = TypeVar('T')


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands: its rank among `world_size` and the device it computes on."""
    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def free_port() -> int:
    """A TCP port the OS reports free on this host (bound, then released) for the rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def gpu_ids(usable_gpu: str) -> list[int]:
    """The GPU ids to spawn on: those listed in `usable_gpu` ('0,1'), all visible when empty, none for 'cpu'."""
    if not torch.cuda.is_available() or usable_gpu.strip() == 'cpu':
        return []
    if usable_gpu.strip() == '':
        return list(range(torch.cuda.device_count()))
    return [int(x) for x in usable_gpu.split(',')]  # ids of visible GPUs: arguments.check_args checked them


def visible_gpus() -> int:
    """How many CUDA GPUs this process sees (0 without CUDA)."""
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def launched_by_torchrun() -> bool:
    """Whether a launcher (torchrun, or any that sets RANK and WORLD_SIZE) started this process as one rank."""
    return launched_rank() is not None


def planned_world_size(usable_gpu: str, cpu_processes: int) -> int:
    """How many processes `launch` will run: torchrun's WORLD_SIZE, else one per GPU, else `cpu_processes`."""
    launched = launched_rank()
    if launched is not None:
        return launched.world_size
    return len(gpu_ids(usable_gpu)) or cpu_processes


class ProcessGroupTimeout(RuntimeError):
    """A rank waited longer than the process group's timeout (process_group_timeout_min) for the others."""


def backend_of(device: torch.device) -> str:
    """The process-group backend for ranks on `device`: nccl for CUDA GPUs, gloo otherwise."""
    return 'nccl' if device.type == 'cuda' else 'gloo'


@contextmanager
def timeout_named(timeout_min: float) -> Iterator[None]:
    """Inside the block, a process-group operation that timed out (gloo's and the rendezvous store's 'timed out',
    nccl's DistBackendError) raises ProcessGroupTimeout naming the key that sets the limit and what to do."""
    try:
        yield
    except ProcessGroupTimeout:
        raise
    except (RuntimeError, dist.DistError) as error:
        if 'timed out' not in str(error).lower():
            raise
        raise ProcessGroupTimeout(
            f'a process-group operation waited longer than process_group_timeout_min={timeout_min:g} minutes for the '
            f'other ranks (a slow rank 0 preparing the data, a crashed or stuck rank); if the ranks are only slow, '
            f'raise process_group_timeout_min. {type(error).__name__}: {error}') from error


def join_group(backend: str, timeout_min: float, init_method: str | None = None, rank: int = -1, world_size: int = -1,
               device_id: torch.device | None = None) -> None:
    """init_process_group with the run's explicit timeout (process_group_timeout_min): the one way every process of
    this project joins a group, so nccl (default 10 min) and gloo (30 min) wait equally long. The other arguments as
    init_process_group takes them (none under torchrun: its environment says where and who)."""
    with timeout_named(timeout_min):
        dist.init_process_group(backend, init_method=init_method, timeout=datetime.timedelta(minutes=timeout_min),
                                world_size=world_size, rank=rank, device_id=device_id)


def _worker(index: int, fn: Callable, world_size: int, devices: list[str], port: int, payload,
            timeout_min: float) -> None:
    """Entry point of a spawned process: join the process group, then run `fn(env, payload)`."""
    device = torch.device(devices[index])
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    with timeout_named(timeout_min):
        if world_size > 1:
            join_group(backend_of(device), timeout_min, init_method=f'tcp://127.0.0.1:{port}', rank=index,
                       world_size=world_size)
        try:
            fn(DistEnv(index, world_size, device), payload)
        finally:
            if world_size > 1 and dist.is_initialized():
                dist.destroy_process_group()


def local_rank_device(local_rank: int, gpus: int) -> torch.device:
    """The device of torchrun's local rank `local_rank` on a node with `gpus` visible GPUs: cuda:<local rank>, or the
    CPU where there is no GPU. More processes than GPUs is a UserError (two ranks on one GPU make nccl fail later,
    obscurely)."""
    if gpus == 0:
        return torch.device('cpu')
    if local_rank >= gpus:
        raise UserError(f'torchrun started local rank {local_rank}, but this node has {gpus} visible GPU(s) '
                        f'(cuda:0..cuda:{gpus - 1}): give --nproc_per_node={gpus} or fewer, one process per GPU')
    return torch.device('cuda', local_rank)


@contextmanager
def torchrun_group(timeout_min: float) -> Iterator[DistEnv | None]:
    """Under torchrun: join its process group for the block (gloo on CPU; nccl on the GPU LOCAL_RANK names), waiting
    up to `timeout_min` minutes in any collective, and yield this rank's DistEnv (global rank and world size from the
    launcher). Otherwise yield None."""
    launched = launched_rank()
    if launched is None:
        yield None
        return
    device = local_rank_device(launched.local_rank, torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    join_group(backend_of(device), timeout_min)
    try:
        with timeout_named(timeout_min):
            yield DistEnv(launched.rank, launched.world_size, device)
    finally:
        dist.destroy_process_group()


def run_on_main_rank(fn: Callable[[], T], env: DistEnv) -> T:
    """Run `fn()` on rank 0 only and hand its result to every rank; the other ranks wait for it here (a barrier).
    When it fails, every rank stops together: rank 0 raises the error (reported once, there), the others exit quietly
    with the status it implies (EXIT_USER_ERROR for a UserError, else 1)."""
    outcome: list = [None]
    if env.is_main:
        try:
            outcome[0] = ('done', fn())
        except UserError:
            dist.broadcast_object_list([('failed', EXIT_USER_ERROR)], src=0)
            raise
        except BaseException:
            dist.broadcast_object_list([('failed', 1)], src=0)
            raise
    dist.broadcast_object_list(outcome, src=0)
    kind, value = outcome[0]
    if kind == 'failed':
        raise SystemExit(value)
    return value


def launch(fn: Callable, payload, usable_gpu: str = '', cpu_processes: int = 1, joined: DistEnv | None = None, *,
           timeout_min: float) -> None:
    """Run `fn(env, payload)` on every rank.

    `joined`: this process is already one rank of a launcher's job (torchrun, see torchrun_group), and `fn` runs here
    as that rank. Otherwise one process is spawned per GPU in `usable_gpu`, or `cpu_processes` gloo processes when no
    GPU is used, joined in one group whose collectives wait up to `timeout_min` minutes (process_group_timeout_min).
    """
    if joined is not None:
        fn(joined, payload)
        return
    ids = gpu_ids(usable_gpu)
    devices = [f'cuda:{i}' for i in ids] or ['cpu'] * cpu_processes
    if len(devices) == 1:
        _worker(0, fn, 1, devices, 0, payload, timeout_min)
    else:
        with stop_signals_blocked():  # started with them blocked, the resource tracker the ranks share (a Python
            resource_tracker.ensure_running()  # process of this group) outlives a group-wide SIGUSR1 as well
        context = mp.spawn(_worker, args=(fn, len(devices), devices, free_port(), payload, timeout_min),
                           nprocs=len(devices), join=False)

        def forward(signum, frame):  # preemption (or Slurm's SIGUSR1) reaches every rank: all save and stop
            for process in context.processes:
                if process.is_alive():
                    os.kill(process.pid, signum)

        with stop_signals_handled(forward):
            while not context.join():
                pass


class SumAllReduce(torch.autograd.Function):
    """Differentiable all_reduce(SUM): every rank gets the sum over ranks, and the gradient of each rank's input is
    the sum over ranks of the output gradients (what torch.distributed.nn.functional.all_reduce does, without its
    deprecation warning on every rank and epoch)."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad


class GlooSyncBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d whose training statistics cover the global batch, for CPU process groups.

    torch's SyncBatchNorm only runs on accelerators; this one reduces (count, sum, sum of squares)
    with a differentiable all_reduce, so gloo runs match a single process on the same global batch.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        dims = [0] if x.dim() == 2 else [0, 2]
        count = torch.tensor(float(x.numel() // x.shape[1]), dtype=x.dtype)
        stats = torch.cat([x.sum(dims), (x * x).sum(dims), count.view(1)])  # [2C + 1]
        stats = SumAllReduce.apply(stats)  # [2C + 1]
        channels = x.shape[1]
        total = stats[-1]
        mean = stats[:channels] / total  # [C]
        var = stats[channels:2 * channels] / total - mean * mean  # [C], biased
        with torch.no_grad():
            self.num_batches_tracked += 1
            m = self.momentum
            self.running_mean.mul_(1 - m).add_(mean.detach() * m)
            self.running_var.mul_(1 - m).add_(var.detach() * total / (total - 1) * m)
        shape = [1, channels] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        return y * self.weight.view(shape) + self.bias.view(shape) if self.affine else y


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Make every BatchNorm global-batch: torch's SyncBatchNorm on GPU, GlooSyncBatchNorm on CPU."""
    if device.type != 'cpu':
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm1d):
            synced = GlooSyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                       child.track_running_stats)
            synced.load_state_dict(child.state_dict())
            setattr(module, name, synced)
        else:
            convert_sync_batchnorm(child, device)
    return module


def gather_objects(obj, env: DistEnv) -> list:
    """Every rank's `obj`, in rank order (a one-element list when not distributed)."""
    if not env.distributed:
        return [obj]
    out = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def gather_to_main(obj, env: DistEnv) -> list | None:
    """Every rank's `obj` in rank order on rank 0 (None on the others): only rank 0 receives, so large results (the
    embeddings of 145 k utterances) are not copied to every rank, nor through every GPU under nccl."""
    if not env.distributed:
        return [obj]
    out = [None] * env.world_size if env.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def all_ranks_agree(flag: bool, env: DistEnv) -> bool:
    """True only if `flag` is True on every rank (so all ranks take the same branch)."""
    if not env.distributed:
        return flag
    t = torch.tensor([0 if flag else 1], device=env.device)
    dist.all_reduce(t)
    return int(t.item()) == 0


def set_up_rank(env: DistEnv, tf32: bool, amp: bool, deterministic: bool, timeout_min: float) -> None:
    """Every rank, before its first CUDA operation: apply_numerics; then rank 0 prints the start line (every rank's
    device gathered)."""
    apply_numerics(tf32, deterministic)
    name = torch.cuda.get_device_name(env.device) if env.device.type == 'cuda' else ''
    ranks = gather_objects((str(env.device), name), env)
    if env.is_main:
        print(start_line([device for device, _ in ranks], [name for _, name in ranks if name],
                         backend_of(env.device) if env.distributed else None, tf32, amp, deterministic,
                         timeout_min), flush=True)
