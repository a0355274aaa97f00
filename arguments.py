"""Every default of OS-KDFT2 in one place.

Edit the dicts below, or override any key on the command line:
    python main.py path_train=/data/vox1/dev/wav epoch=50 init_teacher_idx=[0,1]
Each value is parsed as a Python literal; text is accepted as-is where the default is text.
An unknown key or a value of the wrong type stops the run with a message naming the key.
With no dataset configured (`path_train` empty) the built-in demo settings (DEMO_ARGS) apply.
"""
from __future__ import annotations

import ast
import difflib
import json
import os
import sys

from data.curriculum import SCHEDULES
from models.student import INIT_MODES
from trainer.methods import METHODS

SYSTEM_ARGS = {
    # --- experiment identity (run directory = path_log/project/name) ---
    'project': 'OS-KDFT2',                  # project name (local folder, wandb/neptune project)
    'name': 'os_kdft2_hubert_base',         # run name; an existing run is never overwritten
    'tags': ['OS-KDFT2', 'HuBERT-base'],    # tracker tags
    'description': 'joint KD + FT of HuBERT-base into a 2-layer student',  # tracker description
    'path_log': 'runs',                     # root of all run directories
    'resume': False,                        # continue the run in path_log/project/name from its last checkpoint
                                            # (torchrun's elastic restarts resume by themselves)
    # --- progress output and trackers (tokens may come from WANDB_API_KEY / NEPTUNE_API_TOKEN instead) ---
    'log_interval_s': 180.0,                # seconds between progress lines when the output is not a terminal
                                            # (a cluster job's log file); a terminal shows a progress bar instead
    'use_wandb': False,                     # also log to Weights & Biases (WANDB_MODE=offline honoured)
    'wandb_user': '',                       # wandb entity
    'wandb_token': '',                      # wandb API key; prefer the WANDB_API_KEY environment variable
    'use_neptune': False,                   # also log to neptune
    'neptune_user': '',                     # neptune workspace
    'neptune_token': '',                    # neptune API token; prefer NEPTUNE_API_TOKEN
    'neptune_mode': 'async',                # neptune connection mode: async | offline | debug
    # --- data (real on-disk layouts, see README) ---
    'path_libri': '',                       # LibriSpeech train-clean-100 root (<spk>/<chapter>/*.flac)
    'path_train': '',                       # VoxCeleb1 dev root (<spk>/<video>/<utt>.wav); empty = built-in demo
    'path_test': '',                        # VoxCeleb1 test root
    'path_trials': '',                      # trial list file, or a directory holding the O/E/H lists
    'trials': ['O'],                        # lists scored at the end: any of 'O', 'E', 'H'
    'validation': 'test',                   # epoch selection on: 'test' (original, optimistic) | 'heldout'
    'val_speakers': 10,                     # dev speakers held out of training when validation='heldout'
    'val_trials': 2000,                     # trials drawn among held-out speakers when validation='heldout'
    'path_demo': os.path.join(os.path.expanduser('~'), '.cache', 'os_kdft2'),  # demo corpus + tiny teacher cache
    'num_workers': 4,                       # DataLoader workers per process
    # --- hardware ---
    'usable_gpu': '',                       # GPU ids to spawn on, e.g. '0,1'; '' = all visible; 'cpu' = none
                                            # (ignored under torchrun: each rank uses the GPU LOCAL_RANK names)
    'cpu_processes': 1,                     # processes (gloo) when no GPU is used (ignored under torchrun)
    'amp': False,                           # bf16 autocast on GPU (ignored on CPU): an opt-in deviation from the
                                            # released fp32, its effect on EER not measured yet
}

