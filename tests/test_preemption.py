"""Preemption: `python main.py` (a real subprocess) sent SIGTERM mid-run exits 0, says how to resume, and leaves a
checkpoint from which `resume=True` finishes the run. That a resumed run equals an uninterrupted one is proven
in-process (test_trainer_resume.py, test_methods_resume.py)."""
import os
import signal
import subprocess
import sys

import main
from helpers_trainer import tiny_arguments
from trainer import checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_sigterm_exits_cleanly_with_a_resumable_checkpoint(tmp_path):
    root = str(tmp_path)
    settings = dict(name='preempted', epoch=2, crop_size=4000, seg_size=4000, batch_size=4)
    run = subprocess.Popen([sys.executable, 'main.py', *tiny_arguments(root, **settings)], cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in run.stdout:  # preempt as soon as epoch 1 has ended: the signal lands during epoch 2
        lines.append(line)
        if line.startswith('epoch   1 |'):
            run.send_signal(signal.SIGTERM)
            break
    lines.extend(run.stdout)
    out = ''.join(lines)
    assert run.wait(timeout=600) == 0, out
    assert 'stopped by signal' in out and 'resume=True' in out
    run_dir = os.path.join(root, 'runs', 'OS-KDFT2', 'preempted')
    assert not os.path.exists(os.path.join(run_dir, 'results.json'))
    stopped = checkpoint.load(os.path.join(run_dir, checkpoint.LAST))
    assert stopped['phase'] == 'joint' and stopped['state']['epoch'] == 1 and stopped['state']['step'] >= 1

    main.main(tiny_arguments(root, resume=True, **settings))
    finished = checkpoint.load(os.path.join(run_dir, checkpoint.LAST))['state']
    assert finished['epoch'] == 2 and [h['epoch'] for h in finished['history']] == [1, 2]
    assert os.path.isfile(os.path.join(run_dir, 'results.json'))
