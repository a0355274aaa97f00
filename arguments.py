"""Every default of OS-KDFT2 in one place.

Edit the dicts below, or override any key on the command line:
    python main.py path_train=/data/vox1/dev/wav epoch=50 init_teacher_idx=[0,1] trials="['O','E']"
Each value is parsed as a Python literal; text is accepted as-is where the default is text. Quote a value that
holds quotes or spaces for the shell (bash turns trials=['O','E'] into trials=[O,E]).
`python main.py --help` lists every key with its default and comment, grouped as below.
An unknown key, a value of the wrong type or out of range stops the run with a message naming the key, before
anything is loaded.

Precedence: a value you write — here or on the command line — is never replaced. Keys written `Chosen(value)` are
left to the layers: the method (METHOD_ARGS), the recipe (RECIPES) and, with no data set configured (`path_train`
empty), the built-in demo (DEMO_ARGS, with the method's and the recipe's demo budgets) set them, later layers over
earlier ones; `value` holds when none does. Every run prints one line per layer with the keys it set. Example: the
demo trains 10 epochs (DEMO_ARGS); edit `'epoch': Chosen(100),` below into `'epoch': 30,` and `python main.py` trains
30 — as does `python main.py epoch=30` — and the demo's line no longer lists epoch. Write `Chosen(...)` back to
leave the key to the layers again.
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

from utils.min_audio import cnn_input_samples


@dataclass(frozen=True)
class Chosen:
    """A key left to the layers: the method, the recipe or the demo sets it; `value` when none does."""
    value: object


SYSTEM_ARGS = {
    # --- experiment identity (run directory = path_log/project/name) ---
    'project': 'OS-KDFT2',                  # project name (local folder, wandb/neptune project)
    'name': Chosen('os_kdft2_hubert_base'),         # run name; an existing run is never overwritten
    'tags': Chosen(['OS-KDFT2', 'HuBERT-base']),    # tracker tags
    'description': Chosen('joint KD + FT of HuBERT-base into a 2-layer student'),  # tracker description
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
    'num_workers': Chosen(min(4, os.cpu_count() or 1)),  # DataLoader workers per process (4, or the cores if fewer)
    'num_threads': 0,                       # intra-op threads per process; 0 = its share of the cores (utils/threads)
    # --- hardware ---
    'usable_gpu': '',                       # GPU ids to spawn on, e.g. '0,1'; '' = all visible; 'cpu' = none
                                            # (ignored under torchrun: each rank uses the GPU LOCAL_RANK names)
    'cpu_processes': 1,                     # processes (gloo) when no GPU is used (ignored under torchrun)
    'amp': False,                           # bf16 autocast of the training step on GPU (ignored on CPU): an opt-in
                                            # deviation, its effect on EER not measured; losses, validation and
                                            # evaluation stay fp32
    'tf32': True,                           # TF32 tensor cores for matmul and cuDNN on Ampere+ GPUs, as the release's
                                            # container (NGC 23.08) had them; False = strict fp32
    'deterministic': False,                 # deterministic GPU algorithms (slower): a resumed run then equals an
                                            # uninterrupted one on a GPU too (on the CPU it always does)
    'process_group_timeout_min': 60.0,      # minutes a rank waits for the others (nccl and gloo): rank 0 lists and
                                            # checks the data while the others wait
}

EXPERIMENT_ARGS = {
    # --- method ---
    'method': 'os_kdft2',                   # os_kdft2 | os_kdft | precomp | postcomp (phases: trainer/methods.py)
    'recipe': 'release',                    # release (as published) | modern: aug + AAM + LM-FT + AS-Norm (RECIPES)
    'huggingface_url': 'facebook/hubert-base-ls960',  # teacher: hub id or local directory
    'epoch': Chosen(100),                           # epochs of the joint methods / of the baselines' fine-tuning phase
    'epoch_KD': Chosen(100),                        # epochs of the baselines' KD phase (precomp 1st, postcomp 2nd)
    'batch_size': Chosen(50),                       # global batch, divided among processes
    'rand_seed': 1,                         # seed of every random draw
    # --- student ---
    'student_hidden_layer_size': Chosen(768),       # must equal the teacher's hidden size
    'student_hidden_layer_num': 2,          # transformer layers in the student
    'init_teacher_idx': [0, 1],             # teacher layer copied into each student layer
    'student_init': 'release',              # release: copy CNN, projection, chosen layers (pos-conv, encoder LN,
                                            # mask embedding fresh) | teacher: copy those too (DistilHuBERT / s3prl)
    'student_dropout': None,                # every dropout rate of the student; None = teacher config's
    'student_layerdrop': None,              # LayerDrop rate; None = teacher config's (0.1 for HuBERT-base)
    'student_mask_time_prob': None,         # SpecAugment time-mask rate; None = teacher config's (0.05)
    'adapter_size': Chosen(64),                     # OS-KDFT adapter bottleneck (method os_kdft)
    # --- speaker back-end ---
    'embed_size': Chosen(192),                      # speaker embedding size
    'use_TFT': Chosen(True),                        # back-end layer aggregation: attentive feature tuner (True) or the
                                            # released weighted sum of hidden states (False); set per method
    'ft_loss': Chosen('softmax'),                   # softmax (class-weighted CE) | aam
    'class_weight': True,                   # weight classes by N / n_c as released
    'aam_margin': Chosen(0.2),                      # AAM-softmax margin
    'aam_scale': Chosen(30.0),                      # AAM-softmax scale
    # --- knowledge distillation ---
    'cos_lambda': 1.0,                      # weight of the cosine term of the DistilHuBERT loss
    'kd_cos_reduction': Chosen('sum'),              # frames reduction of the cosine term: sum (released) | mean (paper)
    'target_layer_idx': Chosen([4, 8, 12]),         # teacher layers predicted by the KD heads
    'curriculum': Chosen('linear'),                 # p(VoxCeleb KD item): linear | constant | step | cosine | none |
                                                    # switch; set per method
    'curriculum_p': 0.5,                    # the constant schedule's probability
    'w_kd': 1.0,                            # weight of the KD loss
    'w_ft': 1.0,                            # weight of the speaker loss
    'freeze_epochs': Chosen(5),                     # precomp: student / postcomp: teacher frozen, first FT epochs
    'w_embed_mse': 1.0,                     # postcomp: weight of the embedding MSE
    # --- audio ---
    'crop_size': Chosen(48000),                     # training crop (samples at 16 kHz)
    # --- augmentation (on the fly; 0.0 = none, as released) ---
    'aug_prob': Chosen(0.0),                        # chance a crop gets one of reverb / noise / music / babble
    'aug_rows': 'ft',                       # ft: FT crops | both: KD crops too (teacher hears the same audio)
    'seg_size': Chosen(48000),                      # TTA segment (samples)
    'num_seg': Chosen(5),                           # TTA segments per utterance
    # --- optimisation ---
    'lr': Chosen(5e-5),                             # Adam learning rate
    'lr_min': Chosen(5e-5),                         # CosineAnnealingWarmRestarts eta_min
    'weight_decay': Chosen(1e-4),                   # Adam weight decay
    'T_mult': 1,                            # CosineAnnealingWarmRestarts T_mult (T_0 = epoch)
    'max_nonfinite_steps': 10,              # consecutive non-finite losses that stop the run
    'max_bad_audio_fraction': 0.01,         # fraction of unreadable training files that stops the run
    # --- large-margin fine-tuning: a last phase after the method's own (0 epochs = none, as released) ---
    'lmft_epochs': Chosen(0),                       # epochs of the LM-FT phase: speaker loss only, from the best state
    'lmft_margin': Chosen(0.5),                     # its AAM-softmax margin
    'lmft_crop_size': Chosen(96000),                # its training crop (samples; 6 s)
    'lmft_lr': Chosen(1e-5),                        # its Adam learning rate (cosine down to min(lr_min, lmft_lr))
    # --- scoring of the final evaluation (validation always scores raw cosines) ---
    'score_norm': Chosen('none'),                   # none: raw cosines (released) | asnorm: AS-Norm next to the raw
    'cohort_size': Chosen(300),                     # AS-Norm: top-N closest cohort entries per side
    'cohort_utts_per_speaker': Chosen(20),          # cohort: training utterances averaged per speaker (0 = all)
}

# The keys each method sets (its `args`) and its budget in the built-in demo (`demo`, over DEMO_ARGS); what a method
# trains is its entry of trainer/methods.py: METHODS (same names).
METHOD_ARGS = {
    # joint KD + FT, attentive feature tuner, curriculum KD data
    'os_kdft2': {'args': {'use_TFT': True, 'curriculum': 'linear'}, 'demo': {}},
    # joint KD + FT, adapters on the FT rows, weighted-sum back-end, LibriSpeech KD data
    'os_kdft': {'args': {'use_TFT': False, 'curriculum': 'none'}, 'demo': {'name': 'demo_os_kdft'}},
    # compress (KD only), then fine-tune the student: weighted sum as released, LibriSpeech KD data
    'precomp': {'args': {'use_TFT': False, 'curriculum': 'none', 'batch_size': 100},
                'demo': {'name': 'demo_precomp', 'epoch_KD': 5, 'epoch': 5, 'freeze_epochs': 1}},
    # fine-tune the teacher copy, then compress it: KD data LibriSpeech, VoxCeleb1 from epoch int(0.9 epoch_KD) on
    'postcomp': {'args': {'use_TFT': False, 'curriculum': 'switch', 'batch_size': 100},
                 'demo': {'name': 'demo_postcomp', 'epoch_KD': 5, 'epoch': 5, 'freeze_epochs': 1}},
}

# Applied when `path_train` is empty: the built-in demo (synthetic corpus, tiny random teacher, CPU); each method
# and recipe adds its own demo budget (their `demo` entries).
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

# Training recipes applied over a method's keys (where arguments.py leaves a key Chosen): the field's values for each
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
                    'usable_gpu', 'cpu_processes', 'process_group_timeout_min')
ARGUMENTS_FILE = 'arguments.json'  # the arguments a run was started with, in its run directory (tokens masked)
# Neutral keys that set how many processes and loader workers share the cores, and so num_threads=0's thread count.
THREAD_SHARE_KEYS = ('num_workers', 'cpu_processes', 'usable_gpu')
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
    'process_group_timeout_min': Range(0.0, low_open=True),
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
# (the names of curriculum, student_init and aug_rows are those of data/curriculum.py: SCHEDULES, models/student.py:
# INIT_MODES and data/curriculum.py: AUG_ROWS; written here so that a wrong value stops before torch is imported)
CHOICES = {
    'method': tuple(METHOD_ARGS), 'recipe': tuple(RECIPES),
    'validation': ('test', 'heldout'), 'kd_cos_reduction': ('sum', 'mean'), 'ft_loss': ('softmax', 'aam'),
    'curriculum': ('linear', 'constant', 'step', 'cosine', 'none', 'switch'), 'student_init': ('release', 'teacher'),
    'neptune_mode': ('async', 'sync', 'offline', 'debug'),
    'aug_rows': ('ft', 'both'), 'score_norm': ('none', 'asnorm'),
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
        default = defaults[key]
        overrides[key] = _parse_value(key, text, default.value if isinstance(default, Chosen) else default)
    return overrides


def process_group_timeout(argv: list[str] | None = None) -> float:
    """process_group_timeout_min as given in `argv` (sys.argv by default), else its default: what torchrun's ranks join
    their process group with, before rank 0 reads and checks the arguments. A given value that does not parse or lies
    out of range is not used here, and rank 0's check of the arguments then stops the run naming it."""
    key = 'process_group_timeout_min'
    argv = sys.argv[1:] if argv is None else argv
    given = [item for item in argv if item.split('=', 1)[0].strip() == key and '=' in item]
    if given:
        try:
            value = parse_overrides(given[-1:], SYSTEM_ARGS)[key]
        except SystemExit:
            return SYSTEM_ARGS[key]
        if RANGES[key].holds(value):
            return value
    return SYSTEM_ARGS[key]


