"""What a run keeps on disk: the training state carried from checkpoint to checkpoint, checkpoints written atomically
(temporary file, flush, fsync, rename), and run directories: a run (a directory holding a checkpoint) is never
overwritten, and what a failed start left is kept aside.

A checkpoint that cannot be written after a short retry stops the run (CheckpointWriteError): training never goes on
unsaved. Before the first epoch, `check_free_space` compares what the run will hold on disk at once with the free
space of its directory.
"""
from __future__ import annotations

import math
import os
import pickle
import shutil
import sys
import time
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterable

import numpy as np
import torch
from torch import nn

from trainer.distributed import DistEnv, all_ranks_agree
from utils.run_lock import LOCK_FILE, RunLock, lock_run_dir
from utils.atomic import atomic_write
from utils.errors import UserError
from utils.seed import plain_rng_state

LAST = 'checkpoint_last.pt'
BEST = 'checkpoint_best.pt'
ATTEMPTS = 'attempts'  # failed starts' files, one <timestamp> folder each, inside the run directory
JOB_FILE = 'torchrun_job.txt'  # id of the torchrun job training the run: that job's elastic restarts resume it
WRITE_ATTEMPTS = 3  # tries of one checkpoint write before the run stops
RETRY_SECONDS = 1.0  # wait before the second try, doubled before each further one
TENSOR_OVERHEAD = 1024  # bytes a saved tensor costs beyond its data (archive entry, alignment, pickle record), upper
FILE_OVERHEAD = 256 * 1024  # bytes of a checkpoint beyond its tensors (TrainState, history, RNG states), upper
# What an earlier version's checkpoints hold besides tensors and plain values: NumPy's RNG state (an array); allowed
# for them alone (see load), their RNG states then converted to plain values
LEGACY_GLOBALS = [np.dtype, np.ndarray, np.dtypes.UInt32DType, np._core.multiarray._reconstruct]


class CheckpointWriteError(OSError):
    """A file the run cannot go on without (a checkpoint, phases.json, results.json, the export) could not be written,
    or will not fit. The message is the whole story for the user: the path, the bytes it needs, the bytes free, and
    the checkpoint a resumed run continues from."""


class UnsafeCheckpointError(RuntimeError):
    """A checkpoint that holds more than tensors and plain Python values: loading it could run code, so it is
    refused unread."""


class StaleCheckpointError(RuntimeError):
    """The best checkpoint on disk is not the best epoch the run recorded: evaluating or exporting it would report one
    epoch's weights under another epoch's name."""


@dataclass
class TrainState:
    """What a checkpoint holds besides the weights, optimiser and scheduler."""
    epoch: int = 0  # completed epochs
    step: int = 0  # steps done inside epoch + 1 when interrupted, else 0
    best_eer: float = math.inf
    best_epoch: int = 0
    nonfinite_total: int = 0
    nonfinite_run: int = 0  # consecutive skipped steps, across epoch boundaries
    history: list = field(default_factory=list)
    partial: dict = field(default_factory=dict)  # loss sums and step count of an interrupted epoch
    bad_files: list = field(default_factory=list)  # unreadable training files skipped so far
    seconds: float = 0.0  # wall-clock seconds of training and validation so far, summed over resumed sessions

    def add_bad_files(self, paths: list[str]) -> list[str]:
        """Record unreadable training files; return those not seen before (sorted)."""
        new = sorted(set(paths) - set(self.bad_files))
        self.bad_files.extend(new)
        return new


def training_state(module: nn.Module, optimizer: torch.optim.Optimizer, scheduler, state: TrainState, phase: str,
                   rng_states: list, extra: dict | None = None) -> dict:
    """A checkpoint's contents: weights, optimiser, scheduler, TrainState, the phase it belongs to and every rank's
    RNG state (`rng_states`, in rank order), plus `extra` entries (e.g. the model description for export)."""
    return {'model': module.state_dict(), 'optimizer': optimizer.state_dict(), 'scheduler': scheduler.state_dict(),
            'state': state.__dict__.copy(), 'phase': phase, 'rng': rng_states, 'world_size': len(rng_states),
            **(extra or {})}


