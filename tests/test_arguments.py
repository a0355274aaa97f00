"""`key=value` overrides: typed literals, text for text keys, clear errors for unknown keys and wrong types."""
import pytest

from arguments import (CHOICES, DEMO_ARGS, METHOD_ARGS, RECIPES, check_args, file_defaults, get_args, origin_lines,
                       public_args, resolve_args)
from data.curriculum import AUG_ROWS, SCHEDULES
from models.student import INIT_MODES
from trainer.methods import METHODS


def test_overrides_are_typed():
    args = get_args(['epoch=3', 'init_teacher_idx=[0,1]', 'lr=1e-4', 'path_train=/data/vox1/dev/wav'])
    assert args['epoch'] == 3 and args['init_teacher_idx'] == [0, 1] and args['lr'] == 1e-4
    assert args['path_train'] == '/data/vox1/dev/wav'      # text needs no quotes
    assert args['batch_size'] == file_defaults()['batch_size']  # not the demo's: data configured
    assert get_args(['path_train=/d', 'weight_decay=0'])['weight_decay'] == 0.0  # int accepted for float
    assert get_args(['path_train=/d', 'name=2024'])['name'] == '2024'  # digits stay text for text keys


@pytest.mark.parametrize('item, key', [("epoch='x'", 'epoch'), ('epochz=3', 'epochz'), ('use_TFT=1', 'use_TFT'),
                                       ('lr=fast', 'lr'), ('init_teacher_idx=3', 'init_teacher_idx')])
def test_bad_overrides_name_the_key(item, key):
    with pytest.raises(SystemExit, match=f"'{key}'"):
        get_args([item])


def test_unknown_key_suggests_close_matches():
    with pytest.raises(SystemExit, match='did you mean epoch'):
        get_args(['epochz=3'])


def test_demo_and_method_recipes():
    demo = get_args([])
    assert demo['path_train'] == '' and demo['lr'] == DEMO_ARGS['lr']
    assert get_args(['lr=0.5'])['lr'] == 0.5                 # an override beats the demo settings
    kdft = get_args(['method=os_kdft', 'path_train=/d'])
    assert (kdft['use_TFT'], kdft['curriculum']) == (False, 'none')
    assert 'weighted_sum' not in kdft  # the aggregation follows one key, use_TFT
    assert [get_args([f'method={m}', 'path_train=/d'])['use_TFT'] for m in METHODS] == [True, False, False, False]
    assert get_args(['method=precomp'])['name'] == 'demo_precomp'  # the method's demo budget
    assert get_args(['method=os_kdft', 'curriculum=linear', 'path_train=/d'])['curriculum'] == 'linear'
    assert list(METHODS) == ['os_kdft2', 'os_kdft', 'precomp', 'postcomp']
    with pytest.raises(SystemExit, match="'method'"):
        get_args(['method=kdft3'])


def test_credentials_from_environment_are_masked(monkeypatch):
    monkeypatch.setenv('WANDB_API_KEY', 'secret-123')
    args = get_args(['path_train=/d'])
    assert args['wandb_token'] == 'secret-123'
    assert public_args(args)['wandb_token'] == '***' and 'secret-123' not in str(public_args(args))


def test_path_train_and_path_test_take_lists_of_folders(tmp_path):
    args = get_args(["path_train=['/data/vox1/dev/wav','/data/vox2/dev/wav']", "path_test=['/a', '/b']"])
    assert args['path_train'] == ['/data/vox1/dev/wav', '/data/vox2/dev/wav'] and args['path_test'] == ['/a', '/b']
    assert get_args(['path_train=/data/vox2/dev/wav'])['path_train'] == '/data/vox2/dev/wav'
    with pytest.raises(SystemExit, match=r"""'path_test': could not parse .* quote it for the shell"""):
        get_args(['path_train=/d', 'path_test=[/data/vox1/dev/wav,/data/vox1/test/wav]'])  # the shell ate the quotes
    (tmp_path / 'dev').mkdir()
    args = get_args([f"path_train=['{tmp_path / 'dev'}','{tmp_path / 'missing'}']", f'path_test={tmp_path}',
                     f'path_trials={tmp_path}'])
    with pytest.raises(SystemExit, match=r"'path_train': got '.*missing'; that path does not exist"):
        check_args(args, 1)


def test_modern_recipe_sets_its_keys_over_any_method():
    released = get_args(['path_train=/d'])
    for method in METHODS:
        modern = get_args([f'method={method}', 'recipe=modern', 'path_train=/d'])
        assert {k: modern[k] for k in RECIPES['modern']['args']} == RECIPES['modern']['args']
        assert modern['use_TFT'] == get_args([f'method={method}', 'path_train=/d'])['use_TFT']  # the method's own
    assert (released['aug_prob'], released['lmft_epochs'], released['score_norm']) == (0.0, 0, 'none')
    assert get_args(['recipe=modern', 'path_train=/d', 'lmft_epochs=1'])['lmft_epochs'] == 1  # an override wins
    demo = get_args(['recipe=modern'])
    assert (demo['lmft_epochs'], demo['lmft_crop_size'], demo['cohort_size']) == (2, 32000, 10)  # demo budget
    assert demo['aug_prob'] == 0.6 and demo['crop_size'] == DEMO_ARGS['crop_size']
    line = origin_lines(*resolve_args(['recipe=modern', 'path_train=/d', 'aug_prob=0.3']))[1]
    assert line.startswith('recipe modern sets: ') and "score_norm='asnorm'" in line
    assert line.endswith('; yours kept: aug_prob=0.3 (command line)')
    assert 'as published' in origin_lines(*resolve_args(['path_train=/d']))[1]
    with pytest.raises(SystemExit, match="'recipe'"):
        get_args(['recipe=fancy'])


def test_choice_lists_are_the_names_of_the_registries_they_choose_from():
    """arguments.py writes the names (so a wrong one stops before torch is imported); the registries hold the code."""
    assert CHOICES['curriculum'] == tuple(SCHEDULES) and CHOICES['aug_rows'] == tuple(AUG_ROWS)
    assert CHOICES['student_init'] == tuple(INIT_MODES)
    assert CHOICES['method'] == tuple(METHOD_ARGS) == tuple(METHODS)
