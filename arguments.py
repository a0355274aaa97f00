"""Every default of OS-KDFT2 in one place.

Edit the dicts below, or override any key on the command line:
    python main.py path_train=/data/vox1/dev/wav epoch=50 init_teacher_idx=[0,1] trials="['O','E']"
Each value is parsed as a Python literal; text is accepted as-is where the default is text. Quote a value that
holds quotes or spaces for the shell (bash turns trials=['O','E'] into trials=[O,E]).
`python main.py --help` lists every key with its default and comment, grouped as below.
An unknown key, a value of the wrong type or out of range stops the run with a message naming the key, before
anything is loaded. With no dataset configured (`path_train` empty) the built-in demo settings (DEMO_ARGS) apply.
"""
from __future__ import annotations

import ast
import difflib
import json
import math
import os
import re
import sys
import tokenize
from dataclasses import dataclass

import torch

from data.curriculum import AUG_ROWS, SCHEDULES
from models.student import INIT_MODES
from trainer.methods import METHODS
from utils.min_audio import cnn_input_samples

SYSTEM_ARGS = {
    # --- experiment identity (run directory = path_log/project/name) ---
    'project': 'OS-KDFT2',                  # project name (local folder, wandb/neptune project)
    'name': 'os_kdft2_hubert_base',         # run name; an existing run is never overwritten
    'tags': ['OS-KDFT2', 'HuBERT-base'],    # tracker tags
    'description': 'joint KD + FT of HuBERT-base into a 2-layer student',  # tracker description
    'path_log': 'runs',                     # root of all run directories
    'resume': False,                        # continue the run in path_log/project/name from its last checkpoint
    'export_onnx': False,                   # also write <run>/export/model.onnx (+ .json) at the end of training
    # --- progress output and trackers (tokens may come from WANDB_API_KEY / NEPTUNE_API_TOKEN instead) ---
    'log_interval_s': 180.0,                # seconds between progress lines when the output is not a terminal
                                            # (a cluster job's log file); a terminal shows a progress bar instead
    'use_wandb': False,                     # also log to Weights & Biases (WANDB_MODE=offline honoured)
    'wandb_user': '',                       # wandb entity
    'wandb_token': '',                      # wandb API key; prefer the WANDB_API_KEY environment variable
    'use_neptune': False,                   # also log to neptune
    'neptune_user': '',                     # neptune workspace
    'neptune_token': '',                    # neptune API token; prefer NEPTUNE_API_TOKEN
    'neptune_mode': 'async',                # neptune connection mode: async | sync | offline | debug
    # --- data (real on-disk layouts, see README) ---
    'path_libri': '',                       # LibriSpeech train-clean-100 root (<spk>/<chapter>/*.flac)
    'path_train': '',                       # dev root or list of roots (VoxCeleb1 / VoxCeleb2 as .wav); ''=demo
    'path_test': '',                        # VoxCeleb1 test root; for the E/H lists [<vox1 dev>, <vox1 test>]
    'path_cache': os.path.join(os.path.expanduser('~'), '.cache', 'os_kdft2', 'index'),  # scan cache; '' = none
    'path_trials': '',                      # trial list file, or a directory holding the O/E/H lists
    'trials': ['O'],                        # lists scored at the end: any of 'O', 'E', 'H'
    'validation': 'test',                   # epoch selection on: 'test' (original, optimistic) | 'heldout'
    'val_speakers': 10,                     # dev speakers held out of training when validation='heldout'
    'val_trials': 2000,                     # trials drawn among held-out speakers when validation='heldout'
    'path_demo': os.path.join(os.path.expanduser('~'), '.cache', 'os_kdft2'),  # demo corpus + tiny teacher cache
    'path_musan': '',                       # MUSAN root (noise/, music/, speech/ below it); '' = demo set or none
    'path_rir': '',                         # folder of room impulse responses (e.g. RIRS_NOISES/simulated_rirs)
    'num_workers': min(4, os.cpu_count() or 1),  # DataLoader workers per process (4, or the cores if fewer)
    'num_threads': 0,                       # intra-op threads per process; 0 = its share of the cores (utils/threads)
    # --- hardware ---
    'usable_gpu': '',                       # GPU ids to spawn on, e.g. '0,1'; '' = all visible; 'cpu' = none
                                            # (ignored under torchrun: each rank uses the GPU LOCAL_RANK names)
    'cpu_processes': 1,                     # processes (gloo) when no GPU is used (ignored under torchrun)
    'amp': False,                           # bf16 autocast on GPU (ignored on CPU): an opt-in deviation from the
                                            # released fp32, its effect on EER not measured yet
}

