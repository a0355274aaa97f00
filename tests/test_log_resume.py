"""A resumed run: nothing that existed is deleted or overwritten; metric files continue where they stopped."""
import json
import os

import pytest

from helpers_log import check_png
from log import LogModuleController


def start(tmp_path, source_dir):
    return (LogModuleController.Builder('run', 'proj').save_source_files(str(source_dir))
            .use_local(str(tmp_path / 'runs')).build())


def snapshot(folder):
    """path -> bytes of every file under `folder`."""
    result = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with open(path, 'rb') as handle:
                result[os.path.relpath(path, folder)] = handle.read()
    return result


def test_resume_appends_and_keeps_every_earlier_file(tmp_path):
    source = tmp_path / 'code'
    source.mkdir()
    (source / 'main.py').write_text('print("v1")\n')
    run_dir = tmp_path / 'runs' / 'proj' / 'run'
    first = start(tmp_path, source)
    first.log_arguments({'epoch': 2})
    first.log_metric('eer/val', 9.0, step=0)
    first.log_metric('loss/kd', 1.0)
    first.log_text('notes', 'session 1')
    first.finish()
    (run_dir / 'checkpoint.pt').write_bytes(b'trainer checkpoint')  # someone else's file in the run dir
    before = snapshot(run_dir)

    (source / 'main.py').write_text('print("v2")\n')
    second = start(tmp_path, source)
    second.log_arguments({'epoch': 4, 'resume': True})
    second.log_metric('eer/val', 8.0, step=1)
    second.log_metric('loss/kd', 0.5)        # continues the step count of session 1
    second.log_text('notes', 'session 2')
    second.finish()
    after = snapshot(run_dir)

    appended = {'eer/val.txt', 'loss/kd.txt', 'metrics.jsonl', 'texts/notes.txt'}
    refreshed = {'plots/eer.png', 'plots/loss.png'}
    for path, content in before.items():
        if path in appended:
            assert after[path].startswith(content), path
        elif path not in refreshed:
            assert after[path] == content, f'{path} was changed'
    assert (run_dir / 'eer' / 'val.txt').read_text().splitlines() == ['[0] eer/val: 9.0', '[1] eer/val: 8.0']
    assert (run_dir / 'loss' / 'kd.txt').read_text().splitlines() == ['[0] loss/kd: 1.0', '[1] loss/kd: 0.5']
    assert (run_dir / 'texts' / 'notes.txt').read_text().splitlines() == ['session 1', 'session 2']
    assert (run_dir / 'parameters.txt').read_text().splitlines() == ['epoch: 2']
    assert (run_dir / 'parameters-1.txt').read_text().splitlines() == ['epoch: 4', 'resume: True']
    assert (run_dir / 'source' / 'main.py').read_text() == 'print("v1")\n'
    assert (run_dir / 'source-1' / 'main.py').read_text() == 'print("v2")\n'
    records = [json.loads(line) for line in (run_dir / 'metrics.jsonl').read_text().splitlines()]
    assert [(r['name'], r['step'], r['value']) for r in records] == [
        ('eer/val', 0, 9.0), ('loss/kd', 0, 1.0), ('eer/val', 1, 8.0), ('loss/kd', 1, 0.5)]
    check_png(run_dir / 'plots' / 'eer.png')
    assert after['plots/eer.png'] != before['plots/eer.png']  # redrawn with both sessions' values


def test_resume_after_a_crash_mid_line(tmp_path):
    run_dir = tmp_path / 'runs' / 'proj' / 'run'
    run_dir.mkdir(parents=True)
    complete = json.dumps({'name': 'eer/val', 'value': 7.0, 'step': 0, 'time': 1.7e9}) + '\n'
    (run_dir / 'metrics.jsonl').write_text(complete + '{"name": "eer/val", "val')
    with pytest.warns(RuntimeWarning, match='unterminated last line'):
        logger = LogModuleController.Builder('run', 'proj').use_local(str(tmp_path / 'runs')).build()
    logger.log_metric('eer/val', 6.0)
    logger.finish()
    lines = (run_dir / 'metrics.jsonl').read_text().splitlines()
    assert lines[0] == complete.strip()
    assert [(r['step'], r['value']) for r in map(json.loads, lines)] == [(0, 7.0), (1, 6.0)]


def test_a_corrupt_history_is_named(tmp_path):
    run_dir = tmp_path / 'runs' / 'proj' / 'run'
    run_dir.mkdir(parents=True)
    (run_dir / 'metrics.jsonl').write_text('{"name": "a", "value": 1, "step": 0, "time": 0}\nnot json\n')
    with pytest.raises(ValueError, match=r'metrics.jsonl line 2 is not a metric record'):
        LogModuleController.Builder('run', 'proj').use_local(str(tmp_path / 'runs')).build()
