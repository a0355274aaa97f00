"""OS-KDFT2 entry point: arguments → processes → build → train (every phase of the method) → evaluate → export.

    python main.py                                  # built-in demo (no data or weights needed)
    python main.py method=precomp                   # a baseline (os_kdft2 | os_kdft | precomp | postcomp)
    python compare.py                               # all four methods side by side, one table
    python main.py path_train=/data/vox1/dev/wav path_test=/data/vox1/test/wav \\
        path_trials=/data/vox1/veri_test2.txt path_libri=/data/LibriSpeech/train-clean-100
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import sys

from arguments import (ARGUMENTS_FILE, ENV_CREDENTIALS, EXPERIMENT_ARGS, SYSTEM_ARGS, Facts, ResumeFacts,
                       check_settings, is_demo, origin_lines, process_group_timeout, public_args, resolve_args)
from utils.errors import EXIT_USER_ERROR, UserError, exit_on_user_error, one_line, user_errors


def refuse_bad_arguments() -> None:
    """Stop `python main.py` on a wrong argument (unknown key, wrong type, out of range, bad choice) with its one
    `error:` line and exit status 2 before torch and the rest are imported, within a fraction of a second: arguments.py
    imports none of them. Under torchrun every rank stops, global rank 0 alone prints the line (as prepare does)."""
    try:
        with user_errors():
            resolve_args()
    except UserError as error:
        if os.environ.get('RANK', '0') == '0':
            print(one_line(error), file=sys.stderr, flush=True)
        raise SystemExit(EXIT_USER_ERROR) from None


if __name__ == '__main__':  # before the heavy imports below (a spawned rank imports this file as __mp_main__)
    refuse_bad_arguments()

from safetensors import SafetensorError  # noqa: E402 (after the argument check above, on purpose)
from torch.multiprocessing import ProcessExitedException  # noqa: E402

from data.audio import AudioError  # noqa: E402
from data.bundle import DataBundle, build_data  # noqa: E402
from data.demo import make_demo_corpus, make_demo_noise_set  # noqa: E402
from export import export_model, export_onnx  # noqa: E402
from export.cohort import score_norm_of  # noqa: E402
from log import build_logger  # noqa: E402
from models.teacher import load_ssl_config, make_tiny_teacher  # noqa: E402
from trainer import checkpoint  # noqa: E402
from trainer.checkpoint import CheckpointWriteError, StaleCheckpointError, UnsafeCheckpointError  # noqa: E402
from trainer.distributed import (DistEnv, launch, launched_by_torchrun, planned_world_size,  # noqa: E402
                                 run_on_main_rank, set_up_rank, torchrun_group, visible_gpus)
from trainer.methods import phases_of  # noqa: E402
from trainer.run import EXPORT_DIR, PhasesOutcome, final_cohort, final_lines, read_summary, run_phases  # noqa: E402
from utils.atomic import atomic_write_bytes  # noqa: E402
from utils.hardware import machine_cuda_problem  # noqa: E402
from utils.launcher import ElasticJob, elastic_job, restart_store_note  # noqa: E402
from utils.seed import seed_everything  # noqa: E402
from utils.threads import intra_op_threads  # noqa: E402

SOURCE_DIR = os.path.dirname(os.path.abspath(__file__))
# What every rank receives: the resolved arguments (demo paths filled in, `resume` as decided), the run directory,
# whether this is the built-in demo, and the data lists. The data are scanned and checked once, before the run
# directory exists, and handed to the ranks rather than scanned again by each: one walk of a large corpus on a shared
# file system instead of one per rank, the same lists on every rank, and its counts printed once.
Payload = tuple[dict, str, bool, DataBundle]
# The exceptions the checks before a run raise for the user's input (data scans: FileNotFoundError / ValueError,
# audio headers: AudioError, teacher config: OSError, run directory: OSError, a resumed run's checkpoints:
# UnsafeCheckpointError); arguments.py stops with SystemExit.
CHECK_ERRORS = (OSError, ValueError, AudioError, UnsafeCheckpointError)
# errors that stop a run with one `error:` line (their message says what to do) and exit status 2
STOPPING_ERRORS = (CheckpointWriteError, StaleCheckpointError, UnsafeCheckpointError)


def prepare_demo(args: dict) -> dict:
    """Point the data and teacher keys at the built-in demo: a synthetic corpus and a tiny random HuBERT."""
    paths = make_demo_corpus(args['path_demo'], seed=args['rand_seed'])
    resolved = {**args, 'path_train': paths.path_train, 'path_test': paths.path_test,
                'path_trials': paths.path_trials, 'path_libri': paths.path_libri}
    if args['aug_prob'] > 0 and not (args['path_musan'] and args['path_rir']):
        noise = make_demo_noise_set(args['path_demo'], seed=args['rand_seed'])
        resolved.update({key: args[key] or getattr(noise, key) for key in ('path_musan', 'path_rir')})
    if args['huggingface_url'] == EXPERIMENT_ARGS['huggingface_url']:
        hidden, layers = args['student_hidden_layer_size'], max(args['target_layer_idx'])
        teacher = os.path.join(args['path_demo'], f"tiny_hubert_h{hidden}_l{layers}_seed{args['rand_seed']}_random")
        if not os.path.isdir(teacher):
            make_tiny_teacher(teacher, 'hubert', hidden_size=hidden, num_layers=layers, seed=args['rand_seed'])
        resolved['huggingface_url'] = teacher
    print('=' * 78)
    print('BUILT-IN DEMO: no data set is configured (path_train is empty).')
    print(f"  corpus : synthetic voices in {paths.path_train} (VoxCeleb1 / LibriSpeech layouts)")
    if resolved['aug_prob'] > 0:
        print(f"  augment: {resolved['path_musan']} + {resolved['path_rir']} (aug_prob={resolved['aug_prob']})")
    print(f"  teacher: {resolved['huggingface_url']}")
    print('           a tiny HuBERT with RANDOM weights, loaded through from_pretrained like a real one;')
    print('           the demo shows the method running end to end; its numbers say nothing about the paper.')
    print('=' * 78, flush=True)
    return resolved


def run(env: DistEnv, payload: Payload) -> None:
    """One rank of `train_and_report`. A STOPPING_ERRORS error (raised on every rank together, or on rank 0 alone
    after the others finished) ends rank 0 with its one `error:` line and exit status 2; the other ranks end
    quietly, so no rank's exit can cut rank 0's line short. The rank runs its share of the cores in intra-op threads
    (key num_threads, utils/threads.py)."""
    args = payload[0]
    try:
        with intra_op_threads(args['num_threads'], env.world_size, args['num_workers'], announce=env.is_main):
            train_and_report(env, payload)
    except STOPPING_ERRORS as error:
        if env.is_main:
            print(f'error: {error}', file=sys.stderr, flush=True)
            raise SystemExit(EXIT_USER_ERROR) from None


def train_and_report(env: DistEnv, payload: Payload) -> None:
    """One rank: numeric settings and the start line (set_up_rank), seed, logger (rank 0 only), models, every
    training phase of the method, final evaluation of the best state of the last phase, results.json and the export;
    at the end the outputs that could not be written completely (metric files, plots, trackers) are listed."""
    args, run_dir, demo, data = payload
    set_up_rank(env, args['tf32'], args['amp'], args['deterministic'], args['process_group_timeout_min'])
    seed_everything(args['rand_seed'])
    logger = build_logger(args, run_dir, SOURCE_DIR, credentials=ENV_CREDENTIALS) if env.is_main else None
    if env.is_main and args['validation'] == 'test':
        print('note: validation="test" selects the best epoch on the test trials themselves, as the original '
              'did (optimistic); validation=heldout holds dev speakers out instead', flush=True)
    try:
        outcome = run_phases(args, env, data, logger, run_dir)
        if outcome.finished:
            results = outcome.trainer.final_evaluation(data.test, final_cohort(args, data))
            if env.is_main:
                report(results, outcome, args, run_dir, demo)
                export_result(outcome.trainer, args, results, outcome.trainer.state, run_dir)
    finally:
        if logger is not None:
            logger.finish()
            incomplete = logger.incomplete_outputs()
            if incomplete:
                print('incomplete outputs (some of their writes failed; training went on):', flush=True)
                for line in incomplete:
                    print(f'  {line}', flush=True)


def export_result(trainer, args: dict, results: dict, state, run_dir: str) -> None:
    """Write the evaluated student + back-end (the weights of trainer.evaluated_epoch) as a self-contained export,
    thresholded at the final EER point. A failed write stops the run (CheckpointWriteError) and leaves no export."""
    out = os.path.join(run_dir, EXPORT_DIR)
    if os.path.exists(out):
        print(f'export {out} exists already; kept as it is')
        return
    first = next(iter(results.values()))
    try:
        export_model(trainer.core, out, first['full_tta']['threshold'],
                     metadata={'method': args['method'], 'huggingface_url': args['huggingface_url'],
                               'best_epoch': state.best_epoch, 'best_val_eer': state.best_eer,
                               'evaluated_epoch': trainer.evaluated_epoch, 'final': results},
                     seg_size=args['seg_size'], num_seg=args['num_seg'],
                     score_norm=score_norm_of(trainer.cohort, first))
    except (OSError, SafetensorError) as error:
        size = checkpoint.tensor_bytes(t for m in (trainer.core.student, trainer.core.backend)
                                       for t in m.state_dict().values())
        raise checkpoint.write_failure('export', out, size, error) from error
    print(f'exported model: {out}  (python -m export verify --model {out} a.wav b.wav)')
    if args['export_onnx']:
        export_onnx(out)
        print(f"exported ONNX model: {os.path.join(out, 'model.onnx')} (python -m export verify --runtime onnx ...)")


def report(results: dict, outcome: PhasesOutcome, args: dict, run_dir: str, demo: bool) -> None:
    """Print the final figures and write results.json (rank 0; a failed write stops the run, CheckpointWriteError).

    results.json: the method, the last phase's best epoch and validation EER, the epoch whose weights the final
    metrics were computed with, the final metrics per trial list (per score kind; with score_norm=asnorm also each
    kind's AS-Norm figures, '<kind>_asnorm'), each phase's epochs / best epoch / best validation
    EER, the parameter counts, and (apart, as the one figure that differs between identical runs) the training
    seconds per phase and in total.
    """
    trainer = outcome.trainer
    state = trainer.state
    phases = {name: {k: v for k, v in s.items() if k != 'seconds'} for name, s in outcome.summary.items()}
    seconds = {name: s['seconds'] for name, s in outcome.summary.items()}
    for line in final_lines(results, f'({trainer.evaluated_label()}, full+TTA)'):
        print(line)
    data = json.dumps({'method': args['method'], 'best_epoch': state.best_epoch, 'best_val_eer': state.best_eer,
                       'evaluated_epoch': trainer.evaluated_epoch, 'final': results, 'phases': phases,
                       'params': outcome.params, 'batch_size': args['batch_size'],
                       'train_seconds': {**seconds, 'total': sum(seconds.values())}}, indent=1).encode()
    checkpoint.write_or_stop(os.path.join(run_dir, 'results.json'), lambda stream: stream.write(data),
                             lambda: len(data), 'results file')
    print(f'results, logs and checkpoints: {run_dir}')
    if demo:
        print('run the paper experiment: python main.py path_train=<vox1 dev> path_test=<vox1 test> '
              'path_trials=<veri_test2.txt> path_libri=<LibriSpeech/train-clean-100> (see README)')


def teacher_shape(args: dict) -> tuple[int, int]:
    """(transformer layers, hidden size) of the run's teacher, from its config: the demo's tiny teacher (made by
    prepare_demo when huggingface_url is the default) has max(target_layer_idx) layers of the student's width."""
    if is_demo(args) and args['huggingface_url'] == EXPERIMENT_ARGS['huggingface_url']:
        return max(args['target_layer_idx']), args['student_hidden_layer_size']
    config = load_ssl_config(args['huggingface_url'])
    return config.num_hidden_layers, config.hidden_size


def resume_facts(run_dir: str) -> ResumeFacts | None:
    """What the run to resume holds (None when it holds no checkpoint_last.pt: prepare_run_dir says why). Every
    checkpoint there is checked to be data only first (checkpoint.check_run_checkpoints)."""
    last = os.path.join(run_dir, checkpoint.LAST)
    if not os.path.isfile(last):
        return None
    checkpoint.check_run_checkpoints(run_dir)
    recorded = None
    if os.path.isfile(os.path.join(run_dir, ARGUMENTS_FILE)):
        with open(os.path.join(run_dir, ARGUMENTS_FILE)) as f:
            recorded = json.load(f)
    return ResumeFacts(run_dir, recorded, checkpoint.load(last).get('phase', ''), tuple(read_summary(run_dir)))


def record_arguments(run_dir: str, args: dict) -> None:
    """A new run writes the arguments it was started with (tokens masked), which a resume is checked against."""
    if not args['resume']:
        atomic_write_bytes(os.path.join(run_dir, ARGUMENTS_FILE), json.dumps(public_args(args), indent=1).encode())


def elastic_restart_resumes(run_dir: str, job: ElasticJob | None) -> bool:
    """Whether this is torchrun restarting the worker group of the job that trains the run in `run_dir` (it holds a
    checkpoint and records this job): then the run resumes by itself. A new job still refuses an existing run."""
    if job is None or not checkpoint.holds_checkpoint(run_dir) or not checkpoint.started_by_job(run_dir, job.job_id):
        return False
    print(f'note: torchrun restarted the workers of the job that trains {run_dir} (restart {job.restart} on this '
          f'node): resuming from its last checkpoint', flush=True)
    return True


def prepare(argv: list[str] | None, job: ElasticJob | None, held: contextlib.ExitStack) -> Payload:
    """Check everything that is cheap to check, then prepare the run directory: a start that fails a check leaves
    no directory behind. Checked: the arguments and their ranges (get_args), then once, by check_settings, against
    the machine, the teacher's config and, on resume, the run's recorded arguments and phases; then the data folders
    and their layout, the trial lists and every trial key (the data lists are scanned here, once, and handed to the
    ranks). Every failure here is a user error (utils/errors.py).
    Runs once per run: in the only process, in spawn's parent, or on torchrun's global rank 0, which from here on
    holds the run directory's lock (utils/run_lock.py) until `held` closes at the end of the run."""
    with user_errors(*CHECK_ERRORS):
        args, layers = resolve_args(argv)
        if launched_by_torchrun():
            ignored = [f'{key}={args[key]!r}' for key in ('usable_gpu', 'cpu_processes')
                       if args[key] != SYSTEM_ARGS[key]]
            if ignored:
                print(f"note: {', '.join(ignored)} ignored under torchrun: its ranks are the processes, each on the "
                      f"GPU its LOCAL_RANK names (nccl), or on the CPU (gloo) where CUDA is not available", flush=True)
            if restart_store_note():
                print(restart_store_note(), flush=True)
        print('\n'.join(origin_lines(args, layers)), flush=True)
        wanted = os.path.join(args['path_log'], args['project'], args['name'])
        resume = args['resume'] or elastic_restart_resumes(wanted, job)
        layers_count, hidden = teacher_shape(args)
        facts = Facts(world_size=planned_world_size(args['usable_gpu'], args['cpu_processes']),
                      visible_gpus=visible_gpus(), cuda_problem=machine_cuda_problem(),
                      teacher_layers=layers_count, teacher_hidden=hidden,
                      phases=tuple(phase.name for phase in phases_of(args)),
                      resume=resume_facts(wanted) if resume else None)
        for note in check_settings({**args, 'resume': resume}, facts):
            print(note, flush=True)
        resolved = prepare_demo(args) if is_demo(args) else args
        data = build_data(resolved)
        prepared = checkpoint.prepare_run_dir(args['path_log'], args['project'], args['name'], resume)
        held.callback(prepared.lock.release)
        if prepared.note:
            print(prepared.note, flush=True)
        print(f'run directory: {prepared.path}', flush=True)
        record_arguments(prepared.path, {**args, 'resume': prepared.resume})
        if job is not None:
            checkpoint.record_job(prepared.path, job.job_id)
    return {**resolved, 'resume': prepared.resume}, prepared.path, is_demo(args), data


def main(argv: list[str] | None = None) -> None:
    """Parse `key=value` arguments (sys.argv by default), check them and the data, prepare the run directory (once),
    start every rank. Under torchrun each rank runs this: they join the process group first, global rank 0 checks
    and prepares while the others wait, and a failed check stops them all with rank 0's one message."""
    with torchrun_group(process_group_timeout(argv)) as joined, contextlib.ExitStack() as held:
        job = elastic_job()
        payload = (prepare(argv, job, held) if joined is None
                   else run_on_main_rank(functools.partial(prepare, argv, job, held), joined))
        args = payload[0]
        try:
            launch(run, payload, args['usable_gpu'], args['cpu_processes'], joined,
                   timeout_min=args['process_group_timeout_min'])
        except ProcessExitedException as error:  # a spawned rank 0 printed its `error:` line and exited with status 2
            if error.exit_code != EXIT_USER_ERROR:
                raise
            raise SystemExit(EXIT_USER_ERROR) from None


if __name__ == '__main__':
    exit_on_user_error(main)
