"""DataLoader worker set-up for clusters: a stop signal sent to the whole process group (Slurm preemption and
`scancel`, `timeout`, container stops) reaches the DataLoader workers too. By default SIGTERM and SIGUSR1 kill a
worker and SIGINT ends its loop, and the main process then fails with "DataLoader worker ... killed by signal"
before it can write its checkpoint. Workers that ignore these signals leave them to their parent, which stops
cleanly and shuts its workers down itself. A worker still exits when its parent is gone (the DataLoader's
watchdog), and one still busy when its DataLoader shuts down finishes its item before it sees the shutdown."""
from __future__ import annotations

import contextlib
import signal
from typing import Callable, Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: this worker ignores SIGTERM, SIGINT and SIGUSR1 (and unblocks them, see
    stop_signals_blocked: a signal that came while it started is dropped)."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


@contextlib.contextmanager
def stop_signals_blocked() -> Iterator[None]:
    """Start DataLoader workers inside this block. A worker inherits the signal mask, so a stop signal sent to the
    group while it is still starting (a spawned worker imports torch before worker_init_fn runs) waits instead of
    killing it; the parent receives its own copy when the block ends."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def stop_signals_handled(handler: Callable[[int, object], None]) -> Iterator[None]:
    """Inside this block `handler(signum, frame)` receives SIGTERM, SIGINT and SIGUSR1 (a preemption, a Ctrl-C,
    Slurm's warning before a time limit); the previous handlers come back when it ends."""
    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