EXPERIMENT_ARGS = {
    # --- method ---
    'method': 'os_kdft2',                   # os_kdft2 | os_kdft | precomp | postcomp (phases: trainer/methods.py)
    'recipe': 'release',                    # release (as published) | modern: aug + AAM + LM-FT + AS-Norm (RECIPES)
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
    # --- augmentation (on the fly; 0.0 = none, as released) ---
    'aug_prob': 0.0,                        # chance a crop gets one of reverb / noise / music / babble
    'aug_rows': 'ft',                       # ft: FT crops | both: KD crops too (teacher hears the same audio)
    'seg_size': 48000,                      # TTA segment (samples)
    'num_seg': 5,                           # TTA segments per utterance
    # --- optimisation ---
    'lr': 5e-5,                             # Adam learning rate
    'lr_min': 5e-5,                         # CosineAnnealingWarmRestarts eta_min
    'weight_decay': 1e-4,                   # Adam weight decay
    'T_mult': 1,                            # CosineAnnealingWarmRestarts T_mult (T_0 = epoch)
    'max_nonfinite_steps': 10,              # consecutive non-finite losses that stop the run
    'max_bad_audio_fraction': 0.01,         # fraction of unreadable training files that stops the run
    # --- large-margin fine-tuning: a last phase after the method's own (0 epochs = none, as released) ---
    'lmft_epochs': 0,                       # epochs of the LM-FT phase: speaker loss only, from the best state
    'lmft_margin': 0.5,                     # its AAM-softmax margin
    'lmft_crop_size': 96000,                # its training crop (samples; 6 s)
    'lmft_lr': 1e-5,                        # its Adam learning rate (cosine down to min(lr_min, lmft_lr))
    # --- scoring of the final evaluation (validation always scores raw cosines) ---
    'score_norm': 'none',                   # none: raw cosines (released) | asnorm: AS-Norm next to the raw
    'cohort_size': 300,                     # AS-Norm: top-N closest cohort entries per side
    'cohort_utts_per_speaker': 20,          # cohort: training utterances averaged per speaker (0 = all)
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

# Training recipes applied over a method's defaults (unless given on the command line): the field's values for each
# switch, and their budget in the built-in demo. 'release' changes nothing.
RECIPES = {
    'release': {'args': {}, 'demo': {}},
    'modern': {'args': {'aug_prob': 0.6, 'ft_loss': 'aam', 'aam_margin': 0.2, 'aam_scale': 32.0,
                        'lmft_epochs': 5, 'lmft_margin': 0.5, 'lmft_crop_size': 96000, 'lmft_lr': 1e-5,
                        'score_norm': 'asnorm', 'cohort_size': 300},
               # demo: a quarter of its 40 cohort speakers, as 300 is of VoxCeleb1 dev's 1,211; 5 of 20 utterances
               'demo': {'lmft_epochs': 2, 'lmft_crop_size': 32000, 'lmft_lr': 1e-4, 'cohort_size': 10,
                        'cohort_utts_per_speaker': 5}},
}

# Keys whose default is None: the types they accept besides None.
NULLABLE = {'student_dropout': float, 'student_layerdrop': float, 'student_mask_time_prob': float}

# Keys that do not change what a run computes (model, data, order of draws): a run may be resumed or reused with
# other values of these; any other difference is refused (see differing_arguments).
RUN_NEUTRAL_KEYS = ('name', 'tags', 'description', 'use_wandb', 'wandb_user', 'wandb_token', 'use_neptune',
                    'neptune_user', 'neptune_token', 'neptune_mode', 'num_workers', 'log_interval_s', 'path_demo',
                    'usable_gpu', 'cpu_processes')
ARGUMENTS_FILE = 'arguments.json'  # the arguments a run was started with, in its run directory (tokens masked)
# Keys that take one folder or a list of folders.
PATH_LIST_KEYS = ('path_train', 'path_test')

SECRET_KEYS = ('wandb_token', 'neptune_token')
ENV_CREDENTIALS = {'wandb_token': 'WANDB_API_KEY', 'neptune_token': 'NEPTUNE_API_TOKEN'}

HELP_FLAGS = ('--help', '-h')
DEMO_DATA_KEYS = ('path_test', 'path_trials', 'path_libri')  # ignored by the demo, so refused without path_train
FOLDER_NAME_KEYS = ('project', 'name')  # one folder each of path_log/project/name


# SpecAugment's time-mask length in frames (mask_time_length): a segment must give one frame of the CNN front-end
# (utils/min_audio.py; 400 samples, the receptive field), a training crop one frame more than a time mask (3,600
# samples), or the student's masking fails
TIME_MASK_FRAMES = 10
MIN_SEGMENT = cnn_input_samples(1)
MIN_CROP = cnn_input_samples(TIME_MASK_FRAMES + 1)


@dataclass(frozen=True)
class Range:
    """The values a numeric key accepts: finite, from `low` up to `high` (each bound excluded when open);
    `why` says what sets the range."""
    low: float
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    why: str = ''

    def holds(self, value: float) -> bool:
        above = self.low < value if self.low_open else self.low <= value
        below = value < self.high if self.high_open else value <= self.high
        return math.isfinite(value) and above and below

    def describe(self, kind: str) -> str:
        if self.high == math.inf:
            text = f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        else:
            text = (f"{kind} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.high_open else ']'}")
        return f'{text} ({self.why})' if self.why else text


PROBABILITY = Range(0.0, 1.0)
# every numeric key: the range it must lie in (None also passes for the NULLABLE keys)
RANGES = {
    'val_speakers': Range(1, why='and below the number of dev speakers, checked once they are read'),
    'val_trials': Range(2, why='a target and a non-target trial at least'),
    'num_workers': Range(0), 'num_threads': Range(0), 'log_interval_s': Range(0.0),
    'cpu_processes': Range(1),
    'epoch': Range(1), 'epoch_KD': Range(1),
    'batch_size': Range(2, why='BatchNorm needs 2 items per process'),
    'rand_seed': Range(0),
    'student_hidden_layer_size': Range(1), 'student_hidden_layer_num': Range(1),
    'student_dropout': PROBABILITY, 'student_layerdrop': PROBABILITY, 'student_mask_time_prob': PROBABILITY,
    'adapter_size': Range(1), 'embed_size': Range(1),
    'aam_margin': Range(0.0, math.pi / 2, high_open=True), 'aam_scale': Range(0.0, low_open=True),
    'cos_lambda': Range(0.0), 'curriculum_p': PROBABILITY,
    'w_kd': Range(0.0), 'w_ft': Range(0.0), 'freeze_epochs': Range(0), 'w_embed_mse': Range(0.0),
    'crop_size': Range(MIN_CROP, why=f'{TIME_MASK_FRAMES + 1} frames of the CNN front-end: a SpecAugment time mask '
                                     f'of {TIME_MASK_FRAMES} frames must fit'),
    'seg_size': Range(MIN_SEGMENT, why="one frame: the CNN front-end's receptive field"),
    'num_seg': Range(1),
    'lr': Range(0.0, why='0 trains nothing: a dry run'), 'lr_min': Range(0.0), 'weight_decay': Range(0.0),
    'T_mult': Range(1), 'max_nonfinite_steps': Range(1),
    'max_bad_audio_fraction': Range(0.0, 1.0, high_open=True),
    'aug_prob': PROBABILITY,
    'lmft_epochs': Range(0), 'lmft_margin': Range(0.0, math.pi / 2, high_open=True),
    'lmft_crop_size': Range(MIN_CROP, why='as crop_size'), 'lmft_lr': Range(0.0, low_open=True),
    'cohort_size': Range(2, why='a standard deviation of the top cohort scores needs two'),
    'cohort_utts_per_speaker': Range(0),
}
# keys whose text must be one of a few names
CHOICES = {
    'validation': ('test', 'heldout'), 'kd_cos_reduction': ('sum', 'mean'), 'ft_loss': ('softmax', 'aam'),
    'curriculum': tuple(SCHEDULES), 'student_init': tuple(INIT_MODES),
    'neptune_mode': ('async', 'sync', 'offline', 'debug'),
    'recipe': tuple(RECIPES), 'aug_rows': tuple(AUG_ROWS), 'score_norm': ('none', 'asnorm'),
}


def _kind(key: str, default) -> str:
    """What a key accepts, in words: 'an int', 'a float or None', 'a list of ints', 'True or False', 'text'."""
    base = NULLABLE.get(key, type(default))
    words = {bool: 'True or False', int: 'an int', float: 'a float', str: 'text', list: 'a list'}
    kind = words.get(base, f'a {base.__name__}')
    if base is list and default:
        kind = f"a list of {'ints' if isinstance(default[0], int) else 'texts'}"
    return f'{kind} or None' if key in NULLABLE else kind


def _parse_value(key: str, text: str, default):
    """Parse one override: a Python literal, or plain text where the default is text."""
    expected = f'expected {_kind(key, default)} (default {default!r})'
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if key in PATH_LIST_KEYS and text.lstrip().startswith('['):
            raise SystemExit(f"argument '{key}': could not parse {text!r} as a list of folders; quote it for the "
                             f"shell: \"{key}=['/data/a','/data/b']\"")
        if isinstance(default, str):
            return text
        hint = f'; quote it for the shell, e.g. {key}="{default!r}"' if isinstance(default, list) else ''
        raise SystemExit(f"argument '{key}': could not parse {text!r}; {expected}{hint}")
    if key in PATH_LIST_KEYS and isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return value
    if isinstance(default, str) and not isinstance(value, str):
        return text  # e.g. name=2024 or path_train=1 stay text
    base = NULLABLE.get(key, type(default))
    ok = isinstance(value, base) and not (base is not bool and isinstance(value, bool))
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if key in NULLABLE and value is None:
        ok = True
    if ok and isinstance(default, list) and default:
        element = type(default[0])
        ok = all(isinstance(item, element) and not isinstance(item, bool) for item in value)
    if not ok:
        raise SystemExit(f"argument '{key}': got {value!r} ({type(value).__name__}), {expected}")
    return value


def parse_overrides(argv: list[str], defaults: dict) -> dict:
    """Turn ['key=value', ...] into a dict of typed values checked against `defaults`."""
    overrides = {}
    for item in argv:
        if '=' not in item:
            raise SystemExit(f"argument {item!r}: expected key=value (e.g. epoch=10); --help lists every key")
        key, text = item.split('=', 1)
        key = key.strip()
        if key not in defaults:
            close = difflib.get_close_matches(key, list(defaults), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ''
            raise SystemExit(f"argument '{key}': unknown key{hint} (--help lists every key)")
        overrides[key] = _parse_value(key, text, defaults[key])
    return overrides


def is_demo(args: dict) -> bool:
    """True when no dataset is configured, so the built-in demo runs."""
    return args['path_train'] == ''


def get_args(argv: list[str] | None = None, command: str = 'python main.py') -> dict:
    """Defaults ← the method's defaults ← the recipe's ← demo settings (when no data set is configured, with the
    method's and the recipe's demo budgets) ← command-line overrides ← env credentials; every value checked
    (check_values). --help / -h prints the keys of `command` and exits."""
    defaults = {**SYSTEM_ARGS, **EXPERIMENT_ARGS}
    argv = sys.argv[1:] if argv is None else argv
    if any(item in HELP_FLAGS for item in argv):
        try:
            print_help(command)
            sys.stdout.flush()
        except BrokenPipeError:  # `--help | head` stopped reading: it has what it wanted, and exit must not fail
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(0)
    overrides = parse_overrides(argv, defaults)
    args = dict(defaults)
    args.update(overrides)
    if args['method'] not in METHODS:
        raise SystemExit(f"argument 'method': got {args['method']!r}, expected one of {sorted(METHODS)}")
    if args['recipe'] not in RECIPES:
        raise SystemExit(f"argument 'recipe': got {args['recipe']!r}, expected one of {list(RECIPES)}")
    method, recipe = METHODS[args['method']], RECIPES[args['recipe']]
    args.update({k: v for k, v in {**method.defaults, **recipe['args']}.items() if k not in overrides})
    if is_demo(args):
        demo = {**DEMO_ARGS, **method.demo, **recipe['demo']}
        args.update({k: v for k, v in demo.items() if k not in overrides})
    for key, env in ENV_CREDENTIALS.items():
        if not args[key] and os.environ.get(env):
            args[key] = os.environ[env]
    check_values(args)
    return args


def recipe_line(args: dict) -> str:
    """One line naming the recipe and, unless it is 'release', the values its keys hold in this run (overrides
    included), printed at the start of every run."""
    keys = {**RECIPES[args['recipe']]['args'], **(RECIPES[args['recipe']]['demo'] if is_demo(args) else {})}
    if not keys:
        return f"recipe {args['recipe']}: as published (no augmentation, no LM-FT, raw cosine scores)"
    values = ' '.join(f'{key}={args[key]!r}' for key in keys)
    return f"recipe {args['recipe']} on top of method {args['method']}: {values}"


def documented_keys() -> list[tuple[str, list[tuple[str, str]]]]:
    """SYSTEM_ARGS and EXPERIMENT_ARGS as written in this file: [(group heading, [(key, comment), ...]), ...].

    Read from this file's own source (its `# --- heading ---` lines and each key's end-of-line comment), so the
    help says exactly what the file says.
    """
    with open(__file__, encoding='utf-8') as handle:
        tokens = list(tokenize.generate_tokens(handle.readline))
    groups: list[tuple[str, list[tuple[str, str]]]] = []
    depth, inside, previous, key_at = 0, False, '', {}
    for index, token in enumerate(tokens):
        if not inside:
            inside = (token.type == tokenize.NAME and token.start[1] == 0 and token.string in ('SYSTEM_ARGS',
                      'EXPERIMENT_ARGS') and [t.string for t in tokens[index + 1:index + 3]] == ['=', '{'])
            continue
        if token.type == tokenize.OP and token.string in '{[(':
            depth += 1
        elif token.type == tokenize.OP and token.string in '}])':
            depth -= 1
            inside = depth > 0
        elif token.type == tokenize.STRING and depth == 1 and previous in ('{', ','):
            key_at[token.start[0]] = ast.literal_eval(token.string)
        elif token.type == tokenize.COMMENT:
            heading = re.fullmatch(r'#\s*---\s*(.*?)\s*---\s*', token.string)
            if heading:
                groups.append((heading.group(1), []))
            elif token.start[0] in key_at:
                groups[-1][1].append((key_at.pop(token.start[0]), token.string.lstrip('#').strip()))
        if token.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE):
            previous = token.string
    return groups


def print_help(command: str, about: str = '') -> None:
    """Print the usage of `command`, the quoting rule, and every key with its default and comment, grouped."""
    print(f'usage: {command} [key=value ...]\n       {command} --help | -h\n')
    if about:
        print(about.strip() + '\n')
    print('Each key=value replaces a default below. Values are Python literals (epoch=10, lr=1e-4, amp=False,\n'
          'student_dropout=None); where the default is text, text needs no quotes (name=run1). Quote a value holding\n'
          "quotes or spaces for the shell, which otherwise strips them (trials=['O','E'] arrives as trials=[O,E]):\n"
          f"    {command} trials=\"['O','E']\" init_teacher_idx=[0,1] description='first try'\n"
          'With path_train empty the built-in demo runs, and its settings [demo: ...] replace those defaults;\n'
          "a method and a recipe (RECIPES) set a few keys as well. Keys given here always win. Credentials are\n"
          f"better passed by environment: {', '.join(f'{env} (or {key})' for key, env in ENV_CREDENTIALS.items())}.")
    defaults = {**SYSTEM_ARGS, **EXPERIMENT_ARGS}
    for heading, keys in documented_keys():
        print(f'\n{heading}:')
        width = max(len(key) for key, _ in keys)
        for key, comment in keys:
            demo = f' [demo: {DEMO_ARGS[key]!r}]' if key in DEMO_ARGS else ''
            print(f'  {key:<{width}} = {defaults[key]!r:<12}  # {comment}{demo}')


def _fail(key: str, value, allowed: str) -> None:
    raise SystemExit(f"argument '{key}': got {value!r}; {allowed}")


def _check_gpus(usable_gpu: str) -> None:
    """'' (all visible), 'cpu', or GPU ids like '0,1', which need CUDA."""
    text = usable_gpu.strip()
    if text in ('', 'cpu'):
        return
    if not re.fullmatch(r'\d+(\s*,\s*\d+)*', text):
        _fail('usable_gpu', usable_gpu, "expected GPU ids like '0,1', 'cpu' (none) or '' (all visible)")
    if not torch.cuda.is_available():
        _fail('usable_gpu', usable_gpu, "no CUDA GPU is visible here; use usable_gpu=cpu (or leave it empty) to run "
              "on the CPU")


def check_values(args: dict) -> None:
    """Stop when a value cannot work, naming the key, the value and what is allowed: every numeric key's range,
    the choices, folder names, trial lists, GPUs and demo/data-path consistency. Needs no file: get_args runs it."""
    defaults = {**SYSTEM_ARGS, **EXPERIMENT_ARGS}
    for key, allowed in RANGES.items():
        value = args[key]
        if not (key in NULLABLE and value is None) and not allowed.holds(value):
            finite = '' if math.isfinite(value) else 'a finite value, '
            _fail(key, value, f'expected {finite}{allowed.describe(_kind(key, defaults[key]))}')
    for key, allowed in CHOICES.items():
        if args[key] not in allowed:
            _fail(key, args[key], f'expected one of {list(allowed)}')
    for key in FOLDER_NAME_KEYS:
        if args[key] in ('', '.', '..') or re.search(r'[/\\]', args[key]):
            _fail(key, args[key], "expected a plain folder name (not empty, '.' or '..', no '/' or '\\'): the run "
                  "directory is path_log/project/name")
    for key in ('path_log', 'huggingface_url'):
        if not args[key]:
            _fail(key, args[key], 'expected a non-empty path')
    bad = [t for t in args['trials'] if t not in ('O', 'E', 'H')]
    if bad or not args['trials']:
        _fail('trials', args['trials'], """expected a non-empty list of 'O', 'E', 'H' (in bash: trials="['O','E']")""")
    _check_gpus(args['usable_gpu'])
    if is_demo(args):
        for key in DEMO_DATA_KEYS:
            if args[key]:
                _fail(key, args[key], 'path_train is empty, so the built-in demo would run and ignore it; give '
                      'path_train (the VoxCeleb1 dev root) as well, or leave it out')


def check_args(args: dict, world_size: int) -> None:
    """Stop before any data or model is loaded when a value cannot work (check_values), a data path does not exist,
    or the batch does not divide among the `world_size` processes."""
    check_values(args)
    if args['aug_prob'] > 0 and not (args['path_musan'] and args['path_rir']):
        _fail('aug_prob', args['aug_prob'], 'augmentation reads MUSAN and room impulse responses: give path_musan '
              '(the MUSAN root) and path_rir (e.g. RIRS_NOISES/simulated_rirs), or aug_prob=0.0')
    data_keys = ('path_train', 'path_test', 'path_trials') + tuple(key for key in ('path_libri', 'path_musan',
                                                                                     'path_rir') if args[key])
    for key in data_keys:
        for path in [args[key]] if isinstance(args[key], str) else args[key]:
            if not os.path.exists(path):
                _fail(key, path, 'that path does not exist')
    if args['batch_size'] % world_size or args['batch_size'] // world_size < 2:
        _fail('batch_size', args['batch_size'], f'the global batch must divide evenly among {world_size} '
              f'process(es), at least 2 per process (BatchNorm)')


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
