"""data/workers.py: a stop signal sent to the whole process group leaves DataLoader workers running, so the main
process can act on it; without the worker set-up the same signal kills the workers and the main process fails."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow  # signals a subprocess and its DataLoader workers

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A loader over slow items in 2 workers; on a stop signal the main process takes 3 more batches (the workers must
# still deliver them), then exits 0.
CHILD = textwrap.dedent('''
    import signal, sys, time
    sys.path.insert(0, sys.argv[2])
    from torch.utils.data import DataLoader, Dataset
    from data.workers import ignore_stop_signals

    class Slow(Dataset):
        def __len__(self):
            return 1000

        def __getitem__(self, i):
            time.sleep(0.01)
            return i

    stops = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(sig, lambda number, frame: stops.append(number))
    init = ignore_stop_signals if sys.argv[1] == 'ignore' else None
    seen, after = [], 0
    for batch in DataLoader(Slow(), batch_size=4, num_workers=2, worker_init_fn=init):
        seen.extend(batch.tolist())
        if len(seen) == 8:
            print('ready', flush=True)
        after += bool(stops)
        if after == 3:
            break
    print(f'stopped by signal {stops[0]} with {len(seen)} items in order: {seen == list(range(len(seen)))}')
''')


def _run_and_signal(tmp_path, mode: str, sig: int) -> tuple[int, str]:
    """Start the child in its own session, signal its whole process group once it has taken two batches."""
    script = tmp_path / 'child.py'
    script.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(script), mode, REPO], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        first = child.stdout.readline()
        assert first == 'ready\n', first + child.stdout.read()
        os.killpg(child.pid, sig)
        out, _ = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    return child.returncode, out


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1])
def test_workers_leave_group_signals_to_their_parent(tmp_path, sig):
    code, out = _run_and_signal(tmp_path, 'ignore', sig)
    assert code == 0, out
    assert f'stopped by signal {int(sig)} with ' in out and 'in order: True' in out


def test_without_it_a_group_sigterm_kills_the_workers(tmp_path):
    code, out = _run_and_signal(tmp_path, 'default', signal.SIGTERM)
    assert code != 0 and ('killed by signal' in out or 'exited unexpectedly' in out), out
