"""One convention for every command: a user error is one `error:` line on stderr and exit status 2 (main.py,
compare.py, python -m export, python -m data.prepare, python -m data.corrupt, the bench scripts). Each command's entry
point runs in this process through utils.errors.exit_on_user_error, as its `__main__` does; one real process per
kind of entry point is in the slow tier."""
import os
import subprocess
import sys

import pytest

import compare
import main
from bench import train_step
from data import corrupt, prepare
from export import cli
from utils.errors import EXIT_USER_ERROR, exit_on_user_error

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _mistakes(folder: str) -> dict[str, tuple[callable, str]]:
    """command → (its entry point called with a mistake, a fragment its one line must hold)."""
    missing = os.path.join(folder, 'missing')
    audio = missing + '.wav'
    return {
        'main.py': (lambda: main.main(['epoch=zero']), "error: argument 'epoch': could not parse 'zero'"),
        'compare.py': (lambda: compare.compare(['method=precomp']),
                       "error: argument 'method': the comparison sets it for each run itself"),
        'python -m export (option)': (lambda: cli.main(['verify', '--model', folder]),
                                      'error: the following arguments are required: A, B'),
        'python -m export (input)': (lambda: cli.main(['verify', '--model', folder, audio, audio]),
                                     f'error: audio file not found: {audio}'),
        'python -m data.prepare': (lambda: prepare.main(['convert', missing, os.path.join(folder, 'dst')]),
                                   f"error: SRC {missing!r} is not a folder"),
        'python -m data.corrupt': (lambda: corrupt.main(['--src', missing, '--out', os.path.join(folder, 'out')]),
                                   f'error: --src {missing} is not a folder'),
        'bench/train_step.py': (lambda: train_step.main(['--batch', '1']),
                                'error: argument --batch: expected a value >= 2'),
    }


@pytest.mark.parametrize('command', list(_mistakes('')))
def test_a_user_error_is_one_error_line_and_exit_status_2(tmp_path, capsys, command):
    entry, fragment = _mistakes(str(tmp_path))[command]
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        exit_on_user_error(entry)
    assert stop.value.code == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith(fragment), err


@pytest.mark.slow
@pytest.mark.parametrize('argv', [['compare.py', 'method=precomp'], ['-m', 'data.corrupt', '--src', 'nowhere'],
                                  ['bench/train_step.py', '--batch', '1']])
def test_real_processes_follow_it(argv):
    done = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == EXIT_USER_ERROR, done.stderr
    assert done.stderr.startswith('error: ') and done.stderr.count('\n') == 1, done.stderr
