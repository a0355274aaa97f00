"""The metric history of a run, kept in `metrics.jsonl` (one JSON object per logged value).

The file is only ever appended to, so a resumed run continues the same history; on start the
existing lines are read back, which gives the plots the whole run and lets step-less values
continue counting where the previous session stopped.
"""
from __future__ import annotations

import json
import os
import time
import warnings

from utils.atomic import append_whole


class MetricHistory:
    """All values of all metrics of a run, mirrored in an append-only JSON-lines file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._series: dict[str, list[tuple[int, float]]] = {}
        if os.path.exists(path):
            self._load()

    def _load(self) -> None:
        """Read the existing file; a partial last line (a crash mid-write) is cut off with a warning."""
        with open(self.path, 'rb') as handle:
            data = handle.read()
        complete = data[:data.rfind(b'\n') + 1]
        if len(complete) != len(data):
            warnings.warn(f'{self.path}: dropping an unterminated last line {data[len(complete):][:80]!r} '
                          f'(the previous run stopped while writing it)', RuntimeWarning, stacklevel=3)
            with open(self.path, 'r+b') as handle:
                handle.truncate(len(complete))
        for number, line in enumerate(complete.decode('utf-8').splitlines(), start=1):
            try:
                record = json.loads(line)
                name, value, step = record['name'], float(record['value']), int(record['step'])
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f'{self.path} line {number} is not a metric record '
                                 f'{{"name", "value", "step", "time"}}: {line[:120]!r} ({error})') from error
            self._series.setdefault(name, []).append((step, value))

    def next_step(self, name: str) -> int:
        """The step a value logged without one gets: one past the metric's highest step, else 0."""
        points = self._series.get(name)
        return max(step for step, _ in points) + 1 if points else 0

    def add(self, name: str, value: float, step: int) -> dict:
        """Append one value to the history, then to the file (whole lines only: a failed write, e.g. a full disk,
        leaves the file as it was and raises); return the record."""
        record = {'name': name, 'value': value, 'step': step, 'time': time.time()}
        self._series.setdefault(name, []).append((step, value))
        append_whole(self.path, (json.dumps(record) + '\n').encode('utf-8'))
        return record

    def series(self, prefix: str) -> dict[str, list[tuple[int, float]]]:
        """Every metric whose name starts with `prefix`, as name -> [(step, value), ...]."""
        return {name: list(points) for name, points in self._series.items() if name.startswith(prefix)}
