"""Atomic file writes: readers (a browser on the run folder, a sync job) never see a half-written file.

The content goes to a temporary file in the destination folder, then `os.replace` swaps it in,
which is atomic on POSIX and Windows when both paths are on the same file system.
"""
from __future__ import annotations

import os
import tempfile
from typing import BinaryIO, Callable


def atomic_write(path: str, write: Callable[[BinaryIO], None]) -> None:
    """Create or replace `path` with what `write(stream)` writes, all at once."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix='.tmp-', suffix=os.path.splitext(path)[1])
    try:
        with os.fdopen(handle, 'wb') as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Create or replace `path` with `data`, all at once."""
    atomic_write(path, lambda stream: stream.write(data))
