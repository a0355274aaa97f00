"""The local logger: exact metric lines, metrics.jsonl, plots, DET, texts, figures, models, resume."""
import json
import os

import numpy as np
import pytest
import torch

from helpers_log import check_png
from log import LogModuleController
from log.plots import det_rates


def build(tmp_path, name='run'):
    """A local-only logger writing to tmp/runs/proj/<name>."""
    return LogModuleController.Builder(name, 'proj').use_local(str(tmp_path / 'runs')).build()


def read_lines(path):
    with open(path, encoding='utf-8') as handle:
        return handle.read().splitlines()


def test_metric_text_files_and_jsonl(tmp_path):
    logger = build(tmp_path)
    logger.log_metric('eer/val', 5.25, step=0)
    logger.log_metric('eer/val', 4.5, step=1)
    logger.log_metric('loss/kd', 2)          # no step: 0, then 1
    logger.log_metric('loss/kd', np.float32(1.5))
    logger.log_metric('lr', 5e-05, step=3)
    logger.finish()
    run_dir = tmp_path / 'runs' / 'proj' / 'run'
    assert read_lines(run_dir / 'eer' / 'val.txt') == ['[0] eer/val: 5.25', '[1] eer/val: 4.5']
    assert read_lines(run_dir / 'loss' / 'kd.txt') == ['[0] loss/kd: 2.0', '[1] loss/kd: 1.5']
    assert read_lines(run_dir / 'lr.txt') == ['[3] lr: 5e-05']
    records = [json.loads(line) for line in read_lines(run_dir / 'metrics.jsonl')]
    assert [(r['name'], r['value'], r['step']) for r in records] == [
        ('eer/val', 5.25, 0), ('eer/val', 4.5, 1), ('loss/kd', 2.0, 0), ('loss/kd', 1.5, 1), ('lr', 5e-05, 3)]
    times = [r['time'] for r in records]
    assert times == sorted(times) and all(isinstance(t, float) and t > 1.6e9 for t in times)


def test_the_trainers_metric_names(tmp_path):
    logger = build(tmp_path)
    names = ['loss', 'loss/kd', 'lr', 'eer/val', 'min_dcf_0.01/val', 'eer/final_O/full+tta']
    for value, name in enumerate(names):
        logger.log_metric(name, float(value), step=7)
    logger.finish()
    run_dir = tmp_path / 'runs' / 'proj' / 'run'
    for value, name in enumerate(names):
        assert read_lines(run_dir / f'{name}.txt') == [f'[7] {name}: {float(value)}']


def test_plots_are_pngs_refreshed_on_each_new_epoch(tmp_path):
    logger = build(tmp_path)
    run_dir = tmp_path / 'runs' / 'proj' / 'run'
    logger.log_metric('loss/kd', 3.0, step=0)
    logger.log_metric('loss/ft', 4.0, step=0)
    logger.log_metric('eer/val', 30.0, step=0)
    loss_png, eer_png = run_dir / 'plots' / 'loss.png', run_dir / 'plots' / 'eer.png'
    first_loss, first_eer = loss_png.read_bytes(), eer_png.read_bytes()
    check_png(loss_png)
    check_png(eer_png)
    logger.log_metric('loss/kd', 2.0, step=1)    # a new epoch redraws the loss plot at once
    assert loss_png.read_bytes() != first_loss
    assert eer_png.read_bytes() == first_eer     # no new EER epoch yet
    logger.log_metric('eer/val', 20.0, step=1)
    assert eer_png.read_bytes() != first_eer
    before_finish = loss_png.read_bytes()
    logger.log_metric('loss/ft', 3.0, step=1)    # same epoch: drawn at finish
    assert loss_png.read_bytes() == before_finish
    logger.finish()
    assert loss_png.read_bytes() != before_finish
    assert check_png(loss_png).shape == check_png(eer_png).shape == (480, 640, 4)
    assert not [p for p in os.listdir(run_dir / 'plots') if p.startswith('.tmp-')]


