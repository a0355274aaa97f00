"""wandb for real: an offline run read back from its .wandb log, and an online start that fails fast."""
import time
import warnings

import numpy as np
import torch

from helpers_log import fresh_wandb  # noqa: F401  (a fixture)
from helpers_log import check_png, wandb_config, wandb_history, wandb_run_file, wandb_saved_files, wandb_summary
from log import LogModuleController, TrackerWarning


def test_offline_run_records_what_was_logged(tmp_path, monkeypatch, fresh_wandb):
    monkeypatch.setenv('WANDB_MODE', 'offline')
    monkeypatch.setenv('WANDB_DIR', str(tmp_path))
    monkeypatch.delenv('WANDB_API_KEY', raising=False)
    logger = (LogModuleController.Builder('run', 'proj').tags(['t1', 't2']).description('a test run')
              .use_local(str(tmp_path / 'runs')).use_wandb('', '')
              .credentials({'wandb_token': 'WANDB_API_KEY'}).build())
    assert logger.backends == ('local', 'wandb')
    logger.log_arguments({'epoch': 3, 'wandb_token': 'not-a-real-key', 'tags': ['a', 'b']})
    logger.log_metric('eer/val', 3.25, step=1)
    logger.log_metric('loss/kd', 0.5, step=1)
    logger.log_metric('eer/val', 2.75, step=2)
    logger.log_metric('eer/final_O/full+tta', 2.5, step=2)
    logger.log_text('notes', 'hello from the test')
    logger.log_det('det/final', np.array([0.9, 0.2, 0.7, 0.4]), np.array([1, 0, 1, 0]))
    logger.save_model('best', {'w': torch.ones(2)})
    wandb_backend = logger.backend('wandb')
    logger.finish()

    path = wandb_run_file(str(tmp_path))
    rows = wandb_history(path)
    names = ('eer/val', 'loss/kd', 'eer/final_O/full+tta')
    metrics = [(row['step'], name, row[name]) for row in rows for name in names if name in row]
    assert metrics == [(1, 'eer/val', 3.25), (1, 'loss/kd', 0.5), (2, 'eer/val', 2.75), (2, names[2], 2.5)]
    images = [row['det/final'] for row in rows if 'det/final' in row]
    assert len(images) == 1 and images[0]['_type'] == 'image-file' and images[0]['format'] == 'png'
    check_png(f"{wandb_backend.run_path}/files/{images[0]['path']}")
    config = wandb_config(path)
    assert config['epoch'] == 3 and config['tags'] == ['a', 'b'] and config['wandb_token'] == '***'
    assert wandb_summary(path)['notes'] == 'hello from the test\n'
    assert 'models/best.pt' in wandb_saved_files(path)
    assert torch.equal(torch.load(f'{wandb_backend.run_path}/files/models/best.pt')['w'], torch.ones(2))


def test_online_start_that_cannot_connect_falls_back_fast(tmp_path, monkeypatch, fresh_wandb):
    monkeypatch.setenv('WANDB_MODE', 'online')
    monkeypatch.setenv('WANDB_DIR', str(tmp_path))
    monkeypatch.setenv('WANDB_BASE_URL', 'http://127.0.0.1:9')  # nothing listens: like no network
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        logger = (LogModuleController.Builder('run', 'no such project!').use_local(str(tmp_path / 'runs'))
                  .use_wandb('nobody', 'x' * 40, init_timeout=5.0).build())
        elapsed = time.monotonic() - started
        for epoch in range(3):
            logger.log_metric('eer/val', 10.0 - epoch, step=epoch)
        logger.finish()
    tracker_warnings = [w for w in caught if issubclass(w.category, TrackerWarning)]
    assert len(tracker_warnings) == 1
    assert 'wandb tracker could not start' in str(tracker_warnings[0].message)
    assert 'x' * 40 not in str(tracker_warnings[0].message)
    assert elapsed < 20.0, f'falling back took {elapsed:.1f} s'
    assert logger.backends == ('local',)
    lines = (tmp_path / 'runs' / 'no such project!' / 'run' / 'eer' / 'val.txt').read_text().splitlines()
    assert lines == ['[0] eer/val: 10.0', '[1] eer/val: 9.0', '[2] eer/val: 8.0']
    check_png(tmp_path / 'runs' / 'no such project!' / 'run' / 'plots' / 'eer.png')