def is_demo(args: dict) -> bool:
    """True when no dataset is configured, so the built-in demo runs."""
    return args['path_train'] == ''


def file_defaults() -> dict:
    """The values written in SYSTEM_ARGS and EXPERIMENT_ARGS, a Chosen key's own value in its place: the arguments
    of a run with no method, recipe or demo layer (for tests and benchmarks that build parts directly)."""
    return {key: value.value if isinstance(value, Chosen) else value
            for key, value in {**SYSTEM_ARGS, **EXPERIMENT_ARGS}.items()}


@dataclass(frozen=True)
class Layer:
    """What one layer (a method, a recipe, the demo) did in a run: the keys whose value it set, and the keys it would
    have set that the user wrote (key → 'arguments.py' or 'command line'), kept as written."""
    name: str
    set: dict
    kept: dict


def resolve_args(argv: list[str] | None = None, command: str = 'python main.py') -> tuple[dict, list[Layer]]:
    """The run's arguments and what each layer set. arguments.py's values ← command-line overrides ← the method's,
    the recipe's and (when no data set is configured) the demo's values, each layer only on keys arguments.py leaves
    Chosen and the command line does not give ← env credentials; every value checked (check_values). --help / -h
    prints the keys of `command` and exits."""
    written = {**SYSTEM_ARGS, **EXPERIMENT_ARGS}
    argv = sys.argv[1:] if argv is None else argv
    if any(item in HELP_FLAGS for item in argv):
        try:
            print_help(command)
            sys.stdout.flush()
        except BrokenPipeError:  # `--help | head` stopped reading: it has what it wanted, and exit must not fail
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(0)
    overrides = parse_overrides(argv, written)
    args = {**file_defaults(), **overrides}
    for key in ('method', 'recipe'):
        if args[key] not in CHOICES[key]:
            _fail(key, args[key], f'expected one of {list(CHOICES[key])}')
    method, recipe = METHOD_ARGS[args['method']], RECIPES[args['recipe']]
    stack = [(f"method {args['method']}", method['args']), (f"recipe {args['recipe']}", recipe['args'])]
    if is_demo(args):
        stack.append(('demo', {**DEMO_ARGS, **method['demo'], **recipe['demo']}))
    origin = {}
    for name, values in stack:
        for key, value in values.items():
            if isinstance(written[key], Chosen) and key not in overrides:
                args[key], origin[key] = value, name
    layers = [Layer(name, {k: args[k] for k in values if origin.get(k) == name},
                    {k: 'command line' if k in overrides else 'arguments.py' for k in values
                     if k in overrides or not isinstance(written[k], Chosen)})
              for name, values in stack]
    for key, env in ENV_CREDENTIALS.items():
        if not args[key] and os.environ.get(env):
            args[key] = os.environ[env]
    check_values(args)
    return args, layers


