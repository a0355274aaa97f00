"""A live run owns its directory: the process that prepares the run (the only process, spawn's parent, or torchrun's
global rank 0) holds an exclusive `flock` on `<run dir>/run.lock` until the run ends. The operating system releases
the lock when that process dies, however it dies (SIGKILL, out of memory, node reboot), so a crash never leaves a
stale lock; a second start or resume of the same run while the lock is held stops with one `error:` line naming the
holder's host and PID, which the holder writes into the file.

Where the file system does not implement flock (some FUSE and parallel file systems answer ENOLCK, EOPNOTSUPP or
ENOSYS), the run proceeds without the lock and says so: two starts of one name are then not told apart. Where locks
are local to one node (e.g. Lustre mounted with localflock), a start on another node cannot see the lock at all.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket

from utils.errors import UserError

LOCK_FILE = 'run.lock'  # inside the run directory; kept after the run (removing it would race a waiting start)
UNSUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)  # flock not implemented here


class RunLock:
    """The held lock of one run directory (`fd` None where the file system has no locks); `release` ends it."""

    def __init__(self, path: str, fd: int | None) -> None:
        self.path = path
        self.fd = fd

    def release(self) -> None:
        """Unlock and close (closing alone would unlock too); a second call does nothing."""
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def holder(path: str) -> str:
    """'host <h>, PID <p>' as the holder recorded it in the lock file ('an unknown process' while it is being written
    or when it is unreadable)."""
    try:
        with open(path) as f:
            owner = json.load(f)
        return f"host {owner['host']}, PID {owner['pid']}"
    except (OSError, ValueError, KeyError, TypeError):
        return 'an unknown process'


def lock_run_dir(run_dir: str) -> RunLock:
    """Take the lock of the existing directory `run_dir` without waiting, and record this host and PID in it.
    A lock held by another process (or by this one, through another open of the file) → UserError naming the run,
    the holder's host and PID. A file system without flock → a printed note and a RunLock without a descriptor."""
    path = os.path.join(run_dir, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise UserError(f'run {run_dir} is in use by a live run ({holder(path)}); wait for it to end, stop it, '
                        f'or start a new run with name=<new name>') from None
    except OSError as error:
        os.close(fd)
        if error.errno not in UNSUPPORTED:
            raise
        print(f'note: the file system of {run_dir} does not support file locks ({os.strerror(error.errno)}): '
              f'a second start of this name while it runs cannot be detected', flush=True)
        return RunLock(path, None)
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({'host': socket.gethostname(), 'pid': os.getpid()}).encode() + b'\n')
    return RunLock(path, fd)