EXPERIMENT_ARGS = {
    # --- method ---
    'method': 'os_kdft2',                   # os_kdft2 | os_kdft | precomp | postcomp (recipes: trainer/methods.py)
    'huggingface_url': 'facebook/hubert-base-ls960',  # teacher: hub id or local directory
    'epoch': 100,                           # epochs of the joint methods / of the baselines' fine-tuning phase
    'epoch_KD': 100,                        # epochs of the baselines' KD phase (precomp phase 1, postcomp phase 2)
    'batch_size': 50,                       # global batch, divided among processes
    'rand_seed': 1,                         # seed of every random draw
    # --- student ---
    'student_hidden_layer_size': 768,       # must equal the teacher's hidden size
    'student_hidden_layer_num': 2,          # transformer layers in the student
    'init_teacher_idx': [0, 1],             # teacher layer copied into each student layer
    'student_init': 'release',              # release: copy CNN, projection, chosen layers (pos-conv, encoder LN,
                                            # mask embedding fresh) | teacher: copy those too (DistilHuBERT / s3prl)
    'student_dropout': None,                # every dropout rate of the student; None = teacher config's
    'student_layerdrop': None,              # LayerDrop rate; None = teacher config's (0.1 for HuBERT-base)
    'student_mask_time_prob': None,         # SpecAugment time-mask rate; None = teacher config's (0.05)
    'adapter_size': 64,                     # OS-KDFT adapter bottleneck (method os_kdft)
    # --- speaker back-end ---
    'embed_size': 192,                      # speaker embedding size
    'use_TFT': True,                        # back-end layer aggregation: attentive feature tuner (True) or the
                                            # released weighted sum of hidden states (False); set per method
    'ft_loss': 'softmax',                   # softmax (class-weighted CE) | aam
    'class_weight': True,                   # weight classes by N / n_c as released
    'aam_margin': 0.2,                      # AAM-softmax margin
    'aam_scale': 30.0,                      # AAM-softmax scale
    # --- knowledge distillation ---
    'cos_lambda': 1.0,                      # weight of the cosine term of the DistilHuBERT loss
    'kd_cos_reduction': 'sum',              # frames reduction of the cosine term: sum (released) | mean (paper)
    'target_layer_idx': [4, 8, 12],         # teacher layers predicted by the KD heads
    'curriculum': 'linear',                 # p(VoxCeleb KD item): linear | constant | step | cosine | none | switch
    'curriculum_p': 0.5,                    # the constant schedule's probability
    'w_kd': 1.0,                            # weight of the KD loss
    'w_ft': 1.0,                            # weight of the speaker loss
    'freeze_epochs': 5,                     # precomp: student frozen / postcomp: teacher frozen, first FT epochs
    'w_embed_mse': 1.0,                     # postcomp: weight of the embedding MSE
    # --- audio ---
    'crop_size': 48000,                     # training crop (samples at 16 kHz)
    'seg_size': 48000,                      # TTA segment (samples)
    'num_seg': 5,                           # TTA segments per utterance
    # --- optimisation ---
    'lr': 5e-5,                             # Adam learning rate
    'lr_min': 5e-5,                         # CosineAnnealingWarmRestarts eta_min
    'weight_decay': 1e-4,                   # Adam weight decay
    'T_mult': 1,                            # CosineAnnealingWarmRestarts T_mult (T_0 = epoch)
    'max_nonfinite_steps': 10,              # consecutive non-finite losses that stop the run
    'max_bad_audio_fraction': 0.01,         # fraction of unreadable training files that stops the run
}

# Applied when `path_train` is empty: the built-in demo (synthetic corpus, tiny random teacher, CPU); each method
# adds its own demo budget (its `demo` entry in trainer/methods.py).
DEMO_ARGS = {
    'name': 'demo',
    'tags': ['demo'],
    'description': 'built-in demo: synthetic corpus, tiny random-weight teacher',
    'epoch': 10,
    'batch_size': 32,
    'crop_size': 16000,
    'seg_size': 16000,
    'num_seg': 3,
    'lr': 1e-3,
    'lr_min': 1e-4,
    'weight_decay': 0.0,
    'student_hidden_layer_size': 96,
    'target_layer_idx': [1, 2, 3],
    'kd_cos_reduction': 'mean',  # the DistilHuBERT paper's balance: with 49-frame crops 'sum' swamps the speaker loss
    'embed_size': 64,
    'adapter_size': 16,
    'num_workers': 2,
}

