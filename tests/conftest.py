"""Shared test set-up: import the project from the repository root, keep torch to the machine's cores."""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope='module')
def root(tmp_path_factory) -> str:
    """A module's folder with the tiny corpus and teacher made once (helpers_trainer.tiny_arguments); modules that
    need another set-up define their own `root`."""
    from helpers_trainer import tiny_arguments  # after sys.path holds the repository root
    path = str(tmp_path_factory.mktemp('tiny'))
    tiny_arguments(path)
    return path
