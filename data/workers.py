"""DataLoader worker set-up for clusters: a stop signal sent to the whole process group (Slurm preemption and
`scancel`, `timeout`, container stops) reaches the DataLoader workers too. By default SIGTERM and SIGUSR1 kill a
worker and SIGINT ends its loop, and the main process then fails with "DataLoader worker ... killed by signal"
before it can write its checkpoint. Workers that ignore these signals leave them to their parent, which stops
cleanly and shuts its workers down itself. A worker still exits when its parent is gone (the DataLoader's
watchdog), and one still busy when its DataLoader shuts down finishes its item before it sees the shutdown."""
from __future__ import annotations

import signal

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader `worker_init_fn`: this worker ignores SIGTERM, SIGINT and SIGUSR1."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
