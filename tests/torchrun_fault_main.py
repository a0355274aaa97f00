"""`python -m torch.distributed.run ... tests/torchrun_fault_main.py key=value ...`: main.py with one rank that
crashes, as a node failing mid-epoch would: global rank FAULT_RANK ends its process (os._exit(1): no clean-up, no
checkpoint) right after its FAULT_AFTER_STEPS-th training step, on the job's first attempt only (torchrun's
TORCHELASTIC_RESTART_COUNT 0), so that torchrun's restart of the worker group can be tested for real. The fault is
injected here, around trainer.loop.train_step; the product has no hook for it."""
import os
import sys

sys.path[:0] = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]

import main  # noqa: E402
import trainer.loop  # noqa: E402

FAULT_RANK, FAULT_AFTER_STEPS = int(os.environ['FAULT_RANK']), int(os.environ['FAULT_AFTER_STEPS'])
real_train_step, steps = trainer.loop.train_step, {'n': 0}


def train_step_then_maybe_crash(*args, **kwargs):
    out = real_train_step(*args, **kwargs)
    steps['n'] += 1
    first_attempt = os.environ.get('TORCHELASTIC_RESTART_COUNT', '0') == '0'
    if first_attempt and int(os.environ['RANK']) == FAULT_RANK and steps['n'] == FAULT_AFTER_STEPS:
        print(f'test fault: rank {FAULT_RANK} exits after training step {steps["n"]}', flush=True)
        os._exit(1)
    return out


trainer.loop.train_step = train_step_then_maybe_crash

if __name__ == '__main__':
    main.main(sys.argv[1:])
