"""`python tests/disk_full_main.py key=value ...`: main.py on a disk that fills up during the run, as when another job
fills it: right after rank 0's FILL_AFTER_SAVES-th checkpoint write (0: before the first one).

With FILL_PATH set (a file on the run directory's small file system), that file is written until the file system is
full, so every later write gets a real ENOSPC from the kernel. Without it (no file system could be mounted), every
later checkpoint write fails part-way with an injected ENOSPC. The hook is installed at import, so the ranks that
torch.multiprocessing.spawn starts (they import this file as their __mp_main__) have it too.
"""
import os
import sys

sys.path[:0] = [os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.path.dirname(__file__)]

import main  # noqa: E402
from helpers_disk import failing_write, fill  # noqa: E402
from trainer import checkpoint  # noqa: E402

FILL_AFTER = int(os.environ['FILL_AFTER_SAVES'])
real_save, real_atomic_write = checkpoint.save_atomic, checkpoint.atomic_write
saves = {'n': 0, 'full': False}


def make_disk_full() -> None:
    if saves['full']:
        return
    saves['full'] = True
    if os.environ.get('FILL_PATH'):
        fill(os.environ['FILL_PATH'])
    else:
        checkpoint.atomic_write = lambda path, write: real_atomic_write(
            path, lambda stream: failing_write(stream, b'\0' * 4096))


def save_then_fill(state: dict, path: str) -> None:
    if saves['n'] == FILL_AFTER:
        make_disk_full()
    real_save(state, path)
    saves['n'] += 1
    if saves['n'] == FILL_AFTER:
        make_disk_full()


checkpoint.save_atomic = save_then_fill

if __name__ == '__main__':
    main.main(sys.argv[1:])
