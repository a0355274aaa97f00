"""Starting, restarting and resuming the way a user expects: a start that failed leaves nothing in the way (its files
are kept aside), a user's mistake is one `error:` line with exit status 2 (one process and two gloo ranks), a resume
with a changed key that changes the computation is refused by name while a neutral one proceeds, a log that is
not a terminal gets progress lines instead of a bar, and a live run owns its directory (a second start or resume is
refused naming it; a killed one leaves the directory usable)."""
import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import pytest

import main
from helpers_trainer import comparable_results, tiny_arguments
from trainer import checkpoint
from utils.errors import UserError
from utils.run_lock import LOCK_FILE, lock_run_dir

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
    del left[LOCK_FILE]  # the run's lock stays where it is
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


def test_a_run_starts_with_its_hardware_line(restarted):
    """Device, world size, backend, precision and determinism, before any training output."""
    line = 'hardware: 1 process on cpu, no process group | precision: fp32 | deterministic: off\n'
    assert line in restarted['out']
    assert restarted['out'].index(line) < restarted['out'].index('epoch   1 |')


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


@pytest.mark.slow  # a second run of the module's run
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


@pytest.mark.slow  # a second run of the module's run
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


def _start_and_stop_after_preparing(argv: list[str]) -> subprocess.Popen:
    """`python main.py argv` in a real process, stopped (SIGSTOP: alive, holding what it holds) as soon as it prints
    its run directory, i.e. after taking the directory's lock and long before its first checkpoint."""
    process = subprocess.Popen([sys.executable, 'main.py', *argv], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        if line.startswith('run directory: '):
            os.kill(process.pid, signal.SIGSTOP)
            return process
    raise AssertionError(f'the run ended before preparing its directory (status {process.wait()})')


@pytest.mark.slow
def test_a_second_start_while_the_first_lives_is_refused_and_the_first_finishes_untouched(root):
    """A start (A) holds its directory; the same command again (B, a real process) exits 2 with one `error:` line
    naming A's host and PID, a resume (in this process) is refused alike, and A, continued, finishes its run with
    its own arguments.json, one results.json and nothing set aside."""
    argv = tiny_arguments(root, name='dup', **SETTINGS)
    run = _run_dir(root, 'dup')
    first = _start_and_stop_after_preparing(argv)
    try:
        assert not checkpoint.holds_checkpoint(run)  # the case a failed start looks like
        second = subprocess.run([sys.executable, 'main.py', *argv], cwd=REPO, capture_output=True, text=True,
                                timeout=600)
        holder = f'host {socket.gethostname()}, PID {first.pid}'
        assert second.returncode == 2, second.stdout + second.stderr
        assert second.stderr == (f'error: run {run} is in use by a live run ({holder}); wait for it to end, stop it, '
                                 f'or start a new run with name=<new name>\n')
        with pytest.raises(UserError, match=re.escape(f'is in use by a live run ({holder})')):
            main.main(tiny_arguments(root, name='dup', resume=True, **SETTINGS))
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, _ = first.communicate(timeout=600)
    assert first.returncode == 0, out
    assert 'holds no checkpoint' not in out and not os.path.exists(os.path.join(run, checkpoint.ATTEMPTS))
    with open(os.path.join(run, 'arguments.json')) as f:
        assert json.load(f)['name'] == 'dup'
    assert sorted(n for n in os.listdir(run) if n.endswith('.json')) == ['arguments.json', 'phases.json',
                                                                         'results.json']
    assert [h['epoch'] for h in checkpoint.load(os.path.join(run, checkpoint.LAST))['state']['history']] == [1]


@pytest.mark.slow
def test_a_killed_start_leaves_a_directory_the_next_start_uses(root, capsys):
    """SIGKILL a start after it prepared its directory: the OS drops its lock, and the same command in this process
    takes the directory over as a failed start (its files kept aside) and finishes the run."""
    argv = tiny_arguments(root, name='killed', **SETTINGS)
    run = _run_dir(root, 'killed')
    first = _start_and_stop_after_preparing(argv)
    with pytest.raises(UserError, match=f'PID {first.pid}'):  # it holds the lock when it dies
        lock_run_dir(run)
    os.kill(first.pid, signal.SIGKILL)
    first.communicate(timeout=60)
    assert first.returncode == -signal.SIGKILL and not checkpoint.holds_checkpoint(run)
    capsys.readouterr()
    main.main(argv)
    assert f'note: {run} holds no checkpoint' in capsys.readouterr().out
    assert [h['epoch'] for h in checkpoint.load(os.path.join(run, checkpoint.LAST))['state']['history']] == [1]
    assert os.path.isfile(os.path.join(run, 'results.json'))