def restore_training_state(ckpt: dict, path: str, module: nn.Module, optimizer: torch.optim.Optimizer, scheduler,
                           phase: str, rank: int, world_size: int) -> tuple[TrainState, list | None]:
    """Load a checkpoint's weights, optimiser and scheduler in place; return its TrainState and this rank's RNG state
    to restore when the checkpoint was taken inside an epoch by as many ranks (else None: the epoch is re-seeded)."""
    if ckpt.get('phase', phase) != phase:
        raise ValueError(f"checkpoint {path} belongs to training phase {ckpt['phase']!r}, not {phase!r}")
    module.load_state_dict(ckpt['model'])
    optimizer.load_state_dict(ckpt['optimizer'])
    scheduler.load_state_dict(ckpt['scheduler'])
    state = TrainState(**ckpt['state'])
    rng = ckpt['rng'][rank] if state.step and ckpt['world_size'] == world_size else None
    return state, rng


def megabytes(size: int) -> str:
    """A byte count for messages: '4.3 MB', or '78.43 GB' from 1 GB on."""
    return f'{size / 1e6:.1f} MB' if size < 1e9 else f'{size / 1e9:.2f} GB'


def free_bytes(path: str) -> int:
    """Free bytes (for this user) of the file system holding `path`, or its nearest existing parent folder."""
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return shutil.disk_usage(path).free


class _ByteCounter:
    """A write-only stream that counts what is written to it and stores nothing."""

    def __init__(self):
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def serialized_size(state: dict) -> int:
    """The bytes torch.save writes for `state`, counted without keeping them."""
    counter = _ByteCounter()
    torch.save(state, counter)
    return counter.size


def resume_point(run_dir: str) -> str:
    """Which checkpoint of `run_dir` is intact and how to continue from it, for the message of a stopped run."""
    path = os.path.join(run_dir, LAST)
    if not os.path.isfile(path):
        return 'No checkpoint of this run was written yet: free space, then start the run again with a new name='
    try:
        saved = load(path)
        state, phase = TrainState(**saved['state']), saved.get('phase', '')
    except (RuntimeError, TypeError, KeyError):
        return f'{path} could not be read back: free space and check it before resuming with resume=True'
    where = f'{state.epoch} epoch(s) of phase {phase!r} done' + (f', {state.step} step(s) into the next'
                                                                   if state.step else '')
    return f'{path} ({where}) is intact: free space, then continue with: python main.py <same arguments> resume=True'


def os_cause(error: BaseException) -> BaseException:
    """The OSError behind `error` when there is one (torch.save reports a failed write as a RuntimeError whose
    context is the OSError, e.g. ENOSPC), else `error` itself."""
    cause = error
    while not isinstance(cause, OSError) and cause.__context__ is not None:
        cause = cause.__context__
    return cause if isinstance(cause, OSError) else error


def write_failure(what: str, path: str, needed: int, error: BaseException) -> CheckpointWriteError:
    """The error that stops a run whose `what` (e.g. 'checkpoint') could not be written to `path`."""
    return CheckpointWriteError(
        f'could not write the {what} {path} ({os_cause(error)}): it needs {megabytes(needed)}, '
        f'{megabytes(free_bytes(path))} are free there. {resume_point(os.path.dirname(os.path.abspath(path)))}')


def write_or_stop(path: str, write: Callable[[BinaryIO], None], size: Callable[[], int], what: str) -> None:
    """atomic_write(path, write), tried WRITE_ATTEMPTS times with growing waits; raise write_failure (`size()` bytes
    needed) when every try failed. The previous file at `path` stays intact either way."""
    for attempt in range(WRITE_ATTEMPTS):
        try:
            atomic_write(path, write)
            return
        except (OSError, RuntimeError) as error:  # torch.save reports a failed write as a RuntimeError
            if not isinstance(os_cause(error), OSError):
                raise  # not a write that failed: a bug to see as it is
            if attempt + 1 == WRITE_ATTEMPTS:
                raise write_failure(what, path, size(), error) from error
            wait = RETRY_SECONDS * 2 ** attempt
            print(f'could not write {path} ({os_cause(error)}); trying again in {wait:g} s', file=sys.stderr,
                  flush=True)
            time.sleep(wait)


def save_atomic(state: dict, path: str) -> None:
    """Write `state` to `path` so that a crash or full disk leaves the previous file intact; after a short retry a
    write that keeps failing raises CheckpointWriteError (path, size needed, space free, checkpoint to resume)."""
    write_or_stop(path, lambda stream: torch.save(state, stream), lambda: serialized_size(state), 'checkpoint')


