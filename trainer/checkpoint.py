"""Checkpoints written atomically (temporary file, flush, fsync, rename) and run directories never overwritten."""
from __future__ import annotations

import os
import warnings

import torch

from utils.atomic import atomic_write

LAST = 'checkpoint_last.pt'
BEST = 'checkpoint_best.pt'


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
