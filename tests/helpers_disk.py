"""A small real file system for full-disk tests, and filling one up: a tmpfs mounted where this process may mount
(root, mount permitted); elsewhere the tests inject ENOSPC instead."""
import contextlib
import errno
import os
import shutil
import subprocess


@contextlib.contextmanager
def small_filesystem(path: str, megabytes: int):
    """Mount a `megabytes` MB tmpfs at `path` (created) while the block runs; yields whether it is mounted (False:
    `path` is a plain folder, as where mounting is not allowed)."""
    os.makedirs(path, exist_ok=True)
    mounted = (hasattr(os, 'geteuid') and os.geteuid() == 0 and shutil.which('mount') is not None
               and subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={megabytes}m', 'tmpfs', path],
                                  capture_output=True).returncode == 0)
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(['umount', '-l', path], check=True)


def fill(path: str) -> int:
    """Write the file `path` until its file system has no byte left (ENOSPC at every chunk size down to one byte);
    return the bytes written."""
    written = 0
    with open(path, 'ab', buffering=0) as handle:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1):
            block = b'\0' * chunk
            try:
                while True:
                    written += handle.write(block)
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
    return written


def failing_write(stream, data: bytes):
    """Write half of `data` to `stream`, then fail like a full disk."""
    stream.write(data[:len(data) // 2])
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
