"""Shared test set-up: import the project from the repository root, keep torch to the machine's cores, register the
`slow` marker (the quick check `python -m pytest -q -m "not slow" tests` leaves those tests out), and make the tiny
corpus and teacher once per session."""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
torch.set_num_threads(min(2, os.cpu_count() or 1))


def pytest_configure(config) -> None:
    config.addinivalue_line('markers', 'slow: starts processes (subprocesses, several ranks, torchrun), sends '
                                       'signals, fills a disk, runs the bench scripts or the comparison, or trains '
                                       'long')


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory) -> str:
    """The tiny corpus and teacher (helpers_trainer.tiny_arguments), made once for the whole session: a folder holding
    `corpus` and `teacher`. Tests never change them (a test that breaks files breaks its own copies)."""
    from helpers_trainer import tiny_arguments  # after sys.path holds the repository root
    path = str(tmp_path_factory.mktemp('tiny_data'))
    tiny_arguments(path)
    return path


@pytest.fixture(scope='module')
def root(tmp_path_factory, tiny_data) -> str:
    """A module's own folder (its runs, logs and index cache) whose `corpus` and `teacher` are the session's
    (tiny_data, linked); modules that need another set-up define their own `root`."""
    path = str(tmp_path_factory.mktemp('tiny'))
    for name in ('corpus', 'teacher'):
        os.symlink(os.path.join(tiny_data, name), os.path.join(path, name))
    return path