def get_args(argv: list[str] | None = None, command: str = 'python main.py') -> dict:
    """The run's arguments (resolve_args without the layers)."""
    return resolve_args(argv, command)[0]


def origin_lines(args: dict, layers: list[Layer]) -> list[str]:
    """One line per layer, printed at the start of every run: the keys whose value the layer set, with that value,
    and the keys it would set that the user wrote (kept, with their value and where they were written)."""
    lines = []
    for layer in layers:
        values = ' '.join(f'{key}={value!r}' for key, value in layer.set.items())
        if layer.name == f"recipe {args['recipe']}" and not RECIPES[args['recipe']]['args']:
            values = 'nothing (as published: no augmentation, no LM-FT, raw cosine scores)'
        kept = ' '.join(f'{key}={args[key]!r} ({where})' for key, where in layer.kept.items())
        lines.append(f"{layer.name} sets: {values or 'nothing'}" + (f'; yours kept: {kept}' if kept else ''))
    return lines


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
          'A key marked * is left to the layers: the method, the recipe and, with path_train empty, the built-in\n'
          'demo set it (their values in [...]); a value in arguments.py or given here always wins. Credentials are\n'
          f"better passed by environment: {', '.join(f'{env} (or {key})' for key, env in ENV_CREDENTIALS.items())}.")
    written = {**SYSTEM_ARGS, **EXPERIMENT_ARGS}
    for heading, keys in documented_keys():
        print(f'\n{heading}:')
        width = max(len(key) for key, _ in keys)
        for key, comment in keys:
            value = written[key]
            shown = f'{value.value!r}*' if isinstance(value, Chosen) else repr(value)
            print(f'  {key:<{width}} = {shown:<12}  # {comment}{layer_values(key)}')


