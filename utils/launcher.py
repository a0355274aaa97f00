"""What a launcher (torchrun, or any that sets RANK and WORLD_SIZE) told this process, read from its environment: this
rank's place in the job, the job's identity across elastic restarts, and whether its restarts can resume. The one
place the project reads the launcher's environment variables; trainer/distributed.py starts and joins the ranks."""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class LaunchedRank:
    """This process as one rank of a launcher's job: its global rank, the job's world size, its GPU on the node."""
    rank: int
    world_size: int
    local_rank: int


def launched_rank() -> LaunchedRank | None:
    """This process's rank in a launcher's job (RANK, WORLD_SIZE, LOCAL_RANK), or None when no launcher started it."""
    if 'RANK' not in os.environ or 'WORLD_SIZE' not in os.environ:
        return None
    return LaunchedRank(int(os.environ['RANK']), int(os.environ['WORLD_SIZE']), int(os.environ.get('LOCAL_RANK', 0)))


@dataclass(frozen=True)
class ElasticJob:
    """The torchrun job this rank belongs to: an id that stays the same when torchrun restarts the worker group and
    differs for any other job, and this node's restart count (TORCHELASTIC_RESTART_COUNT)."""
    job_id: str
    restart: int


def elastic_job() -> ElasticJob | None:
    """This process's torchrun job (None when torchrun did not start it). The id joins torchrun's run id (--rdzv_id,
    or the one --standalone draws) with the host and process id of the agent that started this rank: global rank 0
    keeps its agent across the restarts of a job, and a new torchrun command is a new agent. (The restart count
    alone cannot say it: each node's agent counts only the restarts it caused.)"""
    if 'TORCHELASTIC_RESTART_COUNT' not in os.environ:
        return None
    run_id = os.environ.get('TORCHELASTIC_RUN_ID', 'none')
    return ElasticJob(f'{run_id}@{socket.gethostname()}:{os.getppid()}', int(os.environ['TORCHELASTIC_RESTART_COUNT']))


def restart_store_note() -> str:
    """A note when torchrun may restart the workers while sharing its rendezvous store with them ('' otherwise): the
    restarted group then finds the previous attempt's addresses in that store and cannot connect (seen with gloo and
    torch 2.14; pytorch/pytorch#135712 for nccl), unless torchrun runs with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1."""
    may_restart = int(os.environ.get('TORCHELASTIC_MAX_RESTARTS', '0')) > 0
    if not may_restart or os.environ.get('TORCHELASTIC_USE_AGENT_STORE') != 'True':
        return ''
    return ('note: torchrun may restart this job (--max-restarts) but shares its rendezvous store with the workers; '
            'a restarted worker group then reads the previous attempt\'s addresses from it and fails to connect. '
            'Launch with TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 torchrun ... so that restarts resume (see README)')
