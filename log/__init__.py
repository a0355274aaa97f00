"""Experiment logging: local files, wandb and neptune behind the original OS-KDFT builder API.

Use `build_logger(args, run_dir, source_dir, credentials)` from main (rank 0 only), or the builder directly:
`LogModuleController.Builder(name, project).use_local(path_log)....build()`.
"""
from log.base import Logger
from log.builder import TRACKERS, LogModuleController, TrackerWarning
from log.from_args import build_logger
from log.local import LocalLogger
from log.neptune_logger import NeptuneLogger
from log.wandb_logger import WandbLogger

__all__ = ['Logger', 'LogModuleController', 'TrackerWarning', 'TRACKERS', 'build_logger',
           'LocalLogger', 'WandbLogger', 'NeptuneLogger']
