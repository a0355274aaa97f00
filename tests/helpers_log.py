"""Reading back what the loggers wrote: wandb's offline .wandb log, neptune's offline operation log, PNGs.

wandb 0.31 ships no Python reader for its run log (the reader lives in the Go `wandb-core`), so the
documented record format is read here: a 7-byte header (':W&B', magic 0xBEE1, version 0), then
32 KiB blocks of records, each `crc32(type + payload)`, payload length (uint16), type (1 full,
2 first, 3 middle, 4 last) and the payload, a serialized `wandb.proto.wandb_internal_pb2.Record`.
"""
from __future__ import annotations

import glob
import json
import os
import struct
import zlib
from typing import Iterator

import matplotlib.image
import numpy as np
import pytest
import wandb
from wandb.proto import wandb_internal_pb2

_BLOCK = 32768
_HEADER = 7
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def wandb_records(path: str) -> Iterator[wandb_internal_pb2.Record]:
    """Every record of a .wandb file, checksums verified."""
    with open(path, 'rb') as handle:
        data = handle.read()
    magic, version = struct.unpack('<HB', data[4:7])
    assert data[:4] == b':W&B' and magic == 0xBEE1 and version == 0, f'{path}: not a wandb run log'
    position, pending = _HEADER, b''
    while position + _HEADER <= len(data):
        left_in_block = _BLOCK - position % _BLOCK
        if left_in_block < _HEADER:  # block trailer padding
            position += left_in_block
            continue
        checksum, length, kind = struct.unpack('<IHB', data[position:position + _HEADER])
        if (checksum, length, kind) == (0, 0, 0):  # zero padding up to the end of the block
            position += left_in_block
            continue
        payload = data[position + _HEADER:position + _HEADER + length]
        assert zlib.crc32(bytes([kind]) + payload) & 0xFFFFFFFF == checksum, f'{path}: bad checksum at {position}'
        position += _HEADER + length
        pending = payload if kind in (1, 2) else pending + payload
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def wandb_run_file(wandb_dir: str) -> str:
    """The single offline run log under `wandb_dir` (WANDB_DIR), complete: it ends with the run's exit record.

    `run.finish()` returns before the wandb-core process has written the log (here it was still its 7-byte
    header in 3 of 60 tries), so wandb is torn down first: `wandb.teardown()` is documented to wait until
    all data is written, as the atexit hook does when a real run's process ends.
    """
    wandb.teardown()
    paths = glob.glob(os.path.join(wandb_dir, 'wandb', 'offline-run-*', 'run-*.wandb'))
    assert len(paths) == 1, f'expected one offline wandb run under {wandb_dir}, found {paths}'
    kinds = [record.WhichOneof('record_type') for record in wandb_records(paths[0])]
    assert kinds and kinds[-1] == 'exit', f'{paths[0]}: the run log is incomplete (last records {kinds[-3:]})'
    return paths[0]


def _decode(items) -> dict:
    """Items (key or nested key path, JSON value) as a nested dict: an image is {'det/final': {'_type': ...}}."""
    result: dict = {}
    for item in items:
        keys = [item.key] if item.key else list(item.nested_key)
        node = result
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = json.loads(item.value_json)
    return result


def wandb_history(path: str) -> list[dict]:
    """History rows (user keys and wandb's _step, _runtime...) decoded from JSON."""
    return [_decode(record.history.item) for record in wandb_records(path)
            if record.WhichOneof('record_type') == 'history']


def wandb_config(path: str) -> dict:
    """The run config as recorded at start (run record) and by later config updates."""
    config = {}
    for record in wandb_records(path):
        kind = record.WhichOneof('record_type')
        updates = record.run.config.update if kind == 'run' else record.config.update if kind == 'config' else []
        config.update(_decode(updates))
    return config


def wandb_summary(path: str) -> dict:
    """The latest summary values."""
    summary = {}
    for record in wandb_records(path):
        if record.WhichOneof('record_type') == 'summary':
            summary.update(_decode(record.summary.update))
    return summary


def wandb_saved_files(path: str) -> list[str]:
    """Paths of the files handed to wandb's file sync."""
    return [item.path for record in wandb_records(path) if record.WhichOneof('record_type') == 'files'
            for item in record.files.files]


def neptune_operations(data_dir: str) -> list[dict]:
    """Every operation of the single offline neptune run under `data_dir` (.neptune)."""
    runs = glob.glob(os.path.join(data_dir, 'offline', 'run__*'))
    assert len(runs) == 1, f'expected one offline neptune run under {data_dir}, found {runs}'
    operations = []
    for log_path in sorted(glob.glob(os.path.join(runs[0], 'data-*.log'))):
        with open(log_path, encoding='utf-8') as handle:
            operations.extend(json.loads(line)['obj'] for line in handle if line.strip())
    return operations


def neptune_upload(data_dir: str, operation: dict) -> bytes:
    """The bytes an offline UploadFile operation refers to."""
    (run,) = glob.glob(os.path.join(data_dir, 'offline', 'run__*'))
    with open(os.path.join(run, 'upload_path', operation['tmp_file_name']), 'rb') as handle:
        return handle.read()


def check_png(path: str) -> np.ndarray:
    """Assert `path` is a PNG image matplotlib can read; return its pixels (H, W, channels)."""
    with open(path, 'rb') as handle:
        assert handle.read(8) == PNG_SIGNATURE, f'{path} has no PNG signature'
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100 and pixels.shape[2] in (3, 4), \
        f'{path}: unexpected image shape {pixels.shape}'
    return pixels


def files_containing(root: str, needle: str) -> list[str]:
    """Every file under `root` whose bytes contain `needle`."""
    found = []
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, 'rb') as handle:
                if needle.encode('utf-8') in handle.read():
                    found.append(path)
    return found


def all_files(root: str) -> list[str]:
    """Every file under `root` (to show that a search actually looked at something)."""
    return [os.path.join(folder, name) for folder, _, files in os.walk(root) for name in files]


@pytest.fixture
def fresh_wandb():
    """wandb reads its environment (WANDB_MODE, WANDB_DIR, WANDB_BASE_URL) once per process setup:
    tear that setup down around a test so the test's monkeypatched environment applies."""
    wandb.teardown()
    yield
    wandb.teardown()
