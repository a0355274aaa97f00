"""The epoch loop: train, validate (TTA), keep the last and the best checkpoint, evaluate the best state.

Resuming restores model, optimizer, scheduler, epoch, the position inside an interrupted epoch and every
rank's RNG state, so a resumed run continues exactly as the uninterrupted one would have.
"""
from __future__ import annotations

import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from data.curriculum import collate_train
from data.trials import Trials
from export.spec import describe_model
from trainer import checkpoint
from trainer.distributed import DistEnv, all_ranks_agree, gather_objects
from trainer.evaluate import evaluate_trials, extract_embeddings
from trainer.steps import Batch, train_step
from utils.seed import get_rng_state, seed_everything, set_rng_state


@dataclass
class EvalSpec:
    """One evaluation: the utterances to embed, their keys (row order) and the trial lists to score."""
    name: str
    eval_set: Dataset
    keys: list[str]
    trials: list[Trials]


@dataclass
class FitConfig:
    """Loop settings, taken from arguments.py by main.py."""
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


class ResumableSampler(Sampler):
    """DistributedSampler order for an epoch, optionally starting after the first `skip` indices."""

    def __init__(self, dataset: Dataset, env: DistEnv, seed: int):
        self.inner = DistributedSampler(dataset, num_replicas=env.world_size, rank=env.rank,
                                        shuffle=True, seed=seed, drop_last=True)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.inner.set_epoch(epoch)
        self.skip = skip

    def __iter__(self):
        return iter(list(self.inner)[self.skip:])

    def __len__(self) -> int:
        return len(self.inner) - self.skip


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