def stop_together(failure: CheckpointWriteError | None, env: DistEnv) -> None:
    """Every rank raises when rank 0 (the one that writes) reports a `failure`, so all ranks stop at the same point;
    the other ranks' error says only that rank 0 stopped the run (rank 0's carries the message)."""
    if not all_ranks_agree(failure is None, env):
        raise failure or CheckpointWriteError('rank 0 could not write a file the run needs; it reports why')


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the tensors' data."""
    return sum(t.numel() * t.element_size() for t in tensors)


def checkpoint_estimate(module: nn.Module) -> int:
    """Upper estimate of the bytes of a checkpoint of `module` trained with Adam: its state dict, Adam's two moments
    and step counter per parameter (every parameter: a frozen encoder is trained later), and the overheads."""
    state, parameters = module.state_dict(), list(module.parameters())
    return (tensor_bytes(state.values()) + 2 * tensor_bytes(parameters)
            + (len(state) + 3 * len(parameters)) * TENSOR_OVERHEAD + FILE_OVERHEAD)


def check_free_space(run_dir: str, planned: dict[str, int], others: dict[str, int]) -> None:
    """Raise CheckpointWriteError when the file system of `run_dir` cannot hold at once every planned checkpoint
    (`planned`: file name → estimated bytes) not yet there, a temporary copy of the largest (written before the old
    file is replaced) and the other outputs (`others`: name → bytes, e.g. the export)."""
    largest = max(planned.values())
    parts = [(name, size) for name, size in planned.items() if not os.path.isfile(os.path.join(run_dir, name))]
    parts += [('a temporary copy while a checkpoint is replaced', largest), *others.items()]
    needed, free = sum(size for _, size in parts), free_bytes(run_dir)
    if needed <= free:
        return
    then = ('resume again' if os.path.isfile(os.path.join(run_dir, LAST)) else
            'start the run again with a new name= (this run directory holds no checkpoint yet), or with path_log= on '
            'a larger disk')
    raise CheckpointWriteError(
        f'not enough free space for the run directory {run_dir}: the run will hold {megabytes(needed)} more there at '
        f"once ({', '.join(f'{name} ~{megabytes(size)}' for name, size in parts)}) and {megabytes(free)} are free. "
        f'Free space, then {then}')


