"""Every value is checked before anything is loaded: ranges of the numeric keys, folder names, choices, GPUs, data
paths given to the demo; each refusal names its key. Then `--help`: every key with its default and comment."""
import fcntl
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from transformers import HubertConfig

import arguments
import main
from arguments import NULLABLE, RANGES, file_defaults, get_args, print_help
from data.utterance_index import Utterance, UtteranceIndex
from data.voxceleb import hold_out_speakers
from utils import min_audio
from utils.errors import UserError

DEFAULTS = file_defaults()
DATA = 'path_train=/data/vox1/dev/wav'  # a data set configured (not checked to exist until check_args)


@pytest.mark.parametrize('item, key', [
    ('cpu_processes=0', 'cpu_processes'), ('lr=-1', 'lr'), ('lr_min=-1e-6', 'lr_min'), ('lr=1e999', 'lr'),
    ('weight_decay=-0.1', 'weight_decay'), ('seg_size=100', 'seg_size'), ('crop_size=1000', 'crop_size'),
    ('name=', 'name'), ('name=a/b', 'name'), ('name=..', 'name'), ('name=.', 'name'), ('project=x/y', 'project'),
    ('student_dropout=1.5', 'student_dropout'), ('curriculum_p=1.5', 'curriculum_p'),
    ('student_layerdrop=-0.1', 'student_layerdrop'), ('aam_scale=0', 'aam_scale'), ('aam_margin=2', 'aam_margin'),
    ('epoch=0', 'epoch'), ('epoch_KD=0', 'epoch_KD'), ('batch_size=1', 'batch_size'), ('num_workers=-1', 'num_workers'),
    ('val_speakers=0', 'val_speakers'), ('val_trials=1', 'val_trials'), ('rand_seed=-1', 'rand_seed'),
    ('max_bad_audio_fraction=1.0', 'max_bad_audio_fraction'), ('neptune_mode=online', 'neptune_mode'),
    ('trials=[]', 'trials'), ("trials=['X']", 'trials'), ('usable_gpu=first', 'usable_gpu'),
    ('path_log=', 'path_log'), ('path_trials=/data/vox1/veri_test2.txt', 'path_trials'),
    ('path_test=/data/vox1/test/wav', 'path_test'), ('path_libri=/data/LibriSpeech', 'path_libri')])
def test_bad_value_is_refused_before_any_data_is_made(tmp_path, item, key):
    """main.main on the demo: refused with the key named before the demo corpus or the run folder exists."""
    with pytest.raises(UserError, match=f"^argument '{key}': "):
        main.main([f'path_demo={tmp_path / "demo"}', f'path_log={tmp_path / "runs"}', item])
    assert os.listdir(tmp_path) == []


def test_a_bad_value_is_named_before_the_data_paths_are_looked_at(tmp_path):
    with pytest.raises(UserError, match="^argument 'cpu_processes': got 0; expected an int >= 1$"):
        main.main([f'path_train={tmp_path / "none"}', f'path_log={tmp_path / "runs"}', 'cpu_processes=0'])
    assert os.listdir(tmp_path) == []


def _outside(allowed, default):
    """Values just outside a range, of the key's own type: below the low bound and above the high one."""
    step = 1 if isinstance(default, int) and not isinstance(default, bool) else 0.5
    values = [allowed.low if allowed.low_open else allowed.low - step]
    if allowed.high != math.inf:
        values.append(allowed.high if allowed.high_open else allowed.high + step)
    return values


