"""What the user wrote wins: a key a method, a recipe or the demo sets is written Chosen(...) in arguments.py, and an
edit of it there (or a command-line value) holds under every layer; each layer prints what it set and what it kept."""
import importlib.util
import itertools
import os
import re
import sys

import pytest

import arguments
from arguments import DEMO_ARGS, METHOD_ARGS, RECIPES, Chosen, origin_lines, resolve_args

# an edit of each key a layer sets: a valid value that a layer would replace
EDITS = {
    'name': 'my_run', 'tags': ['mine'], 'description': 'my experiment', 'num_workers': 3, 'epoch': 7, 'epoch_KD': 6,
    'batch_size': 12, 'student_hidden_layer_size': 48, 'adapter_size': 12, 'embed_size': 24, 'use_TFT': True,
    'ft_loss': 'softmax', 'aam_margin': 0.3, 'aam_scale': 20.0, 'kd_cos_reduction': 'sum',
    'target_layer_idx': [2, 4, 6], 'curriculum': 'cosine', 'freeze_epochs': 2, 'crop_size': 24000, 'aug_prob': 0.2,
    'seg_size': 24000, 'num_seg': 4, 'lr': 2e-4, 'lr_min': 1e-5, 'weight_decay': 1e-3, 'lmft_epochs': 1,
    'lmft_margin': 0.3, 'lmft_crop_size': 48000, 'lmft_lr': 3e-5, 'score_norm': 'none', 'cohort_size': 50,
    'cohort_utts_per_speaker': 7,
}
# every (method, recipe, demo) a run can have, and the command-line arguments that choose it
RUNS = [(m, r, demo) for m, r, demo in itertools.product(METHOD_ARGS, RECIPES, (True, False))]


def run_argv(method: str, recipe: str, demo: bool) -> list[str]:
    return [f'method={method}', f'recipe={recipe}'] + ([] if demo else ['path_train=/data/vox1/dev/wav'])


def layer_values(method: str, recipe: str, demo: bool) -> dict:
    """What the layers of such a run would give each key, later layers over earlier ones."""
    values = {**METHOD_ARGS[method]['args'], **RECIPES[recipe]['args']}
    return {**values, **DEMO_ARGS, **METHOD_ARGS[method]['demo'], **RECIPES[recipe]['demo']} if demo else values


def layered_keys() -> set:
    tables = [entry[part] for table in (METHOD_ARGS, RECIPES) for entry in table.values() for part in ('args', 'demo')]
    return set(DEMO_ARGS).union(*tables)


def test_every_key_a_layer_sets_is_left_to_the_layers_in_arguments_py_and_has_an_edit_here():
    written = {**arguments.SYSTEM_ARGS, **arguments.EXPERIMENT_ARGS}
    assert {key for key, value in written.items() if isinstance(value, Chosen)} == layered_keys() == set(EDITS)


def edited_copy(tmp_path, monkeypatch, key: str, value):
    """Import a copy of arguments.py in which the line of `key` is edited to `key: value`, as a user edits it."""
    source = open(arguments.__file__, encoding='utf-8').read()
    edited, count = re.subn(rf"^(    '{key}': )Chosen\(.*\),(\s+#)", rf'\g<1>{value!r},\g<2>', source, flags=re.M)
    assert count == 1, key
    path = tmp_path / f'arguments_{key}.py'
    path.write_text(edited, encoding='utf-8')
    spec = importlib.util.spec_from_file_location(f'edited_arguments_{key}', path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # where its dataclasses look up their module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('key', sorted(EDITS))
def test_an_edit_of_arguments_py_holds_under_every_layer(tmp_path, monkeypatch, key):
    edit = EDITS[key]
    copy = edited_copy(tmp_path, monkeypatch, key, edit)
    setting = [run for run in RUNS if layer_values(*run).get(key, edit) != edit]  # runs whose layers replace it
    assert setting
    for run in setting:
        args, layers = copy.resolve_args(run_argv(*run))
        assert args[key] == edit, (key, run)
        assert any(layer.kept.get(key) == 'arguments.py' and key not in layer.set for layer in layers), (key, run)
        assert f'{key}={edit!r} (arguments.py)' in ' '.join(copy.origin_lines(args, layers))
    unedited, _ = resolve_args(run_argv(*setting[0]))
    assert unedited[key] == layer_values(*setting[0])[key]  # the same run with the file as it is: the layer's value


@pytest.mark.parametrize('key', sorted(EDITS))
def test_a_command_line_value_holds_under_every_layer(key):
    for run in RUNS:
        if layer_values(*run).get(key, EDITS[key]) != EDITS[key]:
            args, layers = resolve_args(run_argv(*run) + [f'{key}={EDITS[key]!r}'])
            assert args[key] == EDITS[key], (key, run)
            assert f'{key}={EDITS[key]!r} (command line)' in ' '.join(origin_lines(args, layers))


def test_origin_lines_name_each_layer_its_keys_and_what_it_kept(tmp_path, monkeypatch):
    copy = edited_copy(tmp_path, monkeypatch, 'curriculum', 'cosine')
    args, layers = copy.resolve_args(['method=os_kdft', 'path_train=/d', 'use_TFT=True'])
    assert copy.origin_lines(args, layers) == [
        "method os_kdft sets: nothing; yours kept: use_TFT=True (command line) curriculum='cosine' (arguments.py)",
        'recipe release sets: nothing (as published: no augmentation, no LM-FT, raw cosine scores)']
    args, layers = resolve_args(['method=precomp', 'recipe=modern', 'epoch=3'])
    lines = origin_lines(args, layers)
    assert lines[0] == "method precomp sets: use_TFT=False curriculum='none'"  # batch_size: the demo's, below
    assert lines[1] == ("recipe modern sets: aug_prob=0.6 ft_loss='aam' aam_margin=0.2 aam_scale=32.0 "
                        "lmft_margin=0.5 score_norm='asnorm'")  # its other keys: its demo budget's
    assert lines[2].startswith("demo sets: name='demo_precomp' tags=['demo'] ") and 'batch_size=32 ' in lines[2]
    assert 'lmft_epochs=2 lmft_crop_size=32000' in lines[2] and ' epoch=' not in lines[2].split(';')[0]
    assert lines[2].endswith('; yours kept: epoch=3 (command line)') and len(lines) == 3