def layer_values(key: str) -> str:
    """The values the layers give `key`, for the help: ' [method precomp: 100; demo: 32]' ('' when none does)."""
    tables = [('method', METHOD_ARGS, 'args'), ('recipe', RECIPES, 'args'), ('demo of method', METHOD_ARGS, 'demo'),
              ('demo of recipe', RECIPES, 'demo')]
    parts = [f'{kind} {name}: {entry[part][key]!r}' for kind, table, part in tables for name, entry in table.items()
             if key in entry[part]]
    if key in DEMO_ARGS:
        parts.append(f'demo: {DEMO_ARGS[key]!r}')
    return f" [{'; '.join(parts)}]" if parts else ''


def _fail(key: str, value, allowed: str) -> None:
    raise SystemExit(f"argument '{key}': got {value!r}; {allowed}")


def check_devices(usable_gpu: str, visible_gpus: int, cuda_problem: str) -> None:
    """usable_gpu (its form checked by check_values) names only GPUs among the `visible_gpus` CUDA devices, and a
    machine whose GPUs torch cannot use (`cuda_problem`, utils/hardware.py machine_cuda_problem; '' when they can or
    there are none) runs only with usable_gpu=cpu, on the CPU on purpose, never silently. Part of check_settings."""
    text = usable_gpu.strip()
    if text == 'cpu':
        return
    if cuda_problem:
        _fail('usable_gpu', usable_gpu, f'{cuda_problem}; or give usable_gpu=cpu to train on the CPU on purpose '
              f'(under torchrun: CUDA_VISIBLE_DEVICES= hides the GPUs)')
    if not text:
        return
    if not visible_gpus:
        _fail('usable_gpu', usable_gpu, "no CUDA GPU is visible here; use usable_gpu=cpu (or leave it empty) to run "
              "on the CPU")
    missing = [int(i) for i in text.split(',') if int(i) >= visible_gpus]
    if missing:
        _fail('usable_gpu', usable_gpu, f'GPUs {missing} do not exist ({visible_gpus} visible)')


