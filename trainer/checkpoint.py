"""What a run keeps on disk: the training state carried from checkpoint to checkpoint, checkpoints written atomically
(temporary file, flush, fsync, rename), and run directories: a run (a directory holding a checkpoint) is never
overwritten, and what a failed start left is kept aside."""
from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from utils.atomic import atomic_write
from utils.errors import UserError

LAST = 'checkpoint_last.pt'
BEST = 'checkpoint_best.pt'
ATTEMPTS = 'attempts'  # failed starts' files, one <timestamp> folder each, inside the run directory
JOB_FILE = 'torchrun_job.txt'  # id of the torchrun job training the run: that job's elastic restarts resume it


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


def save_atomic(state: dict, path: str) -> bool:
    """Write `state` to `path` so that a crash or full disk leaves the previous file intact.

    Returns False (with a warning saying why) when the write fails; the old file is untouched then.
    """
    try:
        atomic_write(path, lambda stream: torch.save(state, stream))
        return True
    except (OSError, RuntimeError) as error:
        warnings.warn(f'could not write checkpoint {path}: {error}; the previous checkpoint is kept')
        return False


def load(path: str, map_location: str | torch.device = 'cpu') -> dict:
    """Load a checkpoint written by save_atomic, naming the file when it is missing or unreadable."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint {path} does not exist')
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:
        raise RuntimeError(f'checkpoint {path} could not be read: {error}') from error


@dataclass(frozen=True)
class RunDir:
    """A run directory ready for training."""
    path: str
    resume: bool  # continue from checkpoint_last.pt (else train from epoch 1)
    note: str = ''  # what happened besides creating or reopening it, to print ('' when nothing)


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
    """Move everything in `run_dir` except earlier attempts into `run_dir/attempts/<timestamp>/` (nothing is deleted);
    the folder it went to, or None when there was nothing to move."""
    entries = sorted(n for n in os.listdir(run_dir) if n != ATTEMPTS)
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
    """Create `path_log/project/name`, or reopen it for `resume`; a run (a directory holding a checkpoint) is never
    overwritten. A directory without any checkpoint is the leftover of a start that failed before its first save:
    its files are moved into attempts/<timestamp>/ and the run starts at epoch 1 (also when `resume` asks to
    continue it, with a note)."""
    run_dir = os.path.join(path_log, project, name)
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise UserError(f"run directory {run_dir} is a file, not a directory: choose another name= or path_log=")
    if holds_checkpoint(run_dir):
        if not resume:
            raise UserError(f"run directory {run_dir} already exists and is never overwritten: continue it with "
                            f"resume=True, or start a new run with name=<new name>")
        if not os.path.isfile(os.path.join(run_dir, LAST)):
            raise UserError(f"argument 'resume': {run_dir} holds no {LAST} to resume from; start a new run with "
                            f"name=<new name>")
        return RunDir(run_dir, True)
    if not os.path.isdir(run_dir):
        if resume:
            raise UserError(f"argument 'resume': there is no run {run_dir} to resume; check name= and path_log=, or "
                            f"leave resume=True out to start it")
        os.makedirs(run_dir)
        return RunDir(run_dir, False)
    moved = set_aside(run_dir)
    kept = f'; its files are kept in {moved}' if moved else ''
    note = (f'note: {run_dir} holds no checkpoint (a start that stopped before its first save){kept}. '
            + ('resume=True has nothing to continue: training starts at epoch 1' if resume else
               'This run starts in it at epoch 1'))
    return RunDir(run_dir, False, note)
