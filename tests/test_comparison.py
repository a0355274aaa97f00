"""`python compare.py` on the tiny configuration: four runs on the same data and seed, one table with a row
per method; an interrupted comparison resumes the unfinished run (here in precomp's phase 2) and reuses the
finished ones; a finished comparison only reads its runs again."""
import json
import os

import pytest

from compare import COMPARED, compare
from helpers_trainer import sigterm_after_steps, tiny_arguments
from trainer import checkpoint

BUDGET = dict(epoch=1, epoch_KD=1, freeze_epochs=1)
STEPS_PER_EPOCH = 4  # 36 training utterances, batch 8, drop_last
STOP_AT = 3 * STEPS_PER_EPOCH + 2  # os_kdft2, os_kdft, precomp's KD phase, then 2 steps into its FT phase


@pytest.mark.slow
def test_comparison_runs_resumes_and_reuses_four_methods(root, monkeypatch):
    argv = tiny_arguments(root, **BUDGET)
    folder = os.path.join(root, 'runs', 'OS-KDFT2')

    calls = sigterm_after_steps(monkeypatch, {STOP_AT})
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
        assert cells[6:9] == [f"{final['eer']:.2f}", f"{final['min_dcf_0.01']:.4f}", f"{final['min_dcf_0.05']:.4f}"]
        teacher = results['phases'].get('teacher_ft', {}).get('final', {}).get('O', {}).get('full_tta')
        assert cells[9] == (f"{teacher['eer']:.2f}" if method == 'postcomp' else '—')
        assert results['params']['trained'] > results['params']['model']
    assert open(os.path.join(folder, 'compare_table.md')).read() == text

    assert compare(argv) == text  # everything reused: no step trained, the same table
    assert calls['n'] == 6 * STEPS_PER_EPOCH
    with pytest.raises(SystemExit, match=r"compare_os_kdft2 was run with other arguments .*lr: 0.002 → 0.001"):
        compare(tiny_arguments(root, lr=1e-3, **BUDGET))  # never a table of runs made with other arguments
    assert compare(tiny_arguments(root, description='same runs', **BUDGET)) == text  # a neutral key may differ


@pytest.mark.parametrize('key', ['method', 'resume'])
def test_comparison_refuses_keys_it_sets_itself(root, key):
    with pytest.raises(SystemExit, match=f"'{key}'"):
        compare(tiny_arguments(root, **{key: 'precomp' if key == 'method' else True}))
