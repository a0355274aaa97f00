"""Copying the run's Python sources into the run directory, with secrets masked.

Only `*.py` files are copied. Skipped: hidden directories (.venv, .git, .pytest_cache, .neptune),
caches and tracker folders (EXCLUDED_DIRS), and the directory tree that holds the run itself.
"""
from __future__ import annotations

import os

from log.redact import Redactor

EXCLUDED_DIRS = frozenset({'__pycache__', 'runs', 'wandb', 'venv', 'build', 'dist'})


def next_free_path(path: str) -> str:
    """`path` if nothing exists there, else `path-1`, `path-2`, ... (first free): never overwrite."""
    if not os.path.exists(path):
        return path
    root, ext = os.path.splitext(path)
    index = 1
    while os.path.exists(f'{root}-{index}{ext}'):
        index += 1
    return f'{root}-{index}{ext}'


def _run_tree(source_dir: str, run_dir: str) -> str | None:
    """The top directory of `source_dir` that contains `run_dir`, if the run lives inside the sources."""
    relative = os.path.relpath(os.path.abspath(run_dir), os.path.abspath(source_dir))
    if relative == '.' or relative.startswith('..'):
        return None
    return os.path.join(os.path.abspath(source_dir), relative.split(os.sep)[0])


def copy_sources(source_dir: str, destination: str, run_dir: str, redactor: Redactor) -> list[str]:
    """Copy every `*.py` under `source_dir` into `destination` (which must not exist yet).

    Each copy has every secret masked. Returns the copied paths relative to `source_dir`.
    """
    if not os.path.isdir(source_dir):
        raise NotADirectoryError(f'save_source_files: {source_dir!r} is not a directory')
    if os.path.exists(destination):
        raise FileExistsError(f'save_source_files: {destination!r} already exists')
    skip_tree = _run_tree(source_dir, run_dir)
    copied = []
    for root, dirs, files in os.walk(source_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith('.') and d not in EXCLUDED_DIRS
                         and os.path.abspath(os.path.join(root, d)) != skip_tree)
        for file_name in sorted(files):
            if not file_name.endswith('.py'):
                continue
            relative = os.path.relpath(os.path.join(root, file_name), source_dir)
            target = os.path.join(destination, relative)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(os.path.join(root, file_name), 'rb') as handle:
                data = handle.read()
            with open(target, 'wb') as handle:
                handle.write(redactor.data(data))
            copied.append(relative)
    return copied
