"""Intra-op threads per process: so many that threads x ranks x DataLoader workers fit the cores.

torch starts as many intra-op threads as the machine has cores in every process. With several ranks on a node, each
with DataLoader workers decoding audio, that oversubscribes the cores: on a 2-core machine under load one demo epoch
took about twice as long with torch's default as with one thread, to the same results (README, speed table;
bench/threads.py measures it). `num_threads=0` therefore gives each rank its share of the cores, counting each
loader worker as one busy core; any other value is used as given.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS reports it)."""
    if hasattr(os, 'sched_getaffinity'):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def auto_threads(cores: int, local_ranks: int, workers: int) -> int:
    """Each of `local_ranks` processes on a node of `cores` cores, each feeding `workers` loader workers: the cores
    left per process once every worker has one, shared out (at least 1)."""
    return max(1, cores // (local_ranks * (1 + workers)))


@contextlib.contextmanager
def intra_op_threads(requested: int, world_size: int, workers: int, announce: bool) -> Iterator[int]:
    """Inside the block, this process runs `requested` intra-op threads, or auto_threads when it is 0 (the ranks on
    this node: torchrun's LOCAL_WORLD_SIZE, else `world_size`); printed when `announce`. The previous number is
    restored after, for callers that go on in the same process (compare.py, tests)."""
    before = torch.get_num_threads()
    if requested > 0:
        threads, why = requested, 'num_threads'
    else:
        cores, local_ranks = usable_cores(), int(os.environ.get('LOCAL_WORLD_SIZE', world_size))
        threads = auto_threads(cores, local_ranks, workers)
        why = f'num_threads=0: {cores} cores / ({local_ranks} process(es) on the node x (1 + {workers} loader workers))'
    torch.set_num_threads(threads)
    if announce:
        print(f'intra-op threads per process: {threads} ({why})', flush=True)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)
