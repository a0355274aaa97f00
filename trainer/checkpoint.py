"""What a run keeps on disk: the training state carried from checkpoint to checkpoint, checkpoints written atomically
(temporary file, flush, fsync, rename), and run directories that are never overwritten."""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from utils.atomic import atomic_write

LAST = 'checkpoint_last.pt'
BEST = 'checkpoint_best.pt'


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


def prepare_run_dir(path_log: str, project: str, name: str, resume: bool) -> str:
    """Create `path_log/project/name`, or return it for `resume`; an existing run is never overwritten."""
    run_dir = os.path.join(path_log, project, name)
    if resume:
        if not os.path.isfile(os.path.join(run_dir, LAST)):
            raise SystemExit(f"argument 'resume': no checkpoint to resume in {run_dir} "
                             f"(expected {os.path.join(run_dir, LAST)})")
        return run_dir
    if os.path.exists(run_dir):
        raise SystemExit(f"run directory {run_dir} already exists and is never overwritten: "
                         f"continue it with resume=True, or start a new run with name=<new name>")
    os.makedirs(run_dir)
    return run_dir
