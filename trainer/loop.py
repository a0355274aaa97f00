"""The epoch loop of one training phase: train step by step, validate (TTA), keep the last and the best checkpoint,
evaluate the best state.

Resuming restores model, optimizer, scheduler, epoch, the position inside an interrupted epoch and every rank's RNG
state, so a resumed run continues exactly as the uninterrupted one would have. Every phase of every method
(trainer/methods.py) runs through this loop; a phase without speaker validation (precomp's KD phase) only trains and
keeps its last state.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from data.bundle import EvalSpec
from data.cohort import CohortSpec
from data.curriculum import Batch, collate_train
from data.workers import ignore_stop_signals, stop_signals_blocked, stop_signals_handled
from models.description import describe_model
from trainer import checkpoint
from trainer.checkpoint import CheckpointWriteError, StaleCheckpointError, TrainState
from trainer.distributed import DistEnv, all_ranks_agree, gather_objects
from trainer.evaluate import ScoreCohort, build_cohort, cohort_scoring, evaluate_trials, extract_embeddings
from trainer.methods import PhaseModule
from utils.seed import get_rng_state, seed_everything, set_rng_state


@dataclass
class FitConfig:
    """Loop settings, taken from arguments.py by trainer/run.py."""
    epochs: int
    seed: int
    batch_size: int  # per process
    run_dir: str
    seg_size: int  # TTA segment, stored in checkpoints for exports
    num_seg: int
    log_interval_s: float  # seconds between progress lines where the output is not a terminal
    amp: bool = False
    num_workers: int = 0
    max_nonfinite_steps: int = 10
    progress: bool = True  # show the training progress (rank 0)
    phase: str = 'joint'  # the phase this loop trains, recorded in every checkpoint
    validate: bool = True  # speaker validation and best-epoch selection after every epoch
    best_name: str = checkpoint.BEST  # file (in run_dir) of the best validated state
    log_prefix: str = ''  # prepended to every metric name ('' for the last phase of a method)
    label: str = ''  # printed before every epoch line, e.g. '[precomp 1/2: kd] '


def clock_text(seconds: float) -> str:
    """Seconds as h:mm:ss, or m:ss under an hour."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f'{hours}:{minutes:02d}:{secs:02d}' if hours else f'{minutes}:{secs:02d}'


class EpochProgress:
    """The progress of one epoch, shown by rank 0: a tqdm bar when stderr is a terminal; otherwise (a cluster job's
    log file, where a bar would sit at 0 %) a line at most every `interval` seconds with the epoch, step/total,
    loss, items/s and the epoch's ETA."""

    def __init__(self, title: str, skip: int, total: int, items_per_step: int, interval: float, shown: bool):
        self.title, self.skip, self.total, self.interval = title, skip, total, interval
        self.items_per_step = items_per_step
        self.started = self.printed = time.time()
        terminal = sys.stderr.isatty()
        self.bar = (tqdm(desc=title, initial=skip, total=total, dynamic_ncols=True, leave=False, mininterval=0.5)
                    if shown and terminal else None)
        self.lines = shown and not terminal

    def update(self, step: int, loss: float | None) -> None:
        """Step `step` (1-based, counted from the epoch's start) is done; `loss` is None when its update was skipped."""
        now = time.time()
        elapsed = max(now - self.started, 1e-9)
        rate = (step - self.skip) * self.items_per_step / elapsed  # items per second in this session
        if self.bar is not None:
            if loss is not None:
                self.bar.set_postfix(loss=f'{loss:.3f}', utt_s=f'{rate:.1f}', refresh=False)
            self.bar.update(1)
        elif self.lines and now - self.printed >= self.interval:
            self.printed = now
            eta = (self.total - step) * elapsed / (step - self.skip)
            shown = 'skipped' if loss is None else f'{loss:.4f}'
            print(f'{self.title} step {step}/{self.total} | loss {shown} | {rate:.1f} items/s | '
                  f'ETA {clock_text(eta)}', flush=True)

    def close(self) -> None:
        """Remove the bar (the epoch's summary line follows)."""
        if self.bar is not None:
            self.bar.close()


