"""Run a method's phases in order on one rank: build the shared model parts, then per phase its module, optimiser,
DDP wrapper and Trainer; resume inside the phase the last checkpoint names, and hand each phase's result to the next.

Files of a run directory (path_log/project/name), for every method:
- checkpoint_last.pt: the latest state of whichever phase is training, with its phase name: the resume point.
- checkpoint_best.pt: the best validated state of the method's last phase: the final model (evaluated, exported).
- checkpoint_<phase>_best.pt, checkpoint_<phase>_last.pt: an earlier phase's best validated state (phases that
  validate) and its state when it ended. The next phase starts from the best one if there is one, else the last.
- phases.json: per finished phase, its epochs, best epoch, best validation EER and training seconds.
- export/: the final model's student + back-end (written by main.py after the final evaluation).
The joint methods have one phase ('joint'), so their run directory is what it always was. Before the first epoch the
run checks that its directory's file system can hold these checkpoints, a temporary copy and the export at once.
With lmft_epochs > 0, large-margin fine-tuning ('lmft') follows the method's own phases (trainer/methods.py:
phases_of): it is then the last phase, and the method's own last phase gets checkpoint_<phase>_*.pt files.
"""
from __future__ import annotations

import gc
import json
import math
import os
from dataclasses import dataclass, replace

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from data.bundle import DataBundle
from data.cohort import CohortSpec, cohort_spec
from data.curriculum import CurriculumTrainSet
from data.voxceleb import class_counts
from models import Models, build_models
from trainer import checkpoint
from trainer.checkpoint import CheckpointWriteError
from trainer.distributed import DistEnv, convert_sync_batchnorm, gather_objects
from trainer.evaluate import NORMALISED
from trainer.loop import FitConfig, Trainer
from trainer.methods import METHODS, Phase, phases_of

SUMMARY = 'phases.json'
EXPORT_DIR = 'export'


@dataclass
class PhasesOutcome:
    """Where a run stands after `run_phases`."""
    trainer: Trainer  # the last phase's trainer, or the interrupted phase's
    finished: bool  # every phase trained all of its epochs
    summary: dict[str, dict]  # phases.json: per finished phase, epochs, best epoch / EER, seconds
    params: dict[str, int]  # 'model': student + back-end (the exported model); 'trained': every parameter optimised


def trainable_parameters(module: nn.Module) -> list[nn.Parameter]:
    """The parameters an optimiser updates: those with requires_grad."""
    return [p for p in module.parameters() if p.requires_grad]


def build_parts(args: dict, env: DistEnv, data: DataBundle) -> Models:
    """Every model part the method needs, on the rank's device; BatchNorm synchronised across ranks when distributed.
    The phases of a method share these parts: what one phase trains, the next starts from."""
    method = METHODS[args['method']]
    parts = build_models(args, len(data.speakers), class_counts(data.train_utts, data.speakers),
                         adapter=method.adapter, finetune_teacher=method.finetune_teacher)
    parts = parts.to(env.device)
    if env.distributed:
        convert_sync_batchnorm(parts, env.device)
    return parts


def state_unused_parameters(env: DistEnv) -> None:
    """Say once (rank 0) why DDP runs with find_unused_parameters=True: the parameters a step uses depend on the
    method's phase (KD heads, adapters, classifier, teacher), so DDP's own warning (printed by its C++ reducer once
    per rank, which Python cannot filter) that a step used them all is expected."""
    if env.is_main:
        print('note: DDP runs with find_unused_parameters=True (the parameters a step uses depend on the method\'s '
              'phase); its warning that a step used every parameter is expected', flush=True)


def loop_config(args: dict, env: DistEnv, run_dir: str) -> FitConfig:
    """The loop settings every phase of a run shares, taken from the arguments once (run_phases); phase_config makes
    each phase's copy."""
    return FitConfig(epochs=0, seed=args['rand_seed'], batch_size=args['batch_size'] // env.world_size, run_dir=run_dir,
                     seg_size=args['seg_size'], num_seg=args['num_seg'], log_interval_s=args['log_interval_s'],
                     amp=args['amp'], num_workers=args['num_workers'], max_nonfinite_steps=args['max_nonfinite_steps'])


def phase_config(shared: FitConfig, args: dict, phase: Phase, final: bool, label: str) -> FitConfig:
    """`shared` (loop_config) for one phase: its epochs, name, validation, best checkpoint file and metric prefix (the
    usual ones for a method's last phase) and the label its printed lines start with."""
    return replace(shared, epochs=args[phase.epochs_key], phase=phase.name, validate=phase.validates,
                   best_name=phase_files(phase, final)[0], log_prefix='' if final else f'{phase.name}/', label=label)


