"""What the epoch loop is told (FitConfig) and what it carries from checkpoint to checkpoint (TrainState).

One Trainer runs one training phase of a method (trainer/methods.py); the phase's name is in its config and in
every checkpoint it writes, so a resumed run knows which phase to continue.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from trainer import checkpoint


@dataclass
class FitConfig:
    """Loop settings, taken from arguments.py by trainer/build.py."""
    epochs: int
    seed: int
    batch_size: int  # per process
    run_dir: str
    seg_size: int  # TTA segment, stored in checkpoints for exports
    num_seg: int
    amp: bool = True
    num_workers: int = 0
    max_nonfinite_steps: int = 10
    progress: bool = True
    phase: str = 'joint'  # the phase this loop trains, recorded in every checkpoint
    validate: bool = True  # speaker validation and best-epoch selection after every epoch
    best_name: str = checkpoint.BEST  # file (in run_dir) of the best validated state
    log_prefix: str = ''  # prepended to every metric name ('' for the last phase of a method)
    label: str = ''  # printed before every epoch line, e.g. '[precomp 1/2: kd] '


@dataclass
class TrainState:
    """What a checkpoint holds besides the weights and optimiser."""
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