class ResumableSampler(Sampler):
    """DistributedSampler order for an epoch, optionally starting after the first `skip` indices.

    The order depends on (seed, epoch) only, so a run resumed mid-epoch skips exactly the items the interrupted
    session had trained on, and sees the rest in the same order.
    """

    def __init__(self, dataset: Dataset, env: DistEnv, seed: int):
        self.inner = DistributedSampler(dataset, num_replicas=env.world_size, rank=env.rank,
                                        shuffle=True, seed=seed, drop_last=True)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """Select the order of `epoch` and how many of its first indices (this rank's) to leave out."""
        self.inner.set_epoch(epoch)
        self.skip = skip

    def __iter__(self):
        return iter(list(self.inner)[self.skip:])

    def __len__(self) -> int:
        return len(self.inner) - self.skip


def train_step(model: nn.Module, targets_of: Callable[[Batch], object], batch: Batch,
               optimizer: torch.optim.Optimizer, env: DistEnv, amp: bool) -> dict[str, float] | None:
    """Forward, backward and update; returns the losses, or None when a non-finite loss on any rank made every rank
    skip the update together. `targets_of(batch)` is the phase's targets (no graph: frozen models only)."""
    autocast = torch.autocast(env.device.type, dtype=torch.bfloat16, enabled=amp and env.device.type == 'cuda')
    with autocast:
        targets = targets_of(batch)  # e.g. the teacher's hidden states [B, Lt+1, T, H]
        losses = model(batch, targets)
    optimizer.zero_grad(set_to_none=True)
    losses['loss'].backward()  # always, so DDP's gradient reduction stays in step on every rank
    if not all_ranks_agree(bool(torch.isfinite(losses['loss']).item()), env):
        optimizer.zero_grad(set_to_none=True)
        return None
    optimizer.step()
    return {name: float(value.detach()) for name, value in losses.items()}


class StepTally:
    """The bookkeeping of one epoch, which Trainer.train_epoch calls once per step (`step_done`): loss sums over the
    steps that updated, the VoxCeleb share of the KD items, the unreadable files the loader skipped, non-finite
    (skipped) updates, and whether every rank goes on. An interrupted epoch's sums come back from TrainState.partial."""

    def __init__(self, trainer: Trainer, epoch: int):
        self.trainer, self.state, self.env, self.epoch = trainer, trainer.state, trainer.env, epoch
        self.sums: dict[str, float] = dict(self.state.partial.get('sums', {}))
        self.count: int = self.state.partial.get('count', 0)  # steps that updated
        self.nonfinite_limit_hit = False

    def step_done(self, step: int, batch: Batch, losses: dict[str, float] | None) -> bool:
        """Record step `step` (`losses` None: its update was skipped); False when every rank stops here: a stop signal
        reached a rank, or max_nonfinite_steps losses in a row were non-finite (then `nonfinite_limit_hit`)."""
        self.note_bad_audio(batch.skipped)
        self.sums['kd_vox_share'] = self.sums.get('kd_vox_share', 0.0) + float(batch.from_vox.float().mean())
        if losses is None:
            self.note_nonfinite(step)
            if self.state.nonfinite_run >= self.trainer.cfg.max_nonfinite_steps:
                self.nonfinite_limit_hit = True  # the same on every rank: all skipped the same updates
                return False
        else:
            self.state.nonfinite_run = 0
            for name, value in losses.items():
                self.sums[name] = self.sums.get(name, 0.0) + value
            self.count += 1
        return all_ranks_agree(not self.trainer.stop_requested, self.env)

    def note_bad_audio(self, paths: list[str]) -> None:
        """Count and name the unreadable training files the data loader skipped (rank 0 logs them)."""
        new = self.state.add_bad_files(paths)
        if new and self.trainer.logger is not None:
            lines = [f'epoch {self.epoch}: skipped unreadable {path}' for path in new]
            self.trainer.logger.log_text('bad_audio', '\n'.join(lines))
            self.trainer.log('bad_audio_files', len(self.state.bad_files), self.epoch)

    def note_nonfinite(self, step: int) -> None:
        """Count a skipped update (in a row and in total); rank 0 says so."""
        self.state.nonfinite_run += 1
        self.state.nonfinite_total += 1
        if self.env.is_main:
            print(f'epoch {self.epoch} step {step}: non-finite loss, update skipped '
                  f'({self.state.nonfinite_total} so far)', flush=True)

    def partial(self) -> dict:
        """The sums to carry in a checkpoint taken inside the epoch."""
        return {'sums': self.sums, 'count': self.count}

    def epoch_means(self, steps: int) -> dict[str, float]:
        """The epoch's mean losses (over the steps that updated) and VoxCeleb share (over all `steps`), averaged over
        the ranks."""
        means = {name: total / max(self.count, 1) for name, total in self.sums.items() if name != 'kd_vox_share'}
        means['kd_vox_share'] = self.sums.get('kd_vox_share', 0.0) / max(steps, 1)
        ranks = gather_objects(means, self.env)
        return {name: float(np.mean([r[name] for r in ranks if name in r])) for name in means}


