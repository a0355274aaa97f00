"""Wire one rank's run from the arguments: data lists and sets, model parts, and each phase's optimiser, DDP, Trainer.

Everything a user can change is a key of arguments.py; this file only reads keys and passes them on
as explicit arguments.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from data.bundle import DataBundle
from data.curriculum import CurriculumTrainSet
from data.voxceleb import class_counts
from models import Models, build_models
from trainer.distributed import DistEnv, convert_sync_batchnorm
from trainer.fit import Trainer
from trainer.methods import Phase
from trainer.state import FitConfig


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