def test_every_numeric_key_has_a_range_and_values_outside_it_are_refused():
    numeric = {k for k, v in DEFAULTS.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert numeric | set(NULLABLE) == set(RANGES)
    for key, allowed in RANGES.items():
        for value in _outside(allowed, DEFAULTS[key] if DEFAULTS[key] is not None else 0.5):
            with pytest.raises(SystemExit, match=f"^argument '{key}': got {re.escape(repr(value))}; expected "):
                get_args([DATA, f'{key}={value}'])
        assert get_args([DATA])[key] == DEFAULTS[key]               # every default lies in its range


def test_zero_learning_rates_stay_valid_for_dry_runs():
    args = get_args([DATA, 'lr=0', 'lr_min=0', 'weight_decay=0'])
    assert (args['lr'], args['lr_min'], args['weight_decay']) == (0.0, 0.0, 0.0)
    assert get_args([DATA, 'student_dropout=None', 'curriculum_p=1'])['curriculum_p'] == 1.0


def test_minimum_audio_lengths_follow_from_the_cnn():
    """The shortest inputs giving 1 and 11 frames, against a real convolution stack of HuBERT's kernels/strides."""
    config = HubertConfig()
    assert (tuple(config.conv_kernel), tuple(config.conv_stride)) == (min_audio.CNN_KERNELS, min_audio.CNN_STRIDES)
    assert config.mask_time_length == arguments.TIME_MASK_FRAMES
    stack = torch.nn.Sequential(*[torch.nn.Conv1d(1, 1, k, s) for k, s in zip(config.conv_kernel, config.conv_stride)])

    def frames(samples: int) -> int:
        try:
            return stack(torch.zeros(1, 1, samples)).shape[-1]
        except RuntimeError:  # 'Kernel size can't be greater than actual input size': not even one frame
            return 0

    with torch.no_grad():
        assert frames(arguments.MIN_SEGMENT) == 1 and frames(arguments.MIN_SEGMENT - 1) == 0
        assert frames(arguments.MIN_CROP) == 11 and frames(arguments.MIN_CROP - 1) == 10
    assert (arguments.MIN_SEGMENT, arguments.MIN_CROP) == (400, 3600)
    get_args([DATA, f'crop_size={arguments.MIN_CROP}', f'seg_size={arguments.MIN_SEGMENT}'])
    with pytest.raises(SystemExit, match="'seg_size': got 399; expected an int >= 400"):
        get_args([DATA, 'seg_size=399'])


def test_types_are_named_in_plain_words():
    with pytest.raises(SystemExit, match=r"'student_dropout': could not parse 'none'; expected a float or None "):
        get_args(['student_dropout=none'])
    with pytest.raises(SystemExit, match=r"'epoch': could not parse 'ten'; expected an int \(default 100\)$"):
        get_args(['epoch=ten'])
    with pytest.raises(SystemExit, match=r"'init_teacher_idx': got \[0, 'a'\] \(list\), expected a list of ints"):
        get_args(["init_teacher_idx=[0,'a']"])
    with pytest.raises(SystemExit, match=r"'use_TFT': got 1 \(int\), expected True or False"):
        get_args(['use_TFT=1'])


def test_a_list_stripped_of_its_quotes_by_the_shell_gets_the_quoting_rule():
    with pytest.raises(SystemExit, match=re.escape("""could not parse '[O,E]'; expected a list of texts (default """
                                                   """['O']); quote it for the shell, e.g. trials="['O']\"""")):
        get_args(['trials=[O,E]'])                    # what bash passes for trials=['O','E']
    assert get_args(["trials=['O','E']"])['trials'] == ['O', 'E']   # what it passes for trials="['O','E']"


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks a machine without CUDA')
def test_gpus_asked_for_without_cuda_are_refused(tmp_path):
    with pytest.raises(UserError, match="^argument 'usable_gpu': got '0,1'; no CUDA GPU is visible here"):
        main.main([f'path_demo={tmp_path / "demo"}', 'usable_gpu=0,1'])
    assert os.listdir(tmp_path) == []
    assert get_args(['usable_gpu=cpu'])['usable_gpu'] == 'cpu' and get_args(['usable_gpu='])['usable_gpu'] == ''


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')
def test_a_visible_gpu_is_accepted():
    assert get_args(['usable_gpu=0'])['usable_gpu'] == '0'


def test_holding_out_all_speakers_names_val_speakers():
    utts = UtteranceIndex.from_utterances([Utterance(f'/x/id{s}/v/{u}.wav', f'id{s}/v/{u}.wav', f'id{s}')
                                           for s in range(4) for u in range(2)])
    with pytest.raises(ValueError, match=r"^argument 'val_speakers': cannot hold out 4 of 4 speakers; expected 1 to 3"):
        hold_out_speakers(utts, 4, np.random.default_rng(0))
    train, held = hold_out_speakers(utts, 3, np.random.default_rng(0))
    assert len({u.speaker for u in train}) == 1 and len({u.speaker for u in held}) == 3


def source_comments():
    """(heading, [(key, comment)]) of SYSTEM_ARGS / EXPERIMENT_ARGS, read here with a regex over the file's lines."""
    with open(arguments.__file__, encoding='utf-8') as handle:
        lines = handle.read().split('\nDEMO_ARGS')[0].splitlines()
    groups = []
    for line in lines:
        heading = re.fullmatch(r'\s*# --- (.*) ---', line)
        entry = re.match(r"\s*'(\w+)': .*,\s+# (.*)$", line)
        if heading:
            groups.append((heading.group(1), []))
        elif entry:
            groups[-1][1].append((entry.group(1), entry.group(2)))
    return groups


@pytest.mark.parametrize('flag', ['--help', '-h'])
def test_help_lists_every_key_with_its_default_and_comment_grouped_as_in_the_file(capsys, flag):
    with pytest.raises(SystemExit) as stop:
        get_args(['epoch=3', flag])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith('usage: python main.py [key=value ...]')
    assert """trials="['O','E']\"""" in out
    groups = source_comments()
    assert [key for _, keys in groups for key, _ in keys] == list(DEFAULTS)   # every key, once, in file order
    assert arguments.documented_keys() == groups
    lines = out.splitlines()
    position = 0
    for heading, keys in groups:
        position = lines.index(f'{heading}:', position)
        for offset, (key, comment) in enumerate(keys, start=1):
            line = lines[position + offset]
            assert re.match(rf'  {key} +=', line), line
            assert f'= {DEFAULTS[key]!r}' in line and f'# {comment}' in line, line
    assert next(line for line in lines if line.startswith('  epoch ')).endswith(
        '[demo of method precomp: 5; demo of method postcomp: 5; demo: 10]')  # a Chosen key: what each layer gives it
    assert next(line for line in lines if line.startswith('  batch_size ')).endswith(
        '= 50*           # global batch, divided among processes [method precomp: 100; method postcomp: 100; demo: 32]')


def test_help_serves_another_command(capsys):
    print_help('python compare.py', about='All four methods, one table.')
    out = capsys.readouterr().out
    assert out.startswith('usage: python compare.py [key=value ...]\n')
    assert 'All four methods, one table.' in out and """python compare.py trials="['O','E']\"""" in out



@pytest.mark.slow  # a real main.py process
def test_help_into_a_reader_that_stops_early_exits_quietly(capsys):
    """`python main.py --help | head`: the reader closes the pipe while help is still being written."""
    with pytest.raises(SystemExit):
        get_args(['--help'])
    assert len(capsys.readouterr().out) > 4096 + 100  # more than the pipe holds plus what is read below
    read_end, write_end = os.pipe()
    fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, 4096)  # so the writer must wait on the reader
    process = subprocess.Popen([sys.executable, 'main.py', '--help'], stdout=write_end, stderr=subprocess.PIPE,
                               cwd=os.path.dirname(os.path.abspath(main.__file__)))
    os.close(write_end)
    first = os.read(read_end, 100)
    os.close(read_end)  # like `head` once it has its lines
    _, err = process.communicate(timeout=120)
    assert first.startswith(b'usage: python main.py')
    assert (process.returncode, err.decode()) == (0, '')
