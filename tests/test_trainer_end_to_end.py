"""main.py end to end on a tiny corpus: both joint methods train, log EER/minDCF and keep checkpoints."""
import json
import os

import pytest
import torch

import main
from export import cli as export_cli
from export import load_exported
from helpers_trainer import tiny_arguments
from models.teacher import load_ssl_model
from trainer import checkpoint
from utils.errors import UserError


@pytest.mark.parametrize('method', ['os_kdft2', pytest.param('os_kdft', marks=pytest.mark.slow)])
def test_joint_methods_train_two_epochs(root, method):
    main.main(tiny_arguments(root, method=method, name=method))
    run = os.path.join(root, 'runs', 'OS-KDFT2', method)
    last = checkpoint.load(os.path.join(run, checkpoint.LAST))
    history = last['state']['history']
    assert [h['epoch'] for h in history] == [1, 2]
    assert history[1]['loss'] < history[0]['loss']
    assert history[1]['loss/kd'] < history[0]['loss/kd']
    assert os.path.isfile(os.path.join(run, checkpoint.BEST))
    best = checkpoint.load(os.path.join(run, checkpoint.BEST))
    assert best['state']['epoch'] == last['state']['best_epoch']
    with open(os.path.join(run, 'lr.txt')) as f:  # set before each epoch as released: warm restart at epoch T_0 = 2
        assert [float(line.rsplit(':', 1)[1]) for line in f.read().splitlines()] == pytest.approx([1.05e-3, 2e-3])
    with open(os.path.join(run, 'eer', 'val.txt')) as f:
        lines = f.read().splitlines()
    assert [line.split(']')[0] for line in lines] == ['[1', '[2']
    assert float(lines[1].split(':')[1]) == pytest.approx(history[1]['eer_val'])
    results = json.load(open(os.path.join(run, 'results.json')))['final']['O']
    assert set(results) == {'full', 'tta', 'full_tta'}  # score_norm='none' (default): no AS-Norm, no cohort
    assert not os.path.exists(os.path.join(run, 'export', 'cohort.safetensors'))
    for kind in ('full', 'tta', 'full_tta'):  # results.json and the logged metric files agree, at the best epoch
        for metric in ('eer', 'min_dcf_0.01', 'min_dcf_0.05'):
            with open(os.path.join(run, metric, 'final_O', f'{kind}.txt')) as f:
                line = f.read().strip()
            assert line.split(']')[0] == f"[{last['state']['best_epoch']}"
            assert float(line.rsplit(':', 1)[1]) == pytest.approx(results[kind][metric], abs=1e-9)
    # the method's recipe reached the model: adapters only for os_kdft
    has_adapter = any('adapter' in k for k in last['model'])
    assert has_adapter == (method == 'os_kdft')
    assert not any(k.startswith('teacher') for k in last['model'])


def test_export_reproduces_the_final_eer(root, tmp_path, capsys):
    """The export written at the end of training scores the trial list to the run's own final EER."""
    run = os.path.join(root, 'runs', 'OS-KDFT2', 'os_kdft2')
    final = json.load(open(os.path.join(run, 'results.json')))['final']['O']['full_tta']
    args = dict(a.split('=', 1) for a in tiny_arguments(root))
    capsys.readouterr()
    export_cli.main(['score', '--model', os.path.join(run, 'export'), '--trials', args['path_trials'],
                     '--audio-root', args['path_test'], '--out', str(tmp_path / 'scores.txt'), '--device', 'cpu'])
    printed = capsys.readouterr().out
    eer = float(printed.split('EER ')[1].split(' %')[0])
    assert eer == pytest.approx(final['eer'], abs=1e-3)
    model = load_exported(os.path.join(run, 'export'))
    assert model.threshold == pytest.approx(final['threshold'])
    core_params = sum(v.numel() for k, v in checkpoint.load(os.path.join(run, checkpoint.BEST))['model'].items()
                      if k.startswith(('student.', 'backend.')) and 'running' not in k and 'num_batches' not in k)
    assert sum(p.numel() for p in model.parameters()) == core_params


def test_second_run_with_same_name_fails_and_leaves_files_untouched(root):
    """The same command again on the finished os_kdft2 run (test_joint_methods_train_two_epochs)."""
    args = tiny_arguments(root, method='os_kdft2', name='os_kdft2')
    run = os.path.join(root, 'runs', 'OS-KDFT2', 'os_kdft2')
    before = {}
    for folder, _, files in os.walk(run):
        for name in files:
            path = os.path.join(folder, name)
            before[path] = open(path, 'rb').read()
    with pytest.raises(UserError, match='resume=True'):
        main.main(args)
    after = {os.path.join(folder, name) for folder, _, files in os.walk(run) for name in files}
    assert after == set(before)
    assert all(open(path, 'rb').read() == data for path, data in before.items())
    # the weights in the checkpoint still load
    state = torch.load(os.path.join(run, checkpoint.LAST), weights_only=False)
    assert state['state']['epoch'] == 2


@pytest.mark.slow  # a second run, with an ONNX export
def test_a_run_that_cannot_move_keeps_the_released_initialisation(root):
    """lr = 0: the trained checkpoint still holds the student's initialisation, which copies the teacher's CNN,
    projection and layers init_teacher_idx (default 'release' mode) and keeps a fresh positional convolution."""
    main.main(tiny_arguments(root, name='lr0', lr=0.0, lr_min=0.0, weight_decay=0.0, epoch=1, init_teacher_idx=[0, 2],
                             student_hidden_layer_num=2, export_onnx=True))
    export = os.path.join(root, 'runs', 'OS-KDFT2', 'lr0', 'export')
    assert os.path.isfile(os.path.join(export, 'model.onnx')) and os.path.isfile(os.path.join(export, 'model.onnx.json'))
    student = {k[len('student.'):]: v for k, v in
               checkpoint.load(os.path.join(root, 'runs', 'OS-KDFT2', 'lr0', checkpoint.LAST))['model'].items()
               if k.startswith('student.')}
    args = dict(a.split('=', 1) for a in tiny_arguments(root))
    teacher = load_ssl_model(args['huggingface_url']).state_dict()
    copied = [k for k in student if k.startswith(('feature_extractor.', 'feature_projection.'))]
    assert copied and all(torch.equal(student[k], teacher[k]) for k in copied)
    for k, source in ((0, 0), (1, 2)):
        layer = [key for key in student if key.startswith(f'layers.{k}.layer.')]
        assert layer and all(torch.equal(student[key], teacher[f'encoder.layers.{source}.' + key.split('.layer.', 1)[1]])
                             for key in layer)
    pos_conv = 'pos_conv_embed.conv.parametrizations.weight.original1'  # the kernel direction (random at init)
    assert not torch.equal(student[pos_conv], teacher['encoder.' + pos_conv])
