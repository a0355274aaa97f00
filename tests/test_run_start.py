"""Starting, restarting and resuming the way a user expects: a start that failed leaves nothing in the way (its files
are kept aside), a user's mistake is one `error:` line with exit status 2 (one process and two gloo ranks), a resume
with a changed key that changes the computation is refused by name while a neutral one proceeds, and a log that is
not a terminal gets progress lines instead of a bar."""
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys

import pytest

import main
from helpers_trainer import comparable_results, tiny_arguments
from trainer import checkpoint
from utils.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = dict(epoch=1, crop_size=4000, seg_size=4000)
STEPS_PER_EPOCH = 4  # 36 training utterances, batch 8, drop_last


def _run_dir(root: str, name: str) -> str:
    return os.path.join(root, 'runs', 'OS-KDFT2', name)


def _files(folder: str) -> dict[str, bytes]:
    """Every file below `folder` (relative path → bytes)."""
    return {os.path.relpath(os.path.join(d, n), folder): open(os.path.join(d, n), 'rb').read()
            for d, _, names in os.walk(folder) for n in names}


def _fail_a_start(root: str, name: str, **extra) -> dict[str, bytes]:
    """A start that passes every check, makes its run directory, then fails before its first save: the teacher
    directory holds a config but no weights, which only the ranks load. Returns the files it left."""
    weightless = os.path.join(root, 'teacher_without_weights')
    if not os.path.isdir(weightless):
        os.makedirs(weightless)
        shutil.copy(os.path.join(root, 'teacher', 'config.json'), weightless)
    with pytest.raises(OSError, match='could not load the checkpoint'):
        main.main(tiny_arguments(root, name=name, huggingface_url=weightless, **SETTINGS, **extra))
    left = _files(_run_dir(root, name))
    assert 'arguments.json' in left and 'parameters.txt' in left
    assert not checkpoint.holds_checkpoint(_run_dir(root, name))
    return left



@pytest.fixture(scope='module')
def restarted(root):
    """A failed start, then the same command (teacher fixed) with progress lines every step; stdout and stderr are
    captured into buffers, so the output is not a terminal however pytest runs."""
    left = _fail_a_start(root, 'again')
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        main.main(tiny_arguments(root, name='again', log_interval_s=0, **SETTINGS))
    return dict(left=left, out=out.getvalue(), run=_run_dir(root, 'again'))


def test_same_name_after_a_failed_start_proceeds_and_keeps_the_old_files(restarted):
    run = restarted['run']
    [stamp] = os.listdir(os.path.join(run, checkpoint.ATTEMPTS))
    kept = os.path.join(run, checkpoint.ATTEMPTS, stamp)
    assert _files(kept) == restarted['left']  # every file of the failed start, byte for byte
    assert f'its files are kept in {kept}' in restarted['out']
    state = checkpoint.load(os.path.join(run, checkpoint.LAST))['state']
    assert [h['epoch'] for h in state['history']] == [1]
    assert os.path.isfile(os.path.join(run, 'results.json'))


def test_progress_lines_where_the_output_is_not_a_terminal(restarted):
    """log_interval_s=0: one line per step with epoch, step/total, loss, items/s and ETA; the printed losses average
    to the epoch's logged loss (each printed with 4 decimals)."""
    lines = [line for line in restarted['out'].splitlines() if line.startswith('epoch 1/1 step ')]
    assert [line.split(' | ')[0] for line in lines] == [f'epoch 1/1 step {s}/{STEPS_PER_EPOCH}'
                                                        for s in range(1, STEPS_PER_EPOCH + 1)]
    assert all(' items/s | ETA ' in line for line in lines)
    assert lines[-1].endswith('ETA 0:00')
    losses = [float(line.split(' | ')[1].split()[1]) for line in lines]
    history = checkpoint.load(os.path.join(restarted['run'], checkpoint.LAST))['state']['history']
    assert sum(losses) / len(losses) == pytest.approx(history[0]['loss'], abs=5e-5)


def test_resume_with_a_changed_batch_size_is_refused_naming_it(root, restarted):
    before = _files(restarted['run'])
    with pytest.raises(UserError, match=r"argument 'resume': .*batch_size: 8 → 4") as stop:
        main.main(tiny_arguments(root, name='again', resume=True, batch_size=4, **SETTINGS))
    assert 'num_workers' not in str(stop.value)
    assert _files(restarted['run']) == before  # nothing written


def test_resume_with_changed_num_workers_proceeds(root, restarted, capsys):
    """A finished run resumed with another number of loader workers: a note names the key, and the run evaluates its
    best checkpoint again to the same figures."""
    before = comparable_results(restarted['run'])
    main.main(tiny_arguments(root, name='again', resume=True, num_workers=1, log_interval_s=0, **SETTINGS))
    assert 'note: resuming with changed settings that do not change the result: num_workers: 0 → 1\n' in \
        capsys.readouterr().out
    assert comparable_results(restarted['run']) == before
    with open(os.path.join(restarted['run'], 'arguments.json')) as f:
        assert json.load(f)['num_workers'] == 0  # the record keeps what the run was started with


def test_resume_after_a_failed_start_starts_at_epoch_1(root, capsys):
    _fail_a_start(root, 'resume_after_failure')
    capsys.readouterr()
    main.main(tiny_arguments(root, name='resume_after_failure', resume=True, **SETTINGS))
    assert 'resume=True has nothing to continue: training starts at epoch 1' in capsys.readouterr().out
    run = _run_dir(root, 'resume_after_failure')
    state = checkpoint.load(os.path.join(run, checkpoint.LAST))['state']
    assert [h['epoch'] for h in state['history']] == [1]
    assert len(os.listdir(os.path.join(run, checkpoint.ATTEMPTS))) == 1


@pytest.mark.slow  # a real main.py process
@pytest.mark.parametrize('processes', [1, 2])
def test_a_wrong_path_train_is_one_error_line_and_exit_status_2(root, tmp_path, processes):
    """`python main.py` (a real process; with cpu_processes=2 the two gloo ranks would be spawned after the checks)
    with path_train pointing at an empty folder."""
    empty = tmp_path / 'empty_dev'
    empty.mkdir()
    argv = tiny_arguments(root, name=f'wrong_path_{processes}', path_train=str(empty), cpu_processes=processes)
    result = subprocess.run([sys.executable, 'main.py', *argv], cwd=REPO, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr == f"error: no .wav or .flac files below '{empty}'; expected the layout " \
                            f"<root>/<speaker>/<video>/<utt>.wav (e.g. id10001/1zcIwhmdeo4/00001.wav)\n"
    assert not os.path.exists(_run_dir(root, f'wrong_path_{processes}'))
