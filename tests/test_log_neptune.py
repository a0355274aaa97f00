"""neptune for real: offline runs read back from .neptune/, and online starts that fail fast."""
import base64
import io
import json
import time
import warnings

import numpy as np
import pytest
import torch

from helpers_log import PNG_SIGNATURE, neptune_operations, neptune_upload
from log import LogModuleController, TrackerWarning


def logged_floats(operations, path):
    """(step, value) of every LogFloats operation on `path` (a list of path segments)."""
    return [(v['step'], v['value']) for op in operations if op['type'] == 'LogFloats' and op['path'] == path
            for v in op['values']]


def test_offline_run_records_what_was_logged(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                   # neptune keeps offline runs in ./.neptune
    monkeypatch.delenv('NEPTUNE_MODE', raising=False)
    monkeypatch.delenv('NEPTUNE_DATA_DIRECTORY', raising=False)
    logger = (LogModuleController.Builder('run', 'proj').tags(['t1']).description('a test run')
              .use_local(str(tmp_path / 'runs')).use_neptune('workspace', '', mode='offline')
              .credentials({'neptune_token': 'NEPTUNE_API_TOKEN'}).build())
    assert logger.backends == ('local', 'neptune')
    logger.log_arguments({'epoch': 3, 'neptune_token': 'not-a-real-token', 'trials': ['O', 'E'], 'x': None})
    logger.log_metric('eer/val', 3.25, step=1)
    logger.log_metric('eer/val', 2.75, step=2)
    logger.log_metric('loss/kd', 0.5)
    logger.log_metric('eer/final_O/full+tta', 2.5, step=2)
    logger.log_text('notes', 'first')
    logger.log_text('notes', 'second')
    logger.log_det('det/final', np.array([0.9, 0.2, 0.7, 0.4]), np.array([1, 0, 1, 0]))
    logger.save_model('best', {'w': torch.ones(2)})
    logger.finish()

    operations = neptune_operations(str(tmp_path / '.neptune'))
    assert logged_floats(operations, ['eer', 'val']) == [(1, 3.25), (2, 2.75)]
    assert logged_floats(operations, ['loss', 'kd']) == [(None, 0.5)]
    assert logged_floats(operations, ['eer', 'final_O', 'full+tta']) == [(2, 2.5)]
    assigned = {tuple(op['path']): op['value'] for op in operations if op['type'].startswith('Assign')}
    assert assigned[('sys', 'name')] == 'run' and assigned[('sys', 'description')] == 'a test run'
    assert assigned[('parameters', 'epoch')] == 3
    assert assigned[('parameters', 'neptune_token')] == '***'
    assert assigned[('parameters', 'trials')] == "['O', 'E']"
    assert ['t1'] in [op['values'] for op in operations if op['type'] == 'AddStrings' and op['path'] == ['sys', 'tags']]
    uploads = {tuple(op['path']): op for op in operations if op['type'] == 'UploadFile'}
    assert neptune_upload(str(tmp_path / '.neptune'), uploads[('notes',)]) == b'first\nsecond\n'
    assert neptune_upload(str(tmp_path / '.neptune'), uploads[('det', 'final')]).startswith(PNG_SIGNATURE)
    model = torch.load(io.BytesIO(neptune_upload(str(tmp_path / '.neptune'), uploads[('models', 'best')])))
    assert torch.equal(model['w'], torch.ones(2))
    assert not [op for op in operations if op['path'][0] == 'source_code' and op.get('file_globs')]


def test_neptune_mode_environment_wins(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv('NEPTUNE_MODE', 'offline')
    logger = LogModuleController.Builder('run', 'proj').use_neptune('workspace', '', mode='async').build()
    logger.log_metric('eer/val', 1.5, step=0)
    logger.finish()
    assert logged_floats(neptune_operations(str(tmp_path / '.neptune')), ['eer', 'val']) == [(0, 1.5)]
    monkeypatch.setenv('NEPTUNE_MODE', 'sideways')
    with pytest.raises(ValueError, match="mode 'sideways'"):
        LogModuleController.Builder('run', 'proj').use_neptune('workspace', '', mode='offline')


def unreachable_token():
    """A well-formed neptune token whose server address has nothing listening."""
    address = 'http://127.0.0.1:9'
    return base64.b64encode(json.dumps({'api_address': address, 'api_url': address,
                                        'api_key': 'fake-key'}).encode()).decode()


@pytest.mark.parametrize('token, limit', [('not-a-token-at-all', 10.0), (unreachable_token(), 20.0)])
def test_online_start_that_fails_leaves_a_complete_local_run(tmp_path, monkeypatch, token, limit):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('NEPTUNE_MODE', raising=False)
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        logger = (LogModuleController.Builder('run', 'proj').use_local(str(tmp_path / 'runs'))
                  .use_neptune('workspace', token, mode='async', init_timeout=3.0).build())
        elapsed = time.monotonic() - started
        logger.log_metric('eer/val', 4.0, step=0)
        logger.log_text('notes', 'still here')
        logger.finish()
    tracker_warnings = [str(w.message) for w in caught if issubclass(w.category, TrackerWarning)]
    assert len(tracker_warnings) == 1 and 'neptune tracker could not start' in tracker_warnings[0]
    assert token not in tracker_warnings[0]
    assert elapsed < limit, f'falling back took {elapsed:.1f} s'
    assert logger.backends == ('local',)
    run_dir = tmp_path / 'runs' / 'proj' / 'run'
    assert (run_dir / 'eer' / 'val.txt').read_text() == '[0] eer/val: 4.0\n'
    assert (run_dir / 'texts' / 'notes.txt').read_text() == 'still here\n'


def six_digits(value: float) -> float:
    """A loss as every backend records it: six significant digits (log/base.py SIGNIFICANT)."""
    return float(f'{value:.6g}')


def test_a_total_and_its_parts_share_a_name_without_dropping_neptune(tmp_path, monkeypatch):
    """'loss' beside 'loss/kd' (and a phase's 'kd/loss' beside 'kd/loss/kd'): neptune keeps the total one level
    down ('loss/total'), the local files keep the names as logged, and neptune stays for every epoch."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('NEPTUNE_MODE', raising=False)
    monkeypatch.delenv('NEPTUNE_DATA_DIRECTORY', raising=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        logger = (LogModuleController.Builder('run', 'proj').use_local(str(tmp_path / 'runs'))
                  .use_neptune('workspace', '', mode='offline').build())
        for epoch in range(1, 4):
            for name, value in (('loss', 1.0), ('loss/kd', 0.25), ('kd/loss', 2.0), ('kd/loss/kd', 0.5)):
                logger.log_metric(name, value / epoch, step=epoch)
        assert logger.backends == ('local', 'neptune')
        logger.finish()
    assert not [w for w in caught if issubclass(w.category, TrackerWarning)]
    operations = neptune_operations(str(tmp_path / '.neptune'))
    assert logged_floats(operations, ['loss', 'total']) == [(e, six_digits(1.0 / e)) for e in range(1, 4)]
    assert logged_floats(operations, ['loss', 'kd']) == [(e, six_digits(0.25 / e)) for e in range(1, 4)]
    assert logged_floats(operations, ['kd', 'loss', 'total']) == [(e, six_digits(2.0 / e)) for e in range(1, 4)]
    assert logged_floats(operations, ['kd', 'loss', 'kd']) == [(e, six_digits(0.5 / e)) for e in range(1, 4)]
    assert logged_floats(operations, ['loss']) == []
    run_dir = tmp_path / 'runs' / 'proj' / 'run'
    assert (run_dir / 'loss.txt').read_text().splitlines() == [f'[{e}] loss: {six_digits(1.0 / e)}' for e in range(1, 4)]
    assert (run_dir / 'kd' / 'loss' / 'kd.txt').read_text().splitlines()[0] == '[1] kd/loss/kd: 0.5'
