"""Processes and ranks: spawn one process per GPU (as the original), join torchrun's ranks, or gloo on CPU.

Only this file and main.py know how processes start; the rest reads a `DistEnv`. Under torchrun every rank runs
main.py: main joins the process group first (torchrun_group), global rank 0 alone checks the arguments and data and
prepares the run directory while the others wait (run_on_main_rank), then every rank trains.
"""
from __future__ import annotations

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
from torch.distributed.nn.functional import all_reduce as differentiable_all_reduce

from data.workers import stop_signals_blocked, stop_signals_handled
from utils.errors import EXIT_USER_ERROR, UserError
from utils.launcher import ElasticJob, elastic_job, launched_rank, restart_store_note  # noqa: F401  (main.py's)

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
    try:
        ids = [int(x) for x in usable_gpu.split(',') if x.strip()]
    except ValueError:
        raise SystemExit(f"argument 'usable_gpu': got {usable_gpu!r}, expected comma-separated GPU ids like '0,1'")
    bad = [i for i in ids if i >= torch.cuda.device_count()]
    if bad:
        raise SystemExit(f"argument 'usable_gpu': GPUs {bad} do not exist ({torch.cuda.device_count()} visible)")
    return ids


def launched_by_torchrun() -> bool:
    """Whether a launcher (torchrun, or any that sets RANK and WORLD_SIZE) started this process as one rank."""
    return launched_rank() is not None


def planned_world_size(usable_gpu: str, cpu_processes: int) -> int:
    """How many processes `launch` will run: torchrun's WORLD_SIZE, else one per GPU, else `cpu_processes`."""
    launched = launched_rank()
    if launched is not None:
        return launched.world_size
    return len(gpu_ids(usable_gpu)) or cpu_processes


def _worker(index: int, fn: Callable, world_size: int, devices: list[str], port: int, payload) -> None:
    """Entry point of a spawned process: join the process group, then run `fn(env, payload)`."""
    device = torch.device(devices[index])
    backend = 'nccl' if device.type == 'cuda' else 'gloo'
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    if world_size > 1:
        dist.init_process_group(backend, init_method=f'tcp://127.0.0.1:{port}', rank=index, world_size=world_size)
    try:
        fn(DistEnv(index, world_size, device), payload)
    finally:
        if world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


@contextmanager
def torchrun_group() -> Iterator[DistEnv | None]:
    """Under torchrun: join its process group for the block (gloo on CPU; nccl on the GPU LOCAL_RANK names) and yield
    this rank's DistEnv (global rank and world size from the launcher). Otherwise yield None."""
    launched = launched_rank()
    if launched is None:
        yield None
        return
    cuda = torch.cuda.is_available()
    device = torch.device(f'cuda:{launched.local_rank}') if cuda else torch.device('cpu')
    if device.type == 'cuda':
        torch.cuda.set_device(device)
    dist.init_process_group('nccl' if device.type == 'cuda' else 'gloo')
    try:
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


def launch(fn: Callable, payload, usable_gpu: str = '', cpu_processes: int = 1, joined: DistEnv | None = None) -> None:
    """Run `fn(env, payload)` on every rank.

    `joined`: this process is already one rank of a launcher's job (torchrun, see torchrun_group), and `fn` runs here
    as that rank. Otherwise one process is spawned per GPU in `usable_gpu`, or `cpu_processes` gloo processes when no
    GPU is used.
    """
    if joined is not None:
        fn(joined, payload)
        return
    ids = gpu_ids(usable_gpu)
    devices = [f'cuda:{i}' for i in ids] or ['cpu'] * cpu_processes
    if len(devices) == 1:
        _worker(0, fn, 1, devices, 0, payload)
    else:
        with stop_signals_blocked():  # started with them blocked, the resource tracker the ranks share (a Python
            resource_tracker.ensure_running()  # process of this group) outlives a group-wide SIGUSR1 as well
        context = mp.spawn(_worker, args=(fn, len(devices), devices, free_port(), payload), nprocs=len(devices),
                           join=False)

        def forward(signum, frame):  # preemption (or Slurm's SIGUSR1) reaches every rank: all save and stop
            for process in context.processes:
                if process.is_alive():
                    os.kill(process.pid, signum)

        with stop_signals_handled(forward):
            while not context.join():
                pass


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
        stats = differentiable_all_reduce(stats)
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


def all_ranks_agree(flag: bool, env: DistEnv) -> bool:
    """True only if `flag` is True on every rank (so all ranks take the same branch)."""
    if not env.distributed:
        return flag
    t = torch.tensor([0 if flag else 1], device=env.device)
    dist.all_reduce(t)
    return int(t.item()) == 0
