"""Atomic file and directory writes: readers (a browser on the run folder, a sync job, a resuming run) never see a
half-written file or folder, and a failed write (full disk) leaves the previous file intact.

The content goes to a temporary file in the destination folder, is flushed to disk, then `os.replace` swaps it in,
which is atomic on POSIX and Windows when both paths are on the same file system. The file gets the mode any new
file gets under the user's umask (mkstemp alone would make it private, 0600). Appends (`append_whole`) are all or
nothing: a failed one cuts the file back, so a log line is never left half-written. A new directory
(`atomic_directory`) is written into a hidden staging folder beside it and renamed into place when complete.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from typing import BinaryIO, Callable, Iterator


def umask_mode(base: int = 0o666) -> int:
    """`base` reduced by the process's umask: the mode open() or mkdir() would give a new file or folder."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def atomic_write(path: str, write: Callable[[BinaryIO], None]) -> None:
    """Create or replace `path` with what `write(stream)` writes, all at once."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(path) + '.', suffix='.tmp')
    try:
        os.fchmod(handle, umask_mode())
        with os.fdopen(handle, 'wb') as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


@contextmanager
def atomic_directory(path: str) -> Iterator[str]:
    """Create the new directory `path` all at once: the block writes into the staging folder this yields (hidden,
    beside `path`, with the mode mkdir would give), which is renamed to `path` when the block ends, and removed with
    everything in it when the block or the rename fails. Nothing is replaced: the rename fails (OSError) when `path`
    exists by then."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f'.{os.path.basename(os.path.abspath(path))}.incomplete-', dir=parent)
    try:
        os.chmod(staging, umask_mode(0o777))  # mkdtemp makes it private
        yield staging
        os.rename(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Create or replace `path` with `data`, all at once."""
    atomic_write(path, lambda stream: stream.write(data))


def append_whole(path: str, data: bytes) -> None:
    """Append `data` to `path` (created if missing) entirely or not at all: when a write fails part-way (full disk),
    the file is cut back to its old length before the error is raised, so later appends stay well-formed."""
    handle = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)  # the umask applies, as for open()
    try:
        size = os.fstat(handle).st_size
        try:
            rest = memoryview(data)
            while rest:
                rest = rest[os.write(handle, rest):]
        except BaseException:
            os.ftruncate(handle, size)
            raise
    finally:
        os.close(handle)
