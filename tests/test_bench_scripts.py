"""Every bench script, from a clean copy of the repository (nothing beside it, no ../shared): `--help` and its
smallest configuration, with the figures checked; `train_step.py --batch 1` refused with the reason.

One subprocess runs them all, so torch and transformers are imported once (a dozen interpreters would take minutes
on a shared 2-core machine). Before each script it drops every module of the copy and sets `sys.path` as
`python bench/<name>.py` does (the script's folder first, the repository root not on it), then runs the file as
`__main__` with the script's argv: a script that cannot find the project's packages on its own fails here as it
would for a user.
"""
import ast
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

pytestmark = pytest.mark.slow  # runs the bench scripts

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = ['--repeats', '1', '--warmup', '0', '--threads', '1']
SMALLEST = {  # script -> its smallest configuration
    'bench/scoring.py': ['--max-trials', '400', '--utterances', '600', *FAST],
    'bench/paper_model.py': ['--model', 'tiny', '--crop', '3600', '--device', 'cpu'],
    'bench/train_step.py': ['--model', 'tiny', '--crop', '3600', '--device', 'cpu', *FAST],
    'bench/inference.py': ['--model', 'tiny', '--seconds', '0.5', '--batch', '2', '--device', 'cpu', *FAST],
    'bench/data_loading.py': ['--files', '10', '--file-seconds', '1', '--libri-files', '2', '--items', '8', '--crop',
                              '3600', '--workers', '0', '--step-crops-per-s', '100', '--device', 'cpu', *FAST],
    'bench/augment.py': ['--files', '6', '--file-seconds', '1', '--items', '6', '--crop', '3600', '--workers', '0',
                         '--step-crops-per-s', '100', '--device', 'cpu', *FAST],
    'bench/gpu.py': ['--model', 'tiny', '--device', 'cpu', '--threads', '1'],
    'bench/vox2_scale.py': ['--files', '200', '--workers', '1', '--steps', '2', '--batch', '8', '--repeats', '1',
                            '--extrapolate-to', '1000'],
    'bench/threads.py': ['--settings', '1', '--repeats', '1', '--demo', 'batch_size=8 crop_size=4000 seg_size=4000'],
}
RUNNER = r'''
import contextlib, io, json, os, runpy, sys, traceback
root = os.getcwd()
others = [p for p in sys.path[1:] if os.path.abspath(p or '.') != root]
report = []
for script, argv in json.loads(sys.argv[1]):
    for name, module in list(sys.modules.items()):
        if os.path.abspath(getattr(module, '__file__', None) or os.sep).startswith(root + os.sep):
            del sys.modules[name]
    sys.path[:] = [os.path.join(root, os.path.dirname(script)), *others]
    sys.argv = [script, *argv]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            runpy.run_path(script, run_name='__main__')
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else int(stop.code is not None)
        except BaseException:
            traceback.print_exc()
            code = 'exception'
    report.append({'script': script, 'argv': argv, 'code': code, 'out': out.getvalue()})
print(json.dumps(report))
'''


def clean_copy(destination: str) -> str:
    """The repository's files without caches, runs and tracker folders, in a folder with nothing beside it."""
    ignore = shutil.ignore_patterns('.git', '__pycache__', '*.pyc', '.pytest_cache', 'runs', 'wandb', '.neptune',
                                    '.venv*', '.cache')
    shutil.copytree(REPOSITORY, destination, ignore=ignore)
    return destination


def table_rows(out: str, title: str) -> list[list[str]]:
    """The cells of every body row of the markdown table printed under `**title...**`."""
    block = out.split(f'**{title}', 1)[1].split('\n\n', 2)[1]
    return [[cell.strip() for cell in line.strip('|').split('|')] for line in block.splitlines()[2:]]


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    clone = clean_copy(str(tmp_path_factory.mktemp('clone') / 'OS-KDFT2'))
    assert not os.path.exists(os.path.join(clone, '..', 'shared'))
    runs = [(script, ['--help']) for script in SMALLEST] + list(SMALLEST.items())
    runs.append(('bench/train_step.py', ['--batch', '1']))
    done = subprocess.run([sys.executable, '-c', RUNNER, json.dumps(runs)], cwd=clone, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.splitlines()[-1])
    return {(r['script'], tuple(r['argv'])): r for r in results}


def test_every_script_is_covered():
    scripts = {os.path.relpath(path, REPOSITORY) for path in glob.glob(os.path.join(REPOSITORY, 'bench', '*.py'))
               if "if __name__ == '__main__':" in open(path, encoding='utf-8').read()}
    assert scripts == set(SMALLEST)