def check_values(args: dict) -> None:
    """Stop when a value cannot work, naming the key, the value and what is allowed: every numeric key's range,
    the choices, folder names, trial lists and demo/data-path consistency. Needs no file, device or import beyond
    this one: get_args runs it, so a wrong value stops before torch is imported."""
    defaults = file_defaults()
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
    if not re.fullmatch(r'(\d+(\s*,\s*\d+)*|cpu|)', args['usable_gpu'].strip()):
        _fail('usable_gpu', args['usable_gpu'], "expected GPU ids like '0,1', 'cpu' (none) or '' (all visible)")
    bad = [t for t in args['trials'] if t not in ('O', 'E', 'H')]
    if bad or not args['trials']:
        _fail('trials', args['trials'], """expected a non-empty list of 'O', 'E', 'H' (in bash: trials="['O','E']")""")
    if is_demo(args):
        for key in DEMO_DATA_KEYS:
            if args[key]:
                _fail(key, args[key], 'path_train is empty, so the built-in demo would run and ignore it; give '
                      'path_train (the VoxCeleb1 dev root) as well, or leave it out')


def check_args(args: dict, world_size: int) -> None:
    """Stop before any data or model is loaded when a setting cannot work with the files at hand: a data path does
    not exist, augmentation lacks its files (the demo generates its data and noise set), or the batch does not divide
    among the `world_size` processes. Part of check_settings."""
    if args['aug_prob'] > 0 and not (args['path_musan'] and args['path_rir']) and not is_demo(args):
        _fail('aug_prob', args['aug_prob'], 'augmentation reads MUSAN and room impulse responses: give path_musan '
              '(the MUSAN root) and path_rir (e.g. RIRS_NOISES/simulated_rirs), or aug_prob=0.0')
    data_keys = () if is_demo(args) else ('path_train', 'path_test', 'path_trials')  # the demo writes its own
    data_keys += tuple(key for key in ('path_libri', 'path_musan', 'path_rir') if args[key])
    for key in data_keys:
        for path in [args[key]] if isinstance(args[key], str) else args[key]:
            if not os.path.exists(path):
                _fail(key, path, 'that path does not exist')
    if args['batch_size'] % world_size or args['batch_size'] // world_size < 2:
        _fail('batch_size', args['batch_size'], f'the global batch must divide evenly among {world_size} '
              f'process(es), at least 2 per process (BatchNorm)')