class Trainer:
    """Runs `fit` and `final_evaluation` for the joint methods on every rank; rank 0 logs and saves."""

    def __init__(self, core: nn.Module, model: nn.Module, teacher: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler, train_set: Dataset, validation: EvalSpec, env: DistEnv, logger, config: FitConfig):
        self.core, self.model, self.teacher = core, model, teacher
        self.optimizer, self.scheduler = optimizer, scheduler
        self.train_set, self.validation, self.env, self.logger, self.cfg = train_set, validation, env, logger, config
        self.sampler = ResumableSampler(train_set, env, config.seed)
        self.loader = DataLoader(train_set, batch_size=config.batch_size, sampler=self.sampler,
                                 num_workers=config.num_workers, collate_fn=collate_train, drop_last=True,
                                 pin_memory=env.device.type == 'cuda', persistent_workers=False)
        self.state = TrainState()
        self.rng_on_resume = None
        self.stop_requested = False

    # ----- checkpoints -----
    def checkpoint_state(self) -> dict:
        return {'model': self.core.state_dict(), 'optimizer': self.optimizer.state_dict(),
                'scheduler': self.scheduler.state_dict(), 'state': self.state.__dict__.copy(),
                'rng': gather_objects(get_rng_state(), self.env), 'world_size': self.env.world_size,
                'export': describe_model(self.core, self.cfg.seg_size, self.cfg.num_seg)}

    def save(self, *names: str) -> None:
        """All ranks take part (RNG states are gathered); rank 0 writes each named checkpoint atomically."""
        state = self.checkpoint_state()
        if self.env.is_main:
            for name in names:
                checkpoint.save_atomic(state, os.path.join(self.cfg.run_dir, name))

    def resume(self, path: str) -> None:
        """Continue from a checkpoint written by `save`."""
        ckpt = checkpoint.load(path, self.env.device)
        self.core.load_state_dict(ckpt['model'])
        self.optimizer.load_state_dict(ckpt['optimizer'])
        self.scheduler.load_state_dict(ckpt['scheduler'])
        self.state = TrainState(**ckpt['state'])
        if self.state.step and ckpt['world_size'] == self.env.world_size:
            self.rng_on_resume = ckpt['rng'][self.env.rank]

    # ----- training -----
    def request_stop(self, signum=None, frame=None) -> None:
        """Signal handler: finish the current step, save a resumable checkpoint, stop."""
        self.stop_requested = True

    def log(self, name: str, value: float, step: int) -> None:
        if self.logger is not None:
            self.logger.log_metric(name, value, step)

    def note_bad_audio(self, paths: list[str], epoch: int) -> None:
        """Count and name the unreadable training files the data loader skipped (rank 0 logs them)."""
        new = sorted(set(paths) - set(self.state.bad_files))
        if not new:
            return
        self.state.bad_files.extend(new)
        if self.logger is not None:
            self.logger.log_text('bad_audio', '\n'.join(f'epoch {epoch}: skipped unreadable {p}' for p in new))
            self.logger.log_metric('bad_audio_files', len(self.state.bad_files), epoch)

    def train_epoch(self, epoch: int) -> dict[str, float] | None:
        """One pass over the training list; None when stopped by a signal (checkpoint written)."""
        skip = self.state.step
        self.train_set.set_epoch(epoch)
        self.sampler.set_epoch(epoch, skip * self.cfg.batch_size)
        batches = iter(self.loader)  # before seeding: creating the iterator draws from torch's RNG
        if self.rng_on_resume is not None:
            set_rng_state(self.rng_on_resume)
            self.rng_on_resume = None
        else:
            seed_everything(self.cfg.seed, epoch, self.env.rank)
        self.model.train()
        sums, count = dict(self.state.partial.get('sums', {})), self.state.partial.get('count', 0)
        started = time.time()
        bar = tqdm(batches, desc=f'epoch {epoch}/{self.cfg.epochs}', disable=not (self.env.is_main and self.cfg.progress),
                   initial=skip, total=skip + len(self.loader), dynamic_ncols=True, leave=False,
                   mininterval=0.5 if sys.stderr.isatty() else 60.0)
        for step, items in enumerate(bar, start=skip + 1):
            self.note_bad_audio(items[4], epoch)
            losses = train_step(self.model, self.teacher, Batch.from_loader(items, self.env.device),
                                self.optimizer, self.env, self.cfg.amp)
            if losses is None:
                self.state.nonfinite_run += 1
                self.state.nonfinite_total += 1
                if self.env.is_main:
                    print(f'epoch {epoch} step {step}: non-finite loss, update skipped '
                          f'({self.state.nonfinite_total} so far)', flush=True)
                if self.state.nonfinite_run >= self.cfg.max_nonfinite_steps:
                    self.state.step = step  # the weights are the last good ones: every bad update was skipped
                    self.state.partial = {'sums': sums, 'count': count}
                    self.save(checkpoint.LAST)
                    raise FloatingPointError(
                        f'{self.state.nonfinite_run} non-finite losses in a row at epoch {epoch} step {step} '
                        f'(max_nonfinite_steps={self.cfg.max_nonfinite_steps}); stopping. The last good weights '
                        f'are in {os.path.join(self.cfg.run_dir, checkpoint.LAST)}')
            else:
                self.state.nonfinite_run = 0
                for name, value in losses.items():
                    sums[name] = sums.get(name, 0.0) + value
                count += 1
                rate = (step - skip) * self.cfg.batch_size * self.env.world_size / (time.time() - started)
                bar.set_postfix(loss=f"{losses['loss']:.3f}", utt_s=f'{rate:.1f}', refresh=False)
            if not all_ranks_agree(not self.stop_requested, self.env):
                self.state.step = step
                self.state.partial = {'sums': sums, 'count': count}
                self.save(checkpoint.LAST)
                return None
        self.scheduler.step()
        self.state.step, self.state.partial = 0, {}
        means = {name: total / max(count, 1) for name, total in sums.items()}
        ranks = gather_objects(means, self.env)
        return {name: float(np.mean([r[name] for r in ranks if name in r])) for name in means}

    def validate(self, epoch: int) -> float | None:
        """TTA EER (%) on the validation trials (rank 0; None elsewhere); logs EER and minDCF."""
        self.core.eval()
        out = extract_embeddings(self.core.embed, self.validation.eval_set, self.env, amp=self.cfg.amp, full=False)
        if out is None:
            return None
        metrics, _ = evaluate_trials(None, out[1], self.validation.keys, self.validation.trials[0])
        for key, value in metrics['tta'].items():
            if key != 'threshold':
                self.log(f'{key}/val', value, epoch)
        return metrics['tta']['eer']

    def fit(self) -> TrainState:
        """Train from the current state to `epochs`, validating every epoch."""
        previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        try:
            for epoch in range(self.state.epoch + 1, self.cfg.epochs + 1):
                started = time.time()
                losses = self.train_epoch(epoch)
                if losses is None:
                    if self.env.is_main:
                        print(f'stopped by signal during epoch {epoch}; checkpoint saved in {self.cfg.run_dir}. '
                              f'Resume with: python main.py <same arguments> resume=True', flush=True)
                    return self.state
                eer = self.validate(epoch)
                eer = gather_objects(eer, self.env)[0]
                self.state.epoch = epoch
                improved = eer < self.state.best_eer
                if improved:
                    self.state.best_eer, self.state.best_epoch = eer, epoch
                self.state.history.append({'epoch': epoch, 'eer_val': eer, **losses})
                if self.env.is_main and self.state.nonfinite_total:
                    self.log('nonfinite_steps', self.state.nonfinite_total, epoch)
                self.save(checkpoint.LAST, *([checkpoint.BEST] if improved else []))
                if self.env.is_main:
                    for name, value in losses.items():
                        self.log(name, value, epoch)
                    self.log('lr', self.optimizer.param_groups[0]['lr'], epoch)
                    print(f'epoch {epoch:3d} | loss {losses.get("loss", float("nan")):.4f} '
                          f'(kd {losses.get("loss/kd", float("nan")):.4f}, ft {losses.get("loss/ft", float("nan")):.4f})'
                          f' | val EER {eer:.2f} % | best {self.state.best_eer:.2f} % @ {self.state.best_epoch}'
                          f' | {time.time() - started:.0f} s', flush=True)
        finally:
            signal.signal(signal.SIGTERM, previous[0])
            signal.signal(signal.SIGINT, previous[1])
        return self.state

    def final_evaluation(self, spec: EvalSpec) -> dict | None:
        """Evaluate the best state on every trial list of `spec`: full, TTA and their mean (rank 0)."""
        gather_objects(None, self.env)  # barrier: rank 0 has finished writing the best checkpoint
        best = os.path.join(self.cfg.run_dir, checkpoint.BEST)
        if os.path.isfile(best):
            self.core.load_state_dict(checkpoint.load(best, self.env.device)['model'])
        self.core.eval()
        out = extract_embeddings(self.core.embed, spec.eval_set, self.env, amp=self.cfg.amp, full=True)
        if out is None:
            return None
        results = {}
        for trials in spec.trials:
            metrics, scores = evaluate_trials(out[0], out[1], spec.keys, trials)
            results[trials.name] = metrics
            for kind, values in metrics.items():
                for key, value in values.items():
                    self.log(f'{key}/final_{trials.name}/{kind}', value, self.state.best_epoch)
            if self.logger is not None and hasattr(self.logger, 'log_det'):
                self.logger.log_det(f'det_{trials.name}', scores['full_tta'], trials.labels)
        return results
