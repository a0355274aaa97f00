"""Preemption: `python main.py` sent SIGTERM mid-run writes a resumable checkpoint and exits cleanly; the
resumed run ends with the same parameters and metrics as an uninterrupted one (CPU, real subprocesses)."""
import os
import signal
import subprocess
import sys
import time

import torch

from helpers_trainer import comparable_results, tiny_arguments
from trainer import checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _main(args, **popen):
    return subprocess.Popen([sys.executable, 'main.py', *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **popen)


def test_sigterm_then_resume_equals_uninterrupted_run(tmp_path):
    root = str(tmp_path)
    settings = dict(epoch=3, crop_size=4000, seg_size=4000, batch_size=4)
    straight = _main(tiny_arguments(root, name='straight', **settings))
    assert straight.wait(timeout=600) == 0, straight.stdout.read()

    run = _main(tiny_arguments(root, name='preempted', **settings))
    lines = []
    for line in run.stdout:  # wait for the end of epoch 1, then preempt during epoch 2
        lines.append(line)
        if line.startswith('epoch   1 |'):
            time.sleep(0.5)
            run.send_signal(signal.SIGTERM)
            break
    lines.extend(run.stdout)
    assert run.wait(timeout=600) == 0, ''.join(lines)
    out = ''.join(lines)
    assert 'stopped by signal' in out and 'resume=True' in out
    run_dir = os.path.join(root, 'runs', 'OS-KDFT2', 'preempted')
    assert not os.path.exists(os.path.join(run_dir, 'results.json'))
    stopped = checkpoint.load(os.path.join(run_dir, checkpoint.LAST))['state']
    assert stopped['epoch'] < 3

    resumed = _main(tiny_arguments(root, name='preempted', resume=True, **settings))
    assert resumed.wait(timeout=600) == 0, resumed.stdout.read()

    a = checkpoint.load(os.path.join(root, 'runs', 'OS-KDFT2', 'straight', checkpoint.LAST))
    b = checkpoint.load(os.path.join(run_dir, checkpoint.LAST))
    for key in a['model']:
        assert torch.equal(a['model'][key], b['model'][key]), key
    assert a['state']['history'] == b['state']['history']
    final = [comparable_results(d)
             for d in (os.path.join(root, 'runs', 'OS-KDFT2', 'straight'), run_dir)]
    assert final[0] == final[1]