@pytest.mark.parametrize('script', list(SMALLEST))
def test_help(report, script):
    result = report[(script, ('--help',))]
    assert result['code'] == 0, result['out']
    with open(os.path.join(REPOSITORY, script), encoding='utf-8') as handle:
        summary = ast.get_docstring(ast.parse(handle.read())).splitlines()[0]
    text = ' '.join(result['out'].split())
    assert result['out'].startswith(f'usage: {os.path.basename(script)} ') and ' '.join(summary.split()) in text
    for option in SMALLEST[script][::2]:
        assert option in result['out']


def run(report, script):
    result = report[(script, tuple(SMALLEST[script]))]
    assert result['code'] == 0, result['out'][-3000:]
    return result['out']


def test_scoring_on_the_shipped_list(report):
    out = run(report, 'bench/scoring.py')
    assert 'scoring 400 trials over 600 utterances' in out
    for kind, eer, _, _, reference_eer, difference in table_rows(out, 'metrics (project vs reference loop)'):
        assert eer == reference_eer and float(difference) < 1e-5, kind


def test_paper_model_builds_and_runs(report):
    out = run(report, 'bench/paper_model.py')
    size = dict(table_rows(out, 'os_kdft2, tiny teacher: parameters'))
    parts = ('student', 'back-end', 'KD heads', 'speaker classifier')
    assert float(size['trained in a joint step']) == pytest.approx(sum(float(size[p]) for p in parts), abs=0.03)
    loss = {name: float(value) for name, value in table_rows(out, 'one forward pass')}
    assert loss['loss'] == pytest.approx(loss['loss/kd'] + loss['loss/ft'], abs=2e-4)  # w_kd = w_ft = 1


def test_train_step_and_its_batch_check(report):
    out = run(report, 'bench/train_step.py')
    rows = table_rows(out, 'os_kdft2 training step, tiny teacher, batch 2')
    assert [row[0] for row in rows][-1] == 'SDPA, inference-mode teacher (project)' and len(rows) == 4
    refused = report[('bench/train_step.py', ('--batch', '1'))]
    assert refused['code'] == 2
    assert 'argument --batch: expected a value >= 2 (BatchNorm needs 2 items in a batch), got 1' in refused['out']


def test_inference_and_data_loading(report):
    rows = table_rows(run(report, 'bench/inference.py'), 'speaker embedding, fp32')
    assert sorted((row[0], row[2]) for row in rows) == [('student', '1'), ('student', '2'), ('teacher', '1'),
                                                         ('teacher', '2')]
    out = run(report, 'bench/data_loading.py')
    rows = table_rows(out, 'training crops')
    assert [row[1] for row in rows] == ['0', '0'] and 'training step consumption (given): 100.00 crops/s' in out


def test_augment_rates_for_every_type(report):
    out = run(report, 'bench/augment.py')
    rows = table_rows(out, 'training crops (0.225 s) with augmentation of the ft rows')
    assert [row[0] for row in rows] == ['none (aug_prob 0)', 'all four, aug_prob 0.6', 'reverb only, aug_prob 1',
                                        'noise only, aug_prob 1', 'music only, aug_prob 1', 'babble only, aug_prob 1']
    assert rows[0][4] == '1.00' and all(float(row[2]) > 0 for row in rows)
    assert 'training step consumption (given): 100.00 crops/s' in out


def test_gpu_script(report):
    out = run(report, 'bench/gpu.py')
    assert 'CPU FALLBACK' in out                                  # --device cpu: it says so, GPU or not
    assert 'precisions: fp32 = fp32 (tf32=True, the default)' in out
    assert re.search(r'\| gloo +\| [\d.]+ +\| [\d.]+ +\| ok +\|', out)
    for title in ('os_kdft2 training step on cpu', 'speed-up over "eager, fp32"', 'speaker embedding on cpu',
                  'parameters'):
        assert title in out


def test_vox2_scale_measures_both_indexes(report):
    rows = table_rows(run(report, 'bench/vox2_scale.py'), 'VoxCeleb2-layout tree')
    assert rows[0][0].endswith('(old)') and rows[1][0].endswith('(new)') and rows[0][1] == rows[1][1] == '200'
    for row in rows[:2]:
        assert float(row[-1]) > 0 and all(float(cell) > 0 for cell in row[4:8])  # PSS read for main and worker


def test_a_named_gpu_gets_its_index():
    """torch.cuda.set_device and init_process_group(device_id=...) need an index: '--device cuda' is cuda:0."""
    from bench.common import pick_device
    assert pick_device('cuda') == torch.device('cuda', 0) and pick_device('cuda:3') == torch.device('cuda', 3)
    assert pick_device('cpu') == torch.device('cpu')


def test_threads_runs_a_demo_epoch_per_setting(report):
    [row] = table_rows(run(report, 'bench/threads.py'), 'a demo epoch by intra-op threads per process')
    assert row[0] == 'num_threads=1' and row[1] == '1' and float(row[2]) >= 0 and 0 <= float(row[3]) <= 100