def build_trainer(args: dict, env: DistEnv, data: DataBundle, logger, parts: Models, phase: Phase,
                  config: FitConfig) -> Trainer:
    """The Trainer of one phase (`config`: phase_config): its module (DDP-wrapped when distributed), Adam over the
    module's trainable parameters with the cosine schedule over the phase's own epochs, and the curriculum training
    set; learning rate and crop length are the phase's (Phase.learning_rate, Phase.crop_key)."""
    epochs = config.epochs
    core = phase.module(parts, args)
    model = core
    if env.distributed:
        model = DistributedDataParallel(core, device_ids=[env.device.index] if env.device.type == 'cuda' else None,
                                        find_unused_parameters=True)
    lr, lr_min = phase.learning_rate(args)

    def new_optimizer() -> tuple[torch.optim.Optimizer, object]:
        optimizer = torch.optim.Adam(trainable_parameters(core), lr=lr, weight_decay=args['weight_decay'])
        scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
            optimizer, T_0=epochs, T_mult=args['T_mult'], eta_min=lr_min)
        return optimizer, scheduler

    train_set = CurriculumTrainSet(data.train_utts, data.speakers, data.kd_paths, args[phase.crop_key],
                                   schedule=args['curriculum'], total_epochs=epochs, seed=args['rand_seed'],
                                   rank=env.rank, p_const=args['curriculum_p'],
                                   max_bad_fraction=args['max_bad_audio_fraction'], kd_audio=phase.kd_audio,
                                   ft_audio=phase.ft_audio, augmenter=data.augmenter, aug_prob=args['aug_prob'],
                                   aug_rows=args['aug_rows'])
    return Trainer(core=core, model=model, parts=parts, targets=phase.targets, new_optimizer=new_optimizer,
                   train_set=train_set, validation=data.validation, env=env, logger=logger, config=config)


def phase_files(phase: Phase, final: bool) -> tuple[str, str]:
    """(best, last) checkpoint file names of a phase: the usual names for a method's last phase."""
    if final:
        return checkpoint.BEST, checkpoint.LAST
    return f'checkpoint_{phase.name}_best.pt', f'checkpoint_{phase.name}_last.pt'


def resume_index(run_dir: str, phases: tuple[Phase, ...]) -> int:
    """Index of the phase that checkpoint_last.pt belongs to (a checkpoint without a phase name: the first)."""
    path = os.path.join(run_dir, checkpoint.LAST)
    names = [p.name for p in phases]
    name = checkpoint.load(path).get('phase', names[0])
    assert name in names, (path, name, names)  # arguments.check_resume refused any other
    return names.index(name)


def read_summary(run_dir: str) -> dict[str, dict]:
    """phases.json of the run directory ({} when absent)."""
    path = os.path.join(run_dir, SUMMARY)
    if not os.path.isfile(path):
        return {}
    with open(path) as f:
        return json.load(f)


def restore_outcome(core: nn.Module, run_dir: str, phase: Phase, env: DistEnv) -> str:
    """Load a finished earlier phase's result into its module (and so into the shared parts): its best validated
    state when it has one, else its last state. Returns the file used."""
    gather_objects(None, env)  # barrier: rank 0 has finished writing the phase's files
    best, last = phase_files(phase, final=False)
    name = best if phase.validates and os.path.isfile(os.path.join(run_dir, best)) else last
    core.load_state_dict(checkpoint.load(os.path.join(run_dir, name), env.device)['model'])
    return name


def write_summary(run_dir: str, summary: dict[str, dict], env: DistEnv) -> None:
    """Write phases.json on rank 0 like a checkpoint (a resumed run needs it): a write that keeps failing stops every
    rank together."""
    failure = None
    if env.is_main:
        data = json.dumps(summary, indent=1).encode()
        try:
            checkpoint.write_or_stop(os.path.join(run_dir, SUMMARY), lambda stream: stream.write(data),
                                     lambda: len(data), 'phase summary')
        except CheckpointWriteError as error:
            failure = error
    checkpoint.stop_together(failure, env)


def cohort_file_bytes(speakers: int, embed_size: int) -> int:
    """Upper bound of the export's AS-Norm cohort file: a full and a TTA float32 vector per speaker."""
    return 2 * speakers * embed_size * 4 + 2 * checkpoint.TENSOR_OVERHEAD


def check_space(args: dict, parts: Models, phases: tuple[Phase, ...], run_dir: str, env: DistEnv,
                speakers: int) -> None:
    """Before the first epoch: stop every rank (CheckpointWriteError) when rank 0's run directory cannot hold at once
    every checkpoint of the method's phases (estimated from each phase module and Adam), a temporary copy and the
    export (the last phase's student + back-end, and with AS-Norm the cohort of up to `speakers` training speakers:
    a full and a TTA float32 vector each)."""
    failure = None
    if env.is_main:
        planned: dict[str, int] = {}
        for index, phase in enumerate(phases):
            size = checkpoint.checkpoint_estimate(phase.module(parts, args))
            best, last = phase_files(phase, final=index == len(phases) - 1)
            for name in ([best] if phase.validates else []) + [last, checkpoint.LAST]:
                planned[name] = max(planned.get(name, 0), size)
        final = phases[-1].module(parts, args)
        tensors = [t for m in (final.student, final.backend) for t in m.state_dict().values()]
        export = checkpoint.tensor_bytes(tensors) + len(tensors) * checkpoint.TENSOR_OVERHEAD
        others = {} if os.path.exists(os.path.join(run_dir, EXPORT_DIR)) else {'the export': export}
        if others and args['score_norm'] != 'none':
            others['its AS-Norm cohort'] = cohort_file_bytes(speakers, args['embed_size'])
        try:
            checkpoint.check_free_space(run_dir, planned, others)
        except CheckpointWriteError as error:
            failure = error
    checkpoint.stop_together(failure, env)