def load(path: str, map_location: str | torch.device = 'cpu') -> dict:
    """Load a checkpoint written by save_atomic as data only (torch.load with weights_only=True: tensors and plain
    Python values; nothing in the file is run), its tensors mapped to `map_location`. A file that needs anything else
    is refused (UnsafeCheckpointError), except a checkpoint of an earlier version, whose RNG states were NumPy arrays
    and tensors: exactly those NumPy types are allowed for it, it is read on the CPU (load_state_dict moves the
    weights to their module's device) and its RNG states come back as plain values.
    A missing or unreadable file is named in the error."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        pass  # it holds more than tensors and plain values: an earlier version's checkpoint, or refused below
    except Exception as error:
        raise RuntimeError(f'checkpoint {path} could not be read: {error}') from error
    check_data_only(path)
    try:
        with torch.serialization.safe_globals(LEGACY_GLOBALS):
            ckpt = torch.load(path, map_location='cpu', weights_only=True)  # its RNG tensors are read on the CPU
    except Exception as error:
        raise RuntimeError(f'checkpoint {path} could not be read: {error}') from error
    if 'rng' in ckpt:
        ckpt['rng'] = [plain_rng_state(state) for state in ckpt['rng']]
    return ckpt


def check_data_only(path: str) -> None:
    """Raise UnsafeCheckpointError when the checkpoint at `path` needs any Python object beyond tensors, plain values
    and LEGACY_GLOBALS to load (read from the file's pickle without running any of it)."""
    try:
        needed = set(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception as error:
        raise RuntimeError(f'checkpoint {path} could not be read: {error}') from error
    unsafe = sorted(needed - {f'{g.__module__}.{g.__name__}' for g in LEGACY_GLOBALS})
    if unsafe:
        raise UnsafeCheckpointError(
            f"checkpoint {path} is refused: loading it would run Python code ({', '.join(unsafe[:5])}), and a "
            f'checkpoint is loaded as data only (tensors and plain values); nothing in it was run. Use a checkpoint '
            f'written by this project')


def check_run_checkpoints(run_dir: str) -> None:
    """check_data_only for every checkpoint of `run_dir`, before a resumed run loads any of them."""
    for name in sorted(os.listdir(run_dir)):
        if name.startswith('checkpoint') and name.endswith('.pt'):
            check_data_only(os.path.join(run_dir, name))


@dataclass(frozen=True)
class RunDir:
    """A run directory ready for training."""
    path: str
    resume: bool  # continue from checkpoint_last.pt (else train from epoch 1)
    note: str = ''  # what happened besides creating or reopening it, to print ('' when nothing)
    lock: RunLock | None = None  # the directory's lock, held until the run ends (release() ends it)


def holds_checkpoint(run_dir: str) -> bool:
    """Whether `run_dir` holds any checkpoint: a directory without one is a start that failed before its first save,
    not a run."""
    return os.path.isdir(run_dir) and any(n.startswith('checkpoint') and n.endswith('.pt') for n in os.listdir(run_dir))


def started_by_job(run_dir: str, job_id: str) -> bool:
    """Whether the torchrun job `job_id` is the one that trains the run in `run_dir` (see record_job)."""
    path = os.path.join(run_dir, JOB_FILE)
    if not os.path.isfile(path):
        return False
    with open(path) as f:
        return f.read().strip() == job_id


def record_job(run_dir: str, job_id: str) -> None:
    """Note that the torchrun job `job_id` trains the run in `run_dir`, so that its restarts may resume it."""
    atomic_write(os.path.join(run_dir, JOB_FILE), lambda stream: stream.write(f'{job_id}\n'.encode()))


def set_aside(run_dir: str) -> str | None:
    """Move everything in `run_dir` except earlier attempts and the run's lock into `run_dir/attempts/<timestamp>/` (nothing is deleted);
    the folder it went to, or None when there was nothing to move."""
    entries = sorted(n for n in os.listdir(run_dir) if n not in (ATTEMPTS, LOCK_FILE))
    if not entries:
        return None
    stamp = time.strftime('%Y%m%d-%H%M%S')
    target, index = os.path.join(run_dir, ATTEMPTS, stamp), 0
    while os.path.exists(target):  # two failed starts within a second
        index += 1
        target = os.path.join(run_dir, ATTEMPTS, f'{stamp}-{index}')
    os.makedirs(target)
    for name in entries:
        os.rename(os.path.join(run_dir, name), os.path.join(target, name))
    return target


def prepare_run_dir(path_log: str, project: str, name: str, resume: bool) -> RunDir:
    """Create `path_log/project/name`, or reopen it for `resume`, and take its lock (utils/run_lock.py) for the
    caller to hold until the run ends (RunDir.lock): a directory a live run holds is refused (UserError naming its
    host and PID), and a run (a directory holding a checkpoint) is never overwritten. A directory whose lock is free
    and which holds no checkpoint is the leftover of a start that failed before its first save: its files are moved
    into attempts/<timestamp>/ and the run starts at epoch 1 (also when `resume` asks to continue it, with a note)."""
    run_dir = os.path.join(path_log, project, name)
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise UserError(f"run directory {run_dir} is a file, not a directory: choose another name= or path_log=")
    existed = os.path.isdir(run_dir)
    if resume and not existed:
        raise UserError(f"argument 'resume': there is no run {run_dir} to resume; check name= and path_log=, or "
                        f"leave resume=True out to start it")
    os.makedirs(run_dir, exist_ok=True)
    lock = lock_run_dir(run_dir)
    try:
        return _reopen(run_dir, resume, fresh=not existed, lock=lock)
    except BaseException:
        lock.release()
        raise


def _reopen(run_dir: str, resume: bool, fresh: bool, lock: RunLock) -> RunDir:
    """prepare_run_dir once the lock of `run_dir` is held: `fresh` when this start created the directory."""
    if holds_checkpoint(run_dir):
        if not resume:
            raise UserError(f"run directory {run_dir} already exists and is never overwritten: continue it with "
                            f"resume=True, or start a new run with name=<new name>")
        if not os.path.isfile(os.path.join(run_dir, LAST)):
            raise UserError(f"argument 'resume': {run_dir} holds no {LAST} to resume from; start a new run with "
                            f"name=<new name>")
        return RunDir(run_dir, True, lock=lock)
    if fresh:
        return RunDir(run_dir, False, lock=lock)
    moved = set_aside(run_dir)
    kept = f'; its files are kept in {moved}' if moved else ''
    note = (f'note: {run_dir} holds no checkpoint (a start that stopped before its first save){kept}. '
            + ('resume=True has nothing to continue: training starts at epoch 1' if resume else
               'This run starts in it at epoch 1'))
    return RunDir(run_dir, False, note, lock)