class Trainer:
    """Runs `fit` (one phase of a method) and `final_evaluation` on every rank; rank 0 logs and saves.

    `core` is the phase's PhaseModule, `model` the same wrapped in DDP when distributed; `targets(parts, batch)` (the
    phase's Phase.targets, e.g. trainer/methods.py pretrained_targets) computes what the phase learns from with the
    shared model `parts`. `new_optimizer()` builds the phase's optimiser and scheduler (again when the phase module
    asks for a fresh start).
    """

    def __init__(self, *, core: PhaseModule, model: nn.Module, parts: nn.Module,
                 targets: Callable[[nn.Module, Batch], object],
                 new_optimizer: Callable[[], tuple[torch.optim.Optimizer, object]], train_set: Dataset,
                 validation: EvalSpec, env: DistEnv, logger, config: FitConfig):
        self.core, self.model, self.parts, self.targets, self.new_optimizer = core, model, parts, targets, new_optimizer
        self.optimizer, self.scheduler = new_optimizer()
        self.train_set, self.validation, self.env, self.logger, self.cfg = train_set, validation, env, logger, config
        self.sampler = ResumableSampler(train_set, env, config.seed)
        self.loader = DataLoader(train_set, batch_size=config.batch_size, sampler=self.sampler,
                                 num_workers=config.num_workers, collate_fn=collate_train, drop_last=True,
                                 pin_memory=env.device.type == 'cuda', persistent_workers=False,
                                 worker_init_fn=ignore_stop_signals)  # a group-wide stop signal is the parent's
        self.state = TrainState()
        self.evaluated_epoch: int | None = None  # the epoch whose weights final_evaluation evaluated
        self.cohort: ScoreCohort | None = None  # the AS-Norm cohort final_evaluation used (rank 0), for the export
        self.rng_on_resume = None
        self.stop_requested = False
        self.clock = time.time()  # TrainState.seconds counts up to here

    def targets_of(self, batch: Batch) -> object:
        """What the phase learns from for `batch` (no graph: frozen models only)."""
        return self.targets(self.parts, batch)

    # ----- checkpoints -----
    def save(self, *names: str) -> None:
        """All ranks take part (RNG states are gathered); rank 0 writes each named checkpoint atomically, in order. A
        write that keeps failing stops every rank together (CheckpointWriteError): no training goes on unsaved. A
        validated phase's module is a speaker model, so its checkpoints carry its export description. The time since
        the last save is added to TrainState.seconds first."""
        now = time.time()
        self.state.seconds += now - self.clock
        self.clock = now
        extra = {'export': describe_model(self.core, self.cfg.seg_size, self.cfg.num_seg)} if self.cfg.validate else {}
        contents = checkpoint.training_state(self.core, self.optimizer, self.scheduler, self.state, self.cfg.phase,
                                             gather_objects(get_rng_state(), self.env), extra)
        failure = None
        if self.env.is_main:
            try:
                for name in names:
                    checkpoint.save_atomic(contents, os.path.join(self.cfg.run_dir, name))
            except CheckpointWriteError as error:
                failure = error
        checkpoint.stop_together(failure, self.env)

    def resume(self, path: str) -> None:
        """Continue from a checkpoint that `save` wrote in this phase."""
        ckpt = checkpoint.load(path, self.env.device)
        self.core.start_epoch(ckpt['state']['epoch'] + 1)  # the optimiser's parameter set as when it was saved
        self.state, self.rng_on_resume = checkpoint.restore_training_state(
            ckpt, path, self.core, self.optimizer, self.scheduler, self.cfg.phase, self.env.rank, self.env.world_size)

    # ----- training -----
    def request_stop(self, signum=None, frame=None) -> None:
        """Signal handler (SIGTERM, SIGINT, and Slurm's SIGUSR1 warning before a time limit): finish the current step,
        save a resumable checkpoint, stop."""
        self.stop_requested = True

    def log(self, name: str, value: float, step: int) -> None:
        """Log one metric (rank 0), under this phase's prefix."""
        if self.logger is not None:
            self.logger.log_metric(self.cfg.log_prefix + name, value, step)

    def start_epoch(self, epoch: int) -> None:
        """Tell the phase module which epoch starts (a fresh optimiser and scheduler when it asks for one), then set
        the epoch's learning rate as the release does: scheduler.step(epoch) before the epoch's first step."""
        if self.core.start_epoch(epoch):
            self.optimizer, self.scheduler = self.new_optimizer()
            if self.env.is_main:
                print(f'{self.cfg.label}epoch {epoch}: the encoder is trained from now on, with a fresh Adam and '
                      f'scheduler over every trainable parameter (as released)', flush=True)
        self.scheduler.step(epoch)

    def epoch_batches(self, epoch: int) -> Iterator[Batch]:
        """The epoch's batches from where the state stands: the sampler leaves out the `state.step` batches an
        interrupted session trained on, and the RNG streams continue as that session left them (else the epoch is
        seeded)."""
        self.train_set.set_epoch(epoch)
        self.sampler.set_epoch(epoch, self.state.step * self.cfg.batch_size)
        with stop_signals_blocked():  # workers start here: a group-wide stop signal must not kill one starting
            batches = iter(self.loader)  # before seeding: creating the iterator draws from torch's RNG
        self.restore_or_seed_rng(epoch)
        return batches

    def restore_or_seed_rng(self, epoch: int) -> None:
        """Every RNG as the checkpoint left it when resuming inside an epoch, else seeded for (seed, epoch, rank)."""
        if self.rng_on_resume is not None:
            set_rng_state(self.rng_on_resume)
            self.rng_on_resume = None
        else:
            seed_everything(self.cfg.seed, epoch, self.env.rank)

    def train_epoch(self, epoch: int) -> dict[str, float] | None:
        """One pass over the training list; None when stopped by a signal (checkpoint written)."""
        skip = self.state.step
        batches = self.epoch_batches(epoch)
        self.model.train()
        tally = StepTally(self, epoch)
        progress = EpochProgress(title=f'{self.cfg.label}epoch {epoch}/{self.cfg.epochs}', skip=skip,
                                 total=skip + len(self.loader),
                                 items_per_step=self.cfg.batch_size * self.env.world_size,
                                 interval=self.cfg.log_interval_s, shown=self.env.is_main and self.cfg.progress)
        for step, batch in enumerate(batches, start=skip + 1):
            losses = train_step(self.model, self.targets_of, batch.to(self.env.device), self.optimizer, self.env,
                                self.cfg.amp)
            progress.update(step, None if losses is None else losses['loss'])
            if not tally.step_done(step, batch, losses):
                progress.close()
                return self.stop_inside_epoch(epoch, step, tally)
        progress.close()
        self.state.step, self.state.partial = 0, {}
        return tally.epoch_means(steps=skip + len(self.loader))

    def stop_inside_epoch(self, epoch: int, step: int, tally: StepTally) -> None:
        """Save a resumable checkpoint after `step`; return None (a stop signal), or raise FloatingPointError when the
        epoch stopped on too many non-finite losses in a row (the weights are the last good ones: every bad update was
        skipped)."""
        self.state.step, self.state.partial = step, tally.partial()
        self.save(checkpoint.LAST)
        if tally.nonfinite_limit_hit:
            raise FloatingPointError(
                f'{self.state.nonfinite_run} non-finite losses in a row at epoch {epoch} step {step} '
                f'(max_nonfinite_steps={self.cfg.max_nonfinite_steps}); stopping. The last good weights '
                f'are in {os.path.join(self.cfg.run_dir, checkpoint.LAST)}')
        return None

    def validate(self, epoch: int) -> float | None:
        """TTA EER (%) on the validation trials (rank 0; None elsewhere); logs EER and minDCF."""
        self.core.eval()
        out = extract_embeddings(self.core.embed, self.validation.eval_set, self.env, self.cfg.num_workers,
                                 full=False)
        if out is None:
            return None
        metrics, _ = evaluate_trials(None, out[1], self.validation.keys, self.validation.trials[0])
        for key, value in metrics['tta'].items():
            if key != 'threshold':
                self.log(f'{key}/val', value, epoch)
        return metrics['tta']['eer']

    def report_epoch(self, epoch: int, losses: dict[str, float], eer: float | None, seconds: float) -> None:
        """Log the epoch's mean losses, the VoxCeleb share of its KD items and the learning rate; print one line."""
        for name, value in losses.items():
            self.log(name, value, epoch)
        self.log('lr', self.optimizer.param_groups[0]['lr'], epoch)
        parts = ', '.join(f'{name[5:]} {value:.4f}' for name, value in losses.items() if name.startswith('loss/'))
        line = f"{self.cfg.label}epoch {epoch:3d} | loss {losses.get('loss', float('nan')):.4f} ({parts})"
        if eer is not None:
            line += f' | val EER {eer:.2f} % | best {self.state.best_eer:.2f} % @ {self.state.best_epoch}'
        print(f'{line} | {seconds:.0f} s', flush=True)

    def fit(self) -> TrainState:
        """Train from the current state to `epochs`, validating every epoch when the phase validates."""
        self.clock = time.time()
        with stop_signals_handled(self.request_stop):
            for epoch in range(self.state.epoch + 1, self.cfg.epochs + 1):
                started = time.time()
                if self.state.step == 0:
                    self.start_epoch(epoch)
                losses = self.train_epoch(epoch)
                if losses is None:
                    if self.env.is_main:
                        print(f'stopped by signal during {self.cfg.label}epoch {epoch}; checkpoint saved in '
                              f'{self.cfg.run_dir}. Resume with: python main.py <same arguments> resume=True',
                              flush=True)
                    return self.state
                eer = gather_objects(self.validate(epoch), self.env)[0] if self.cfg.validate else None
                self.state.epoch = epoch
                improved = eer is not None and eer < self.state.best_eer
                if improved:
                    self.state.best_eer, self.state.best_epoch = eer, epoch
                self.state.history.append({'epoch': epoch, 'eer_val': eer, **losses})
                if self.env.is_main and self.state.nonfinite_total:
                    self.log('nonfinite_steps', self.state.nonfinite_total, epoch)
                # the best first: if the last then fails, the resume point is the previous epoch, whose retraining
                # writes this best again; the other way round the resume point would name a best never written
                self.save(*([self.cfg.best_name] if improved else []), checkpoint.LAST)
                if self.env.is_main:
                    self.report_epoch(epoch, losses, eer, time.time() - started)
        return self.state

    @property
    def finished(self) -> bool:
        """Whether every epoch of this phase has been trained."""
        return self.state.epoch == self.cfg.epochs

    def load_best(self) -> int:
        """Load the recorded best epoch's weights from its checkpoint; return that epoch. A checkpoint that holds
        another epoch (or is missing) is a StaleCheckpointError, never a silent substitution. A phase with no
        validated epoch (no finite validation EER) keeps its last weights: returns the last epoch."""
        if not (self.cfg.validate and self.state.best_epoch):
            return self.state.epoch
        path = os.path.join(self.cfg.run_dir, self.cfg.best_name)
        recorded = f'this run recorded epoch {self.state.best_epoch} (validation EER {self.state.best_eer:.2f} %)'
        if not os.path.isfile(path):
            raise StaleCheckpointError(f'{path} is missing, but {recorded} as its best: nothing was evaluated or '
                                       f'exported')
        saved = checkpoint.load(path, self.env.device)
        epoch, eer = saved['state']['epoch'], saved['state'].get('best_eer', float('nan'))
        phase = saved.get('phase', self.cfg.phase)
        if (phase, epoch, eer) != (self.cfg.phase, self.state.best_epoch, self.state.best_eer):
            raise StaleCheckpointError(
                f'{path} holds epoch {epoch} of phase {phase!r} (validation EER {eer:.2f} %), but {recorded} as its '
                f"best: evaluating it would report one epoch's weights under another's name, so nothing was evaluated "
                f'or exported. That file can still be exported as what it is: python -m export export --checkpoint '
                f'{path} --out DIR --trials <trial list> --audio-root <test audio>')
        self.core.load_state_dict(saved['model'])
        return self.state.best_epoch

    def final_evaluation(self, spec: EvalSpec, cohort: CohortSpec | None = None) -> dict | None:
        """Evaluate the best state (load_best; its epoch is kept in `evaluated_epoch`) on every trial list of `spec`:
        full, TTA and their mean (rank 0). With a `cohort`, its utterances are embedded the same way, averaged per
        speaker (kept in `self.cohort`), and every kind is AS-Norm normalised too ('<kind>_asnorm' next to it)."""
        gather_objects(None, self.env)  # barrier: rank 0 has finished writing the best checkpoint
        self.evaluated_epoch = self.load_best()
        self.core.eval()
        out = extract_embeddings(self.core.embed, spec.eval_set, self.env, self.cfg.num_workers, full=True)
        pool = None if cohort is None else extract_embeddings(self.core.embed, cohort.eval_set, self.env,
                                                              self.cfg.num_workers, full=True)
        if out is None:
            return None
        norm = None
        if pool is not None:
            self.cohort = build_cohort(pool[0], pool[1], cohort.speakers, cohort.top_n)
            if cohort.top_n > self.cohort.speakers:
                print(f'note: cohort_size={cohort.top_n}, but the AS-Norm cohort has {self.cohort.speakers} '
                      f'speakers: all of them are used (top-{self.cohort.used_top_n})', flush=True)
            norm = cohort_scoring(out[0], out[1], self.cohort)
        results = {}
        for trials in spec.trials:
            metrics, scores = evaluate_trials(out[0], out[1], spec.keys, trials, norm)
            results[trials.name] = metrics
            for kind, values in metrics.items():
                for key, value in values.items():
                    self.log(f'{key}/final_{trials.name}/{kind}', value, self.evaluated_epoch)
            if self.logger is not None and hasattr(self.logger, 'log_det'):
                self.logger.log_det(f'{self.cfg.log_prefix}det_{trials.name}', scores['full_tta'], trials.labels)
        return results

    def evaluated_label(self) -> str:
        """How printed results name the evaluated weights, e.g. 'best epoch 4'."""
        if self.evaluated_epoch == self.state.best_epoch:
            return f'best epoch {self.evaluated_epoch}'
        return f'last epoch {self.evaluated_epoch}; no epoch validated'
