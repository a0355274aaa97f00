"""Preemption as a cluster does it: a stop signal sent to the whole process group of `python main.py` (a real
subprocess in its own session: the main process, its DataLoader workers, spawned ranks and theirs) ends with exit 0, a
hint to resume and a mid-epoch checkpoint; SIGUSR1 (Slurm's warning before a time limit) does the same. The
resumed run equals an uninterrupted one."""
import os
import signal
import subprocess
import sys

import pytest
import torch

import main
from helpers_trainer import comparable_results, tiny_arguments
from trainer import checkpoint

pytestmark = pytest.mark.slow  # signals a process group of real processes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTINGS = dict(epoch=2, crop_size=4000, seg_size=4000, batch_size=4)


def _stopped_by_group_signal(root: str, name: str, signum: int, **extra) -> str:
    """Start main.py in its own session, signal its whole process group once epoch 1 has ended; the run directory."""
    run = subprocess.Popen([sys.executable, 'main.py', *tiny_arguments(root, name=name, **SETTINGS, **extra)],
                           cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    lines = []
    for line in run.stdout:  # the signal lands during epoch 2
        lines.append(line)
        if line.startswith('epoch   1 |'):
            os.killpg(run.pid, signum)
            break
    lines.extend(run.stdout)
    out = ''.join(lines)
    assert run.wait(timeout=600) == 0, out
    assert 'stopped by signal' in out and 'resume=True' in out and 'killed by signal' not in out
    run_dir = os.path.join(root, 'runs', 'OS-KDFT2', name)
    assert not os.path.exists(os.path.join(run_dir, 'results.json'))
    stopped = checkpoint.load(os.path.join(run_dir, checkpoint.LAST))
    assert stopped['phase'] == 'joint' and stopped['state']['epoch'] == 1 and stopped['state']['step'] >= 1
    return run_dir


def test_group_sigterm_with_workers_then_resume_equals_the_straight_run(root):
    main.main(tiny_arguments(root, name='straight', num_workers=2, **SETTINGS))
    run_dir = _stopped_by_group_signal(root, 'preempted', signal.SIGTERM, num_workers=2)
    main.main(tiny_arguments(root, name='preempted', resume=True, num_workers=2, **SETTINGS))
    a = checkpoint.load(os.path.join(root, 'runs', 'OS-KDFT2', 'straight', checkpoint.LAST))
    b = checkpoint.load(os.path.join(run_dir, checkpoint.LAST))
    for key in a['model']:
        assert torch.equal(a['model'][key], b['model'][key]), key
    assert a['state']['history'] == b['state']['history']
    assert comparable_results(os.path.join(root, 'runs', 'OS-KDFT2', 'straight')) == comparable_results(run_dir)


@pytest.mark.parametrize('signum', [signal.SIGUSR1])
def test_group_sigusr1_reaches_spawned_ranks_and_their_workers(root, signum):
    run_dir = _stopped_by_group_signal(root, 'warned', signum, num_workers=1, cpu_processes=2)
    assert checkpoint.load(os.path.join(run_dir, checkpoint.LAST))['world_size'] == 2  # both ranks took part