def test_det_curve_figure_and_rates(tmp_path):
    rng = np.random.default_rng(0)
    scores = np.concatenate([rng.normal(1.0, 1.0, 300), rng.normal(-1.0, 1.0, 700)])
    labels = np.concatenate([np.ones(300), np.zeros(700)])
    logger = build(tmp_path)
    logger.log_det('det/vox1_o', scores, labels)
    pixels = check_png(tmp_path / 'runs' / 'proj' / 'run' / 'figures' / 'det' / 'vox1_o.png')
    assert pixels.shape == (550, 550, 4)
    false_alarm, miss = det_rates(scores, labels)
    # brute force at every score as threshold t: P_fa = #non-target >= t / N, P_miss = #target < t / T
    brute_fa = (scores[labels == 0][None, :] >= scores[:, None]).mean(axis=1)
    brute_miss = (scores[labels == 1][None, :] < scores[:, None]).mean(axis=1)
    brute = set(zip(np.round(brute_fa, 9), np.round(brute_miss, 9)))
    assert len(false_alarm) > 50
    assert set(zip(np.round(false_alarm, 9), np.round(miss, 9))) <= brute
    assert np.all(np.diff(false_alarm) <= 0) and np.all(np.diff(miss) >= 0)
    with pytest.raises(ValueError, match='both target'):
        logger.log_det('det/bad', scores[:10], np.ones(10))
    with pytest.raises(ValueError, match='must be 0 or 1'):
        logger.log_det('det/bad', scores[:3], np.array([0, 1, 2]))
    with pytest.raises(ValueError, match='equal length'):
        logger.log_det('det/bad', scores[:3], np.array([0, 1]))


def test_texts_figures_and_models(tmp_path):
    logger = build(tmp_path)
    run_dir = tmp_path / 'runs' / 'proj' / 'run'
    logger.log_text('summary', 'first line')
    logger.log_text('summary', 'second\n')
    assert read_lines(run_dir / 'texts' / 'summary.txt') == ['first line', 'second']
    logger.log_det('det/a', np.array([0.9, 0.1, 0.8, 0.3]), np.array([1, 0, 1, 0]))
    source_png = run_dir / 'figures' / 'det' / 'a.png'
    logger.log_figure('copy/of_det', str(source_png))
    assert (run_dir / 'figures' / 'copy' / 'of_det.png').read_bytes() == source_png.read_bytes()
    state = {'weight': torch.arange(6.0).reshape(2, 3), 'bias': torch.tensor([1.0, -1.0])}
    logger.save_model('best', state)
    loaded = torch.load(run_dir / 'models' / 'best.pt')
    assert set(loaded) == {'weight', 'bias'} and all(torch.equal(loaded[k], state[k]) for k in state)
    not_png = tmp_path / 'plain.txt'
    not_png.write_text('hello')
    with pytest.raises(ValueError, match='not a PNG'):
        logger.log_figure('x', str(not_png))
    with pytest.raises(FileNotFoundError, match='no file'):
        logger.log_figure('x', str(tmp_path / 'missing.png'))
    with pytest.raises(TypeError, match='state dict'):
        logger.save_model('best', [1, 2])
    logger.finish()


@pytest.mark.parametrize('name', ['', '../escape', 'a//b', 'a b', '/abs', 'eer/./val', 'ünï'])
def test_bad_names_are_refused_with_the_name(tmp_path, name):
    logger = build(tmp_path)
    with pytest.raises(ValueError, match='is invalid'):
        logger.log_metric(name, 1.0)
    with pytest.raises(ValueError, match='is invalid'):
        logger.log_text(name, 'x')
    assert not os.path.exists(tmp_path / 'escape.txt')


def test_bad_values_and_reserved_names(tmp_path):
    logger = build(tmp_path)
    with pytest.raises(TypeError, match=r"'loss/kd'.*Tensor; call .item\(\)"):
        logger.log_metric('loss/kd', torch.tensor(1.0))
    with pytest.raises(TypeError, match='real number'):
        logger.log_metric('loss/kd', True)
    with pytest.raises(TypeError, match='real number'):
        logger.log_metric('loss/kd', '1.0')
    with pytest.raises(ValueError, match='step must be >= 0'):
        logger.log_metric('loss/kd', 1.0, step=-1)
    with pytest.raises(TypeError, match='step must be an int'):
        logger.log_metric('loss/kd', 1.0, step=1.5)
    with pytest.raises(ValueError, match="'models'"):
        logger.log_metric('models/best', 1.0)
    with pytest.raises(ValueError, match="'parameters'"):
        logger.log_metric('parameters', 1.0)
    with pytest.raises(TypeError, match='expected a dict'):
        logger.log_arguments([('a', 1)])
    logger.finish()
    logger.finish()  # a second finish is harmless
    with pytest.raises(RuntimeError, match='finished'):
        logger.log_metric('loss/kd', 1.0)