def check_teacher_args(args: dict, teacher_layers: int, teacher_hidden: int) -> None:
    """Check the keys that depend on the teacher's configuration (read before its weights are loaded). Part of
    check_settings."""
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


@dataclass(frozen=True)
class ResumeFacts:
    """What the run directory a run resumes holds (read before anything is loaded; only when it holds
    checkpoint_last.pt)."""
    run_dir: str
    recorded: dict | None  # its arguments.json (None: a run of an older version, which wrote none)
    phase: str  # the training phase its checkpoint_last.pt belongs to ('' in checkpoints of an older version)
    finished: tuple[str, ...]  # the phases its phases.json records as finished


@dataclass(frozen=True)
class Facts:
    """What the settings are checked against besides themselves."""
    world_size: int  # processes the run will have
    visible_gpus: int  # CUDA GPUs this machine shows
    cuda_problem: str  # why this machine's GPUs cannot be used ('' when they can or there are none)
    teacher_layers: int  # transformer layers of the teacher's config
    teacher_hidden: int  # its hidden size
    phases: tuple[str, ...]  # the phases this run trains, in order (trainer/methods.py: phases_of)
    resume: ResumeFacts | None  # the run to continue, when resuming one that holds checkpoint_last.pt


def check_settings(args: dict, facts: Facts) -> list[str]:
    """The settings check: stop, naming the key, when a setting cannot work with this machine, the data paths, the
    teacher or the run it resumes; called once, before anything is loaded (the values themselves were checked by
    get_args: check_values). Returns the notes to print (what a resume accepts although it differs)."""
    check_devices(args['usable_gpu'], facts.visible_gpus, facts.cuda_problem)
    check_args(args, facts.world_size)
    check_teacher_args(args, facts.teacher_layers, facts.teacher_hidden)
    return [] if facts.resume is None else check_resume(args, facts.resume, facts.phases)


def check_resume(args: dict, run: ResumeFacts, phases: tuple[str, ...]) -> list[str]:
    """A resumed run continues the run it names: the phase of its last checkpoint is one of this method's, the phases
    before it are recorded as finished, and every key that changes what it computes has its recorded value. Returns
    notes: the neutral keys that differ, or that an older run recorded no arguments."""
    phase = run.phase or phases[0]
    last = os.path.join(run.run_dir, 'checkpoint_last.pt')
    if phase not in phases:
        _fail('resume', True, f'{last} belongs to phase {phase!r}, which is not a phase of this method '
              f"({list(phases)}); resume with the method the run was started with")
    missing = [name for name in phases[:phases.index(phase)] if name not in run.finished]
    if missing:
        _fail('resume', True, f"{os.path.join(run.run_dir, 'phases.json')} does not record the finished phase(s) "
              f'{missing}; the run directory is incomplete')
    if run.recorded is None:
        return [f'note: {os.path.join(run.run_dir, ARGUMENTS_FILE)} does not exist (a run from an older version); the '
                f'arguments cannot be checked']
    changed, neutral = differing_arguments(run.recorded, args)
    if changed:
        _fail('resume', True, f"{run.run_dir} was started with other values of keys that change what it computes: "
              f"{'; '.join(changed)}. Resume with the recorded values, or start a new name=")
    if not neutral:
        return []
    threads = [line for line in neutral if line.split(':')[0] in THREAD_SHARE_KEYS] if not args['num_threads'] else []
    follow = (' (with num_threads=0 the intra-op threads per process follow the processes and loader workers, which '
              'changes the order of float sums: the last digits of the figures may differ; num_threads=N fixes them)'
              if threads else '')
    return [f"note: resuming with changed settings that do not change the result: {'; '.join(neutral)}{follow}"]


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
