"""Checkpoints are data: every checkpoint the project reads loads with weights_only=True. A crafted checkpoint whose
pickle would run code (here: create a file) is refused with one `error:` line and exit status 2, for resume=True in a
run directory and for `python -m export export --checkpoint`, and the file is never created. A checkpoint of the
earlier format (NumPy and tensor RNG states) still loads, its RNG states as plain values."""
import os
import random
import subprocess
import sys

import numpy as np
import pytest
import torch

from helpers_trainer import tiny_arguments
from trainer import checkpoint
from utils.seed import get_rng_state, set_rng_state

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class CreatesFile:
    """Unpickled by a full pickle load, it creates the file `path` (what a malicious checkpoint could do)."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return os.system, (f'touch {self.path}',)


def crafted_checkpoint(path: str, marker: str) -> str:
    """A checkpoint-looking file (model weights, an export entry) whose pickle would create `marker`."""
    torch.save({'model': {'w': torch.ones(2)}, 'export': CreatesFile(marker), 'state': {}}, path)
    return path


def test_the_crafted_payload_runs_under_a_full_pickle_load(tmp_path):
    """The payload works: loading the file the old way (weights_only=False) creates the file."""
    marker = str(tmp_path / 'ran')
    torch.load(crafted_checkpoint(str(tmp_path / 'evil.pt'), marker), weights_only=False)
    assert os.path.exists(marker)


def test_load_refuses_a_crafted_checkpoint_unrun(tmp_path):
    marker = str(tmp_path / 'ran')
    path = crafted_checkpoint(str(tmp_path / 'evil.pt'), marker)
    with pytest.raises(checkpoint.UnsafeCheckpointError, match=r'evil\.pt is refused.*posix\.system.*nothing in it'):
        checkpoint.load(path)
    assert not os.path.exists(marker)


def legacy_rng_state() -> dict:
    """An RNG state as the earlier version captured it: a NumPy state tuple with its array, tensors."""
    state = {'python': random.getstate(), 'numpy': np.random.get_state(), 'torch': torch.get_rng_state()}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def test_a_checkpoint_of_the_earlier_format_loads_and_restores_its_rng(tmp_path):
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    path = str(tmp_path / checkpoint.LAST)
    checkpoint.save_atomic({'model': {'w': torch.arange(3.0)}, 'state': {'epoch': 1, 'step': 2},
                            'rng': [legacy_rng_state()], 'world_size': 1}, path)
    expected = (random.random(), float(np.random.random()), float(torch.rand(1)))
    random.seed(4)
    np.random.seed(4)
    torch.manual_seed(4)
    loaded = checkpoint.load(path, 'meta')  # weights to a non-CPU device; the earlier format is read on the CPU
    assert torch.equal(loaded['model']['w'], torch.arange(3.0)) and loaded['state'] == {'epoch': 1, 'step': 2}
    assert set(loaded['rng'][0]) == set(get_rng_state())
    set_rng_state(loaded['rng'][0])
    assert (random.random(), float(np.random.random()), float(torch.rand(1))) == expected


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith('error:')]
    assert result.returncode == 2 and len(errors) == 1 and 'Traceback' not in result.stderr, result.stderr
    return errors[0]


@pytest.mark.slow
def test_resume_refuses_a_crafted_checkpoint_unrun(tmp_path):
    root, marker = str(tmp_path), str(tmp_path / 'ran')
    run_dir = os.path.join(root, 'runs', 'OS-KDFT2', 'shared')
    os.makedirs(run_dir)
    crafted_checkpoint(os.path.join(run_dir, checkpoint.LAST), marker)
    result = subprocess.run([sys.executable, 'main.py', *tiny_arguments(root, name='shared', resume=True)], cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    line = _one_error_line(result)
    assert f'{run_dir}/{checkpoint.LAST} is refused' in line and 'posix.system' in line
    assert not os.path.exists(marker)


@pytest.mark.slow
def test_export_refuses_a_crafted_checkpoint_unrun(tmp_path):
    marker, out = str(tmp_path / 'ran'), str(tmp_path / 'export')
    path = crafted_checkpoint(str(tmp_path / 'evil.pt'), marker)
    result = subprocess.run([sys.executable, '-m', 'export', 'export', '--checkpoint', path, '--out', out,
                             '--threshold', '0.5'], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert f'{path} is refused' in _one_error_line(result)
    assert not os.path.exists(marker) and not os.path.exists(out)
