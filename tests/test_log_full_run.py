"""A whole training run (main.main, precomp: a 1-epoch KD phase, then 2 epochs of fine-tuning) with wandb and
neptune offline and both tokens on the command line: every metric of every epoch reaches both trackers, no tracker is dropped, and no
token reaches any file under the run directory or the trackers' folders."""
import json
import os
import sys
import warnings

import pytest

import main
from helpers_log import all_files, files_containing, fresh_wandb  # noqa: F401  (fresh_wandb is a fixture)
from helpers_log import neptune_operations, wandb_history, wandb_run_file
from helpers_trainer import tiny_arguments
from log import TrackerWarning
from log.neptune_logger import neptune_path

WANDB_TOKEN = 'wb-FAKE-fullrun-0123456789abcdef01234567'
NEPTUNE_TOKEN = 'np-FAKE-fullrun-fedcba9876543210'


def local_series(run_dir: str) -> dict[str, list[tuple[int, float]]]:
    """Every metric of the run as the local logger recorded it (metrics.jsonl), name -> [(step, value), ...]."""
    series = {}
    with open(os.path.join(run_dir, 'metrics.jsonl'), encoding='utf-8') as handle:
        for line in handle:
            record = json.loads(line)
            series.setdefault(record['name'], []).append((record['step'], record['value']))
    return series


@pytest.mark.slow  # a two-phase run
def test_full_offline_run_reaches_both_trackers_without_tokens(tmp_path, monkeypatch, fresh_wandb):
    monkeypatch.chdir(tmp_path)                                   # neptune offline data: ./.neptune
    monkeypatch.setenv('WANDB_MODE', 'offline')
    monkeypatch.setenv('WANDB_DIR', str(tmp_path / 'wandb_root'))
    for variable in ('WANDB_API_KEY', 'NEPTUNE_API_TOKEN', 'NEPTUNE_MODE', 'NEPTUNE_DATA_DIRECTORY'):
        monkeypatch.delenv(variable, raising=False)
    (tmp_path / 'wandb_root').mkdir()
    argv = tiny_arguments(str(tmp_path / 'setup'), method='precomp', name='tracked', epoch_KD=1, epoch=2,
                          freeze_epochs=1, use_wandb=True, use_neptune=True, neptune_mode='offline',
                          neptune_user='workspace', wandb_token=WANDB_TOKEN, neptune_token=NEPTUNE_TOKEN)
    monkeypatch.setattr(sys, 'argv', ['main.py', *argv])          # as typed on the command line
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        main.main(argv)
    assert [str(w.message) for w in caught if issubclass(w.category, TrackerWarning)] == []

    run_dir = tmp_path / 'setup' / 'runs' / 'OS-KDFT2' / 'tracked'
    local = local_series(str(run_dir))
    for name in ('kd/loss', 'kd/loss/kd'):                        # phase 1 (1 epoch): a total beside its part
        assert [step for step, _ in local[name]] == [1], name
    for name in ('loss', 'loss/ft', 'eer/val'):                   # phase 2 (2 epochs)
        assert [step for step, _ in local[name]] == [1, 2], name
    operations = neptune_operations(str(tmp_path / '.neptune'))
    for name, points in local.items():
        logged = [(v['step'], v['value']) for op in operations
                  if op['type'] == 'LogFloats' and op['path'] == neptune_path(name).split('/') for v in op['values']]
        assert logged == points, name
    assert neptune_path('kd/loss') == 'kd/loss/total' and neptune_path('loss/ft') == 'loss/ft'
    rows = wandb_history(wandb_run_file(str(tmp_path / 'wandb_root')))
    for name, points in local.items():
        assert [(row['step'], row[name]) for row in rows if name in row] == points, name

    roots = (run_dir, tmp_path / 'wandb_root', tmp_path / '.neptune')
    assert all(len(all_files(str(root))) >= 3 for root in roots)
    for root in roots:
        for token in (WANDB_TOKEN, NEPTUNE_TOKEN):
            assert files_containing(str(root), token) == [], f'{token} leaked under {root}'
    parameters = (run_dir / 'parameters.txt').read_text().splitlines()
    assert 'wandb_token: ***' in parameters and 'neptune_token: ***' in parameters
    assert os.path.isfile(run_dir / 'results.json')
