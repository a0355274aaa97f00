"""Wire one rank's run from the arguments: data lists and sets, model parts, and each phase's optimiser, DDP, Trainer.

Everything a user can change is a key of arguments.py; this file only reads keys and passes them on
as explicit arguments.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from data.audio import AudioError, audio_length
from data.curriculum import CurriculumTrainSet
from data.eval_sets import EvalSet
from data.librispeech import scan_librispeech
from data.trials import check_trial_keys, find_trial_lists, heldout_trials, read_trials
from data.voxceleb import Utterance, class_counts, hold_out_speakers, scan_voxceleb, speaker_table
from models import Models, build_models
from trainer.distributed import DistEnv, convert_sync_batchnorm
from trainer.fit import Trainer
from trainer.methods import Phase
from trainer.state import EvalSpec, FitConfig


@dataclass
class DataBundle:
    """The lists one run needs: training utterances and speakers, KD audio, validation and test evaluations."""
    train_utts: list[Utterance]
    speakers: dict[str, int]
    kd_paths: list[str]
    validation: EvalSpec
    test: EvalSpec


def _eval_spec(name: str, utts: list[Utterance], trials: list, seg_size: int, num_seg: int) -> EvalSpec:
    """Embed only the utterances the trial lists use, in a fixed order; each must be readable audio (checked
    now, from the headers, so that a broken test file stops the run before training rather than after)."""
    used = {k for t in trials for k in (*t.enroll, *t.test)}
    utts = [u for u in utts if u.key in used]
    for u in utts:
        if audio_length(u.path) == 0:
            raise AudioError(f'{u.path}: the trial lists need this file, but it holds no audio')
    return EvalSpec(name, EvalSet(utts, seg_size, num_seg), [u.key for u in utts], trials)


def build_data(args: dict) -> DataBundle:
    """Scan VoxCeleb1 dev/test, the trial lists and LibriSpeech; check every trial key before training."""
    dev = scan_voxceleb(args['path_train'], 'dev')
    test = scan_voxceleb(args['path_test'], 'test')
    lists = find_trial_lists(args['path_trials'], args['trials'])
    trials = [read_trials(path, name) for name, path in lists.items()]
    whole = any(t.name != 'O' for t in trials)  # E and H lists use keys of the whole VoxCeleb1
    pool = {u.key: u for u in (*test, *dev)} if whole else {u.key: u for u in test}
    for t in trials:
        check_trial_keys(t, set(pool))
    test_spec = _eval_spec('test', list(pool.values()), trials, args['seg_size'], args['num_seg'])
    train_utts = dev
    if args['validation'] == 'heldout':
        rng = np.random.default_rng([args['rand_seed'], 7])
        train_utts, val_utts = hold_out_speakers(dev, args['val_speakers'], rng)
        val_trials = heldout_trials(val_utts, args['val_trials'], rng)
        validation = _eval_spec('validation', val_utts, [val_trials], args['seg_size'], args['num_seg'])
    else:
        validation = EvalSpec('validation', test_spec.eval_set, test_spec.keys, trials)
    kd_paths = scan_librispeech(args['path_libri']) if args['path_libri'] else []
    return DataBundle(train_utts, speaker_table(train_utts), kd_paths, validation, test_spec)


def build_parts(args: dict, env: DistEnv, data: DataBundle) -> Models:
    """Every model part `method` needs (models.build_models), on the rank's device; BatchNorm synchronised across
    ranks when distributed. The phases of a method share these parts: what one phase trains, the next starts from."""
    counts = class_counts(data.train_utts, data.speakers)
    parts = build_models(
        huggingface_url=args['huggingface_url'], method=args['method'], num_speakers=len(data.speakers),
        class_counts=counts, student_layers=args['student_hidden_layer_num'],
        init_teacher_idx=args['init_teacher_idx'], student_hidden_size=args['student_hidden_layer_size'],
        adapter_size=args['adapter_size'], embed_size=args['embed_size'], use_TFT=args['use_TFT'],
        target_layer_idx=args['target_layer_idx'], cos_lambda=args['cos_lambda'],
        kd_cos_reduction=args['kd_cos_reduction'], ft_loss=args['ft_loss'], class_weight=args['class_weight'],
        aam_margin=args['aam_margin'], aam_scale=args['aam_scale'], student_dropout=args['student_dropout'],
        student_layerdrop=args['student_layerdrop'], student_mask_time_prob=args['student_mask_time_prob'])
    parts = parts.to(env.device)
    if env.distributed:
        convert_sync_batchnorm(parts, env.device)
    return parts


def build_trainer(args: dict, env: DistEnv, data: DataBundle, logger, run_dir: str, parts: Models, phase: Phase,
                  best_name: str, log_prefix: str, label: str) -> Trainer:
    """The Trainer of one phase: its module (DDP-wrapped when distributed), Adam over the module's trainable
    parameters, the cosine schedule and the curriculum over the phase's own epochs."""
    epochs = args[phase.epochs_key]
    core = phase.build(parts, args)
    model = core
    if env.distributed:
        model = DistributedDataParallel(core, device_ids=[env.device.index] if env.device.type == 'cuda' else None,
                                        find_unused_parameters=True)
    optimizer = torch.optim.Adam(trainable_parameters(core), lr=args['lr'], weight_decay=args['weight_decay'])
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        optimizer, T_0=epochs, T_mult=args['T_mult'], eta_min=args['lr_min'])
    train_set = CurriculumTrainSet(data.train_utts, data.speakers, data.kd_paths, args['crop_size'],
                                   args['curriculum'], epochs, args['rand_seed'], env.rank,
                                   args['curriculum_p'], args['max_bad_audio_fraction'])
    config = FitConfig(epochs=epochs, seed=args['rand_seed'], batch_size=args['batch_size'] // env.world_size,
                       run_dir=run_dir, seg_size=args['seg_size'], num_seg=args['num_seg'], amp=args['amp'],
                       num_workers=args['num_workers'], max_nonfinite_steps=args['max_nonfinite_steps'],
                       phase=phase.name, validate=phase.validates, best_name=best_name, log_prefix=log_prefix,
                       label=label)
    return Trainer(core, model, phase.teacher(parts), optimizer, scheduler, train_set, data.validation, env, logger,
                   config)


def trainable_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The parameters an optimiser updates: those with requires_grad."""
    return [p for p in module.parameters() if p.requires_grad]
