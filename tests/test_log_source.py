"""Copying the sources into the run directory: which files, where, and never over an earlier copy."""
import pytest

from log.redact import Redactor
from log.source import copy_sources, next_free_path


def make_tree(root):
    """A source tree with files that must and must not be copied; the run directory lives inside it."""
    files = {
        'main.py': 'main', 'arguments.py': 'args', 'models/student.py': 'student', 'tests/test_x.py': 'test',
        'README.md': 'not python', 'models/weights.bin': 'not python',
        '.venv/lib/site.py': 'venv', 'venv/lib/site.py': 'venv', 'models/__pycache__/student.py': 'cache',
        '.pytest_cache/v/x.py': 'cache', 'runs/proj/old/source/main.py': 'old run copy',
        'wandb/run/files/code.py': 'tracker', '.neptune/x.py': 'tracker',
        'experiments/proj/run/stray.py': 'inside the run dir',
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_copies_python_sources_only(tmp_path):
    make_tree(tmp_path / 'repo')
    run_dir = tmp_path / 'repo' / 'experiments' / 'proj' / 'run'
    copied = copy_sources(str(tmp_path / 'repo'), str(run_dir / 'source'), str(run_dir), Redactor([]))
    assert sorted(copied) == ['arguments.py', 'main.py', 'models/student.py', 'tests/test_x.py']
    found = sorted(str(p.relative_to(run_dir / 'source')) for p in (run_dir / 'source').rglob('*') if p.is_file())
    assert found == sorted(copied)
    assert (run_dir / 'source' / 'models' / 'student.py').read_text() == 'student'


def test_secrets_are_masked_in_copies(tmp_path):
    (tmp_path / 'repo').mkdir()
    (tmp_path / 'repo' / 'keys.py').write_text("TOKEN = 'abc-123-SECRET'  # and again abc-123-SECRET\n")
    destination = tmp_path / 'run' / 'source'
    copy_sources(str(tmp_path / 'repo'), str(destination), str(tmp_path / 'run'), Redactor(['abc-123-SECRET']))
    assert (destination / 'keys.py').read_text() == "TOKEN = '***'  # and again ***\n"
    assert 'SECRET' in (tmp_path / 'repo' / 'keys.py').read_text()  # the original is untouched


def test_never_over_an_existing_copy(tmp_path):
    (tmp_path / 'repo').mkdir()
    (tmp_path / 'repo' / 'a.py').write_text('a')
    (tmp_path / 'source').mkdir()
    with pytest.raises(FileExistsError, match='already exists'):
        copy_sources(str(tmp_path / 'repo'), str(tmp_path / 'source'), str(tmp_path), Redactor([]))
    assert next_free_path(str(tmp_path / 'source')) == str(tmp_path / 'source-1')
    (tmp_path / 'source-1').mkdir()
    assert next_free_path(str(tmp_path / 'source')) == str(tmp_path / 'source-2')
    assert next_free_path(str(tmp_path / 'parameters.txt')) == str(tmp_path / 'parameters.txt')
    with pytest.raises(NotADirectoryError, match='not a directory'):
        copy_sources(str(tmp_path / 'nowhere'), str(tmp_path / 'dest'), str(tmp_path), Redactor([]))