# Keys whose default is None: the types they accept besides None.
NULLABLE = {'student_dropout': float, 'student_layerdrop': float, 'student_mask_time_prob': float}

# Keys that do not change what a run computes (model, data, order of draws): a run may be resumed or reused with
# other values of these; any other difference is refused (see differing_arguments).
RUN_NEUTRAL_KEYS = ('name', 'tags', 'description', 'use_wandb', 'wandb_user', 'wandb_token', 'use_neptune',
                    'neptune_user', 'neptune_token', 'neptune_mode', 'num_workers', 'log_interval_s', 'path_demo',
                    'usable_gpu', 'cpu_processes')
ARGUMENTS_FILE = 'arguments.json'  # the arguments a run was started with, in its run directory (tokens masked)

SECRET_KEYS = ('wandb_token', 'neptune_token')
ENV_CREDENTIALS = {'wandb_token': 'WANDB_API_KEY', 'neptune_token': 'NEPTUNE_API_TOKEN'}


def _parse_value(key: str, text: str, default):
    """Parse one override: a Python literal, or plain text where the default is text."""
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if isinstance(default, str):
            return text
        raise SystemExit(f"argument '{key}': could not parse {text!r}; expected a {type(default).__name__} "
                         f"like {default!r}")
    if isinstance(default, str) and not isinstance(value, str):
        return text  # e.g. name=2024 or path_train=1 stay text
    expected = NULLABLE.get(key, type(default))
    ok = isinstance(value, expected) and not (expected is not bool and isinstance(value, bool) and expected is int)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if key in NULLABLE and value is None:
        ok = True
    if not ok:
        raise SystemExit(f"argument '{key}': got {value!r} ({type(value).__name__}), expected "
                         f"{expected.__name__} like {default!r}")
    return value