def final_cohort(args: dict, data: DataBundle) -> CohortSpec | None:
    """The AS-Norm cohort of the final evaluations when score_norm is 'asnorm' (keys cohort_size,
    cohort_utts_per_speaker, rand_seed, seg_size, num_seg): training utterances of every training speaker."""
    if args['score_norm'] == 'none':
        return None
    return cohort_spec(data.train_utts, args['cohort_utts_per_speaker'], args['cohort_size'], args['rand_seed'],
                       args['seg_size'], args['num_seg'])


def final_lines(results: dict, what: str) -> list[str]:
    """One printed line per trial list of a final evaluation's full + TTA figures, followed by their AS-Norm line
    when the evaluation normalised."""
    kinds = (('full_tta', ''), ('full_tta' + NORMALISED, ' AS-Norm'))
    return [f"final Vox1-{name} {what}{label}: EER {m[kind]['eer']:.2f} % | minDCF(0.01) "
            f"{m[kind]['min_dcf_0.01']:.4f} | minDCF(0.05) {m[kind]['min_dcf_0.05']:.4f}"
            for name, m in results.items() for kind, label in kinds if kind in m]


def _summarise(trainer: Trainer) -> dict:
    state = trainer.state
    validated = trainer.cfg.validate and math.isfinite(state.best_eer)
    return {'epochs': state.epoch, 'best_epoch': state.best_epoch if validated else None,
            'best_val_eer': state.best_eer if validated else None, 'seconds': state.seconds}


def run_phases(args: dict, env: DistEnv, data: DataBundle, logger, run_dir: str) -> PhasesOutcome:
    """Train every phase of args['method'] (from the resume point when args['resume']); stop early, with a resumable
    checkpoint, when a signal stops a phase."""
    parts = build_parts(args, env, data)
    phases = phases_of(args)
    if env.distributed:
        state_unused_parameters(env)
    check_space(args, parts, phases, run_dir, env, len(data.speakers))
    start = resume_index(run_dir, phases) if args['resume'] else 0
    done = read_summary(run_dir)
    assert all(p.name in done for p in phases[:start]), (run_dir, done)  # arguments.check_resume checked it
    summary = {p.name: done[p.name] for p in phases[:start]}
    shared = loop_config(args, env, run_dir)
    trained: dict[int, int] = {}  # id(parameter) → numel, over every phase
    for index, phase in enumerate(phases):
        final = index == len(phases) - 1
        if index < start:  # finished in an earlier session: take its result and move on
            core = phase.module(parts, args)
            trained.update({id(p): p.numel() for p in trainable_parameters(core)})
            restore_outcome(core, run_dir, phase, env)
            continue
        last = phase_files(phase, final)[1]
        label = f"[{args['method']} {index + 1}/{len(phases)}: {phase.name}] " if len(phases) > 1 else ''
        trainer = build_trainer(args, env, data, logger, parts, phase, phase_config(shared, args, phase, final, label))
        trained.update({id(p): p.numel() for p in trainable_parameters(trainer.core)})
        if args['resume'] and index == start:
            trainer.resume(os.path.join(run_dir, checkpoint.LAST))
            if env.is_main:
                print(f'{label}resumed from {checkpoint.LAST}: {trainer.state.epoch} of {trainer.cfg.epochs} epochs '
                      f'done, {trainer.state.step} steps into the next', flush=True)
        elif env.is_main and label:
            print(f'{label}starts: {args[phase.epochs_key]} epochs ({phase.epochs_key})', flush=True)
        trainer.fit()
        if not trainer.finished:
            return PhasesOutcome(trainer, False, summary, {})
        if not final:
            trainer.save(last)
        summary[phase.name] = _summarise(trainer)
        write_summary(run_dir, summary, env)
        if phase.evaluates:  # e.g. postcomp's fine-tuned teacher: its own result before it is compressed
            results = trainer.final_evaluation(data.test, final_cohort(args, data))
            if env.is_main:
                summary[phase.name].update(final=results, evaluated_epoch=trainer.evaluated_epoch)
            write_summary(run_dir, summary, env)
            if env.is_main:
                for line in final_lines(results, f'{phase.name} ({trainer.evaluated_label()}, full+TTA)'):
                    print(f'{label}{line}', flush=True)
        if not final:
            used = restore_outcome(trainer.core, run_dir, phase, env)
            if env.is_main:
                print(f'{label}done; the next phase starts from {used}', flush=True)
            del trainer  # drop this phase's DDP wrapper (and its gradient hooks) before the next phase's
            gc.collect()
    model = sum(p.numel() for m in (trainer.core.student, trainer.core.backend) for p in m.parameters())
    return PhasesOutcome(trainer, True, summary, {'model': model, 'trained': sum(trained.values())})
