"""Writes of the run's record that fail (full disk) do not stop training: each kind of output is warned about once,
every failed write is counted, no file is left with half a line, and the end of the run lists what is incomplete."""
import errno
import json
import os
import types
import warnings

import pytest

import log.local
import utils.atomic
from helpers_log import check_png
from helpers_disk import failing_write
from log import LogModuleController, TrackerWarning
from log.history import MetricHistory
from log.local import OutputWarning
from log.neptune_logger import NeptuneLogger


def _disk_full(monkeypatch):
    """Every append writes half its bytes and fails with ENOSPC; every plot fails part-way through its file."""
    def half_then_full(handle, data):
        os.write(handle, bytes(data[:len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(utils.atomic, 'os', types.SimpleNamespace(**{**vars(os), 'write': half_then_full}))
    monkeypatch.setattr(log.local, 'save_png', lambda figure, path: utils.atomic.atomic_write(
        path, lambda stream: failing_write(stream, b'\x89PNG' * 100)))


def _bytes(run_dir, *names):
    return {name: open(os.path.join(run_dir, name), 'rb').read() for name in names}


def test_failed_log_writes_are_warned_once_counted_and_listed(tmp_path, monkeypatch):
    logger = LogModuleController.Builder('run', 'proj').use_local(str(tmp_path / 'runs')).build()
    run_dir = str(tmp_path / 'runs' / 'proj' / 'run')
    logger.log_metric('loss/kd', 2.0, step=1)
    logger.log_metric('eer/val', 30.0, step=1)
    files = ('metrics.jsonl', 'loss/kd.txt', 'eer/val.txt', 'plots/loss.png', 'plots/eer.png')
    before = _bytes(run_dir, *files)

    with monkeypatch.context() as patch:
        _disk_full(patch)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            for step in (2, 3):
                logger.log_metric('loss/kd', 2.0 - step / 10, step=step)
                logger.log_metric('eer/val', 30.0 - step, step=step)
            logger.log_text('notes', 'a line')
    messages = [str(w.message) for w in caught if issubclass(w.category, OutputWarning)]
    assert len(messages) == 3  # one per kind: metric files, plots, texts
    assert messages[0].startswith(f"could not write {os.path.join(run_dir, 'loss', 'kd.txt')} ([Errno 28]")
    assert _bytes(run_dir, *files) == before  # cut back: no half-written line, no half-replaced plot
    assert not os.path.exists(os.path.join(run_dir, 'texts', 'notes.txt')) or \
        open(os.path.join(run_dir, 'texts', 'notes.txt'), 'rb').read() == b''
    assert [line.split(':')[0] for line in logger.incomplete_outputs()] == ['metric files', 'plots', 'texts']
    assert logger.incomplete_outputs()[0].startswith('metric files: 8 write(s) failed, the first ')  # 2 × 2 × 2
    assert logger.incomplete_outputs()[1].startswith('plots: 4 write(s) failed')  # each new step redraws

    logger.log_metric('loss/kd', 1.0, step=4)  # space again: the record goes on, well-formed
    logger.finish()
    with open(os.path.join(run_dir, 'loss', 'kd.txt')) as handle:
        assert handle.read().splitlines() == ['[1] loss/kd: 2.0', '[4] loss/kd: 1.0']
    assert MetricHistory(os.path.join(run_dir, 'metrics.jsonl')).series('') == {
        'loss/kd': [(1, 2.0), (4, 1.0)], 'eer/val': [(1, 30.0)]}
    check_png(os.path.join(run_dir, 'plots', 'eer.png'))  # the stale eer plot is drawn at finish


def test_append_whole_cuts_a_failed_append_back(tmp_path, monkeypatch):
    path = str(tmp_path / 'lines.txt')
    utils.atomic.append_whole(path, b'first\n')
    with monkeypatch.context() as patch:
        _disk_full(patch)
        with pytest.raises(OSError, match='No space left'):
            utils.atomic.append_whole(path, b'second line\n')
    utils.atomic.append_whole(path, b'third\n')
    assert open(path, 'rb').read() == b'first\nthird\n'


def test_dropped_and_unstarted_trackers_are_listed_as_incomplete(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('NEPTUNE_MODE', raising=False)
    with pytest.warns(TrackerWarning, match='neptune tracker could not start'):
        unstarted = (LogModuleController.Builder('a', 'proj').use_local(str(tmp_path / 'runs'))
                     .use_neptune('workspace', 'not-a-token-at-all', mode='async', init_timeout=3.0).build())
    unstarted.finish()
    assert [line.split(' (')[0] for line in unstarted.incomplete_outputs()] == ['neptune tracker: could not start']

    logger = (LogModuleController.Builder('b', 'proj').use_local(str(tmp_path / 'runs'))
              .use_neptune('', '', mode='debug').build())
    assert logger.backends == ('local', 'neptune')

    def broken(self, name, value, step=None):
        raise ConnectionError('tracker went away')

    monkeypatch.setattr(NeptuneLogger, 'log_metric', broken)
    with pytest.warns(TrackerWarning, match='neptune tracker dropped'):
        logger.log_metric('lr', 1e-3, step=1)
    logger.finish()
    assert logger.incomplete_outputs() == [
        'neptune tracker: dropped after a failure (ConnectionError: tracker went away); nothing was logged to it '
        'after that']
    with open(os.path.join(tmp_path, 'runs', 'proj', 'b', 'metrics.jsonl')) as handle:
        assert [json.loads(line)['name'] for line in handle] == ['lr']  # the local record is complete
