"""`python -m trainer.compare` on the tiny configuration: four runs on the same data and seed, one table with a row
per method; an interrupted comparison resumes the unfinished run (here in precomp's phase 2) and reuses the
finished ones; a finished comparison only reads its runs again."""
import json
import os
import signal

import pytest

import trainer.fit
from helpers_trainer import tiny_arguments
from trainer import checkpoint
from trainer.compare import COMPARED, compare

BUDGET = dict(epoch=1, epoch_KD=1, freeze_epochs=1)
STEPS_PER_EPOCH = 4  # 36 training utterances, batch 8, drop_last
STOP_AT = 3 * STEPS_PER_EPOCH + 2  # os_kdft2, os_kdft, precomp's KD phase, then 2 steps into its FT phase


def _count_steps(monkeypatch, stop_at: int | None) -> dict:
    real, calls = trainer.fit.train_step, {'n': 0}

    def step(*args, **kwargs):
        out = real(*args, **kwargs)
        calls['n'] += 1
        if calls['n'] == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(trainer.fit, 'train_step', step)
    return calls


def test_comparison_runs_resumes_and_reuses_four_methods(tmp_path, monkeypatch):
    root = str(tmp_path)
    argv = tiny_arguments(root, **BUDGET)
    folder = os.path.join(root, 'runs', 'OS-KDFT2')

    calls = _count_steps(monkeypatch, STOP_AT)
    assert compare(argv) is None  # stopped by the signal during precomp
    assert all(os.path.isfile(os.path.join(folder, f'compare_{m}', 'results.json')) for m in ('os_kdft2', 'os_kdft'))
    stopped = checkpoint.load(os.path.join(folder, 'compare_precomp', checkpoint.LAST))
    assert (stopped['phase'], stopped['state']['epoch'], stopped['state']['step']) == ('ft', 0, 2)
    assert not os.path.exists(os.path.join(folder, 'compare_table.md'))

    text = compare(argv)
    assert calls['n'] == 6 * STEPS_PER_EPOCH  # the finished runs were reused, precomp went on from its step 2
    rows = [line for line in text.splitlines() if line.startswith('| ') and not line.startswith('| method')]
    assert [r.split('|')[1].strip() for r in rows] == list(COMPARED)
    budgets = [r.split('|')[2].strip() for r in rows]
    assert budgets == ['1', '1', '1 kd + 1 ft', '1 teacher_ft + 1 kd']
    for method, row in zip(COMPARED, rows):
        results = json.load(open(os.path.join(folder, f'compare_{method}', 'results.json')))
        final = results['final']['O']['full_tta']
        cells = [c.strip() for c in row.split('|')[1:-1]]
        assert cells[6:] == [f"{final['eer']:.2f}", f"{final['min_dcf_0.01']:.4f}", f"{final['min_dcf_0.05']:.4f}"]
        assert results['params']['trained'] > results['params']['model']
    assert open(os.path.join(folder, 'compare_table.md')).read() == text

    assert compare(argv) == text  # everything reused: no step trained, the same table
    assert calls['n'] == 6 * STEPS_PER_EPOCH


@pytest.mark.parametrize('key', ['method', 'resume'])
def test_comparison_refuses_keys_it_sets_itself(tmp_path, key):
    with pytest.raises(SystemExit, match=f"'{key}'"):
        compare(tiny_arguments(str(tmp_path), **{key: 'precomp' if key == 'method' else True}))