def parse_overrides(argv: list[str], defaults: dict) -> dict:
    """Turn ['key=value', ...] into a dict of typed values checked against `defaults`."""
    overrides = {}
    for item in argv:
        if '=' not in item:
            raise SystemExit(f"argument {item!r}: expected key=value (e.g. epoch=10)")
        key, text = item.split('=', 1)
        key = key.strip()
        if key not in defaults:
            close = difflib.get_close_matches(key, list(defaults), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ''
            raise SystemExit(f"argument '{key}': unknown key{hint} (all keys are in arguments.py)")
        overrides[key] = _parse_value(key, text, defaults[key])
    return overrides


def is_demo(args: dict) -> bool:
    """True when no dataset is configured, so the built-in demo runs."""
    return args['path_train'] == ''


def get_args(argv: list[str] | None = None) -> dict:
    """Defaults ← the method's defaults ← demo settings (when no data set is configured, with the method's demo budget) ←
    command-line overrides ← env credentials."""
    defaults = {**SYSTEM_ARGS, **EXPERIMENT_ARGS}
    overrides = parse_overrides(sys.argv[1:] if argv is None else argv, defaults)
    args = dict(defaults)
    args.update(overrides)
    if args['method'] not in METHODS:
        raise SystemExit(f"argument 'method': got {args['method']!r}, expected one of {sorted(METHODS)}")
    method = METHODS[args['method']]
    args.update({k: v for k, v in method.defaults.items() if k not in overrides})
    if is_demo(args):
        demo = {**DEMO_ARGS, **method.demo}
        args.update({k: v for k, v in demo.items() if k not in overrides})
    for key, env in ENV_CREDENTIALS.items():
        if not args[key] and os.environ.get(env):
            args[key] = os.environ[env]
    return args


def _fail(key: str, value, allowed: str) -> None:
    raise SystemExit(f"argument '{key}': got {value!r}; {allowed}")


def check_args(args: dict, world_size: int) -> None:
    """Stop before any data or model is loaded when a value cannot work, naming the key, value and what is allowed."""
    data_keys = ('path_train', 'path_test', 'path_trials') + (('path_libri',) if args['path_libri'] else ())
    for key in data_keys:
        if not os.path.exists(args[key]):
            _fail(key, args[key], 'that path does not exist')
    for key in ('epoch', 'epoch_KD', 'batch_size', 'crop_size', 'seg_size', 'num_seg', 'embed_size',
                'student_hidden_layer_num', 'T_mult', 'max_nonfinite_steps'):
        if args[key] < 1:
            _fail(key, args[key], 'expected a positive integer')
    if args['batch_size'] % world_size or args['batch_size'] // world_size < 2:
        _fail('batch_size', args['batch_size'], f'the global batch must divide evenly among {world_size} '
              f'process(es), at least 2 per process (BatchNorm)')
    for key in ('freeze_epochs', 'w_embed_mse'):
        if args[key] < 0:
            _fail(key, args[key], 'expected 0 or more')
    for key in ('num_workers', 'log_interval_s'):
        if args[key] < 0:
            _fail(key, args[key], 'expected 0 or more')
    if not 0.0 <= args['max_bad_audio_fraction'] < 1.0:
        _fail('max_bad_audio_fraction', args['max_bad_audio_fraction'], 'expected a fraction in [0, 1)')
    choices = {'validation': ('test', 'heldout'), 'student_init': tuple(INIT_MODES), 'kd_cos_reduction': ('sum', 'mean'),
               'ft_loss': ('softmax', 'aam'), 'curriculum': tuple(SCHEDULES)}
    for key, allowed in choices.items():
        if args[key] not in allowed:
            _fail(key, args[key], f'expected one of {list(allowed)}')
    bad = [t for t in args['trials'] if t not in ('O', 'E', 'H')]
    if bad or not args['trials']:
        _fail('trials', args['trials'], "expected a non-empty list of 'O', 'E', 'H'")


def check_teacher_args(args: dict, teacher_layers: int, teacher_hidden: int) -> None:
    """Check the keys that depend on the teacher's configuration (read before its weights are loaded)."""
    idx = args['init_teacher_idx']
    if len(idx) != args['student_hidden_layer_num'] or not all(0 <= i < teacher_layers for i in idx):
        _fail('init_teacher_idx', idx, f"expected {args['student_hidden_layer_num']} teacher layer indices "
              f"(student_hidden_layer_num) within 0..{teacher_layers - 1}")
    if not args['target_layer_idx'] or not all(0 <= i <= teacher_layers for i in args['target_layer_idx']):
        _fail('target_layer_idx', args['target_layer_idx'],
              f'expected teacher hidden-state indices within 0..{teacher_layers}')
    if args['student_hidden_layer_size'] != teacher_hidden:
        _fail('student_hidden_layer_size', args['student_hidden_layer_size'],
              f"the student keeps the teacher's width, {teacher_hidden}")


def public_args(args: dict) -> dict:
    """The arguments with every credential masked, for logs and saved files."""
    return {k: ('***' if k in SECRET_KEYS and v else v) for k, v in args.items()}


def differing_arguments(recorded: dict, requested: dict) -> tuple[list[str], list[str]]:
    """Compare a run's recorded arguments with new ones: (keys that change what the run computes, neutral keys
    that differ), each as 'key: recorded → requested' lines. `resume` says how a run starts, not what it is: not
    compared."""
    now = json.loads(json.dumps(public_args(requested)))  # the recorded file's types: lists, null, masked tokens
    changed, neutral = [], []
    for key in sorted((set(recorded) | set(now)) - {'resume'}):
        if recorded.get(key) != now.get(key):
            line = f'{key}: {recorded.get(key, "(absent)")!r} → {now.get(key, "(absent)")!r}'
            (neutral if key in RUN_NEUTRAL_KEYS else changed).append(line)
    return changed, neutral
