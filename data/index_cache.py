"""On-disk cache of one root's utterance index, so that a restart does not list a million files again.

One .npz file per root (named after a hash of its real path) holds the index arrays, the file count and the
modification time of every folder below the root. Adding, removing or renaming a file changes the mtime of the
folder holding it, so the cache is valid exactly while every listed folder still has its recorded mtime: checking
that costs one stat per folder (~150 k for VoxCeleb2 dev) instead of listing 1.09 M files. Folder times have a
coarse clock (a few ms, 2 s on FAT): a folder changed shortly before the scan could change again without a new
mtime, so such a scan is not cached (the next start lists the root again).
"""
from __future__ import annotations

import hashlib
import io
import os
import warnings
import zipfile
from dataclasses import dataclass

import numpy as np

from data.utterance_index import UtteranceIndex
from utils.atomic import atomic_write_bytes

CACHE_VERSION = 1  # bump when the scan or the stored arrays change, so that older caches are rescanned
RECENT_NS = 2 * 10**9  # a scan whose folders changed this shortly before it started is not cached


@dataclass
class RootScan:
    """What one scan of a root found: its utterances, every folder below it with its mtime, and when the scan
    started (ns, the clock file times use)."""
    index: UtteranceIndex
    folders: list[str]
    mtimes: np.ndarray  # [F] int64
    started_ns: int


def cache_path(cache_dir: str, root: str) -> str:
    """The cache file of `root` (keyed by its real path) in `cache_dir`."""
    digest = hashlib.sha256(os.path.realpath(root).encode('utf-8', 'surrogateescape')).hexdigest()[:20]
    return os.path.join(cache_dir, f"utterances-{digest}.npz")


def _pack(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Strings as (concatenated file-system bytes [B] uint8, offsets [N+1] int64)."""
    encoded = [os.fsencode(t) for t in texts]
    offsets = np.zeros(len(encoded) + 1, np.int64)  # [N+1]
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return np.frombuffer(b''.join(encoded), dtype=np.uint8), offsets


def _unpack(blob: np.ndarray, offsets: np.ndarray) -> list[str]:
    raw = blob.tobytes()
    return [os.fsdecode(raw[a:b]) for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]


def save_scan(cache_dir: str, root: str, scan: RootScan) -> bool:
    """Write the cache of `root` atomically; False when not written (folders changed just before the scan, or a
    cache folder that cannot be written, which costs a warning)."""
    if int(scan.mtimes.max()) >= scan.started_ns - RECENT_NS:
        return False
    folder_blob, folder_offsets = _pack(scan.folders)
    index = scan.index
    buffer = io.BytesIO()
    np.savez(buffer, version=np.int64(CACHE_VERSION), root=np.array(os.path.realpath(root)),
             files=np.int64(len(index)), folder_blob=folder_blob, folder_offsets=folder_offsets, mtimes=scan.mtimes,
             blob=index.blob, starts=index.starts, ends=index.ends, labels=index.labels,
             speaker_ids=index.speaker_ids)
    path = cache_path(cache_dir, root)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as err:
        warnings.warn(f"could not write the utterance-index cache {path} ({err}); the next start rescans {root}",
                      stacklevel=2)
        return False
    return True


def _folders_unchanged(root: str, folders: list[str], mtimes: np.ndarray) -> bool:
    for folder, mtime in zip(folders, mtimes.tolist()):
        try:
            if os.stat(os.path.join(root, folder)).st_mtime_ns != mtime:
                return False
        except OSError:
            return False
    return True


def load_scan(cache_dir: str, root: str) -> UtteranceIndex | None:
    """The cached index of `root`, or None when there is no cache, it is of another version or root, or a folder
    below the root was added, removed or changed since it was written."""
    path = cache_path(cache_dir, root)
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            if int(stored['version']) != CACHE_VERSION or str(stored['root']) != os.path.realpath(root):
                return None
            folders = _unpack(stored['folder_blob'], stored['folder_offsets'])
            if not _folders_unchanged(root, folders, stored['mtimes']):
                return None
            files = int(stored['files'])
            index = UtteranceIndex((root,), np.zeros(files, np.int16), stored['blob'], stored['starts'],
                                   stored['ends'], stored['labels'], stored['speaker_ids'])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        warnings.warn(f"ignoring an unreadable utterance-index cache {path} ({err}); rescanning {root}",
                      stacklevel=2)
        return None
    return index
