"""The local logger: plain files in the run directory, in the original OS-KDFT layout.

<run_dir>/
    parameters.txt          one `key: value` line per argument (masked)
    source/                 the *.py files of the code that ran (secrets masked)
    <metric>.txt            one `[<step>] <metric>: <value>` line per value, e.g. eer/val.txt
    metrics.jsonl           every value as {"name", "value", "step", "time"}
    texts/<name>.txt        logged texts, appended
    plots/loss.png          every 'loss/...' metric; plots/eer.png every 'eer/...' metric
    figures/<name>.png      logged figures (and DET curves)
    models/<name>.pt        saved state dicts
Nothing that existed before is deleted: metric files and metrics.jsonl are appended to, a second
parameters file or source copy gets a free name (parameters-1.txt, source-1/), and only the
logger's own plots, figures and models are replaced (atomically) when logged again.
A write that fails (full disk) does not stop training: the first failure of each kind of output is
warned about (OutputWarning), every one is counted, and `incomplete_outputs` lists them at the end.
"""
from __future__ import annotations

import os
import shutil
import warnings
from typing import Callable

import torch
from matplotlib.figure import Figure

from utils.atomic import append_whole, atomic_write, atomic_write_bytes
from log.base import Logger, check_name
from log.history import MetricHistory
from log.plots import curves_figure, save_png
from log.redact import Redactor
from log.source import copy_sources, next_free_path

# folders of the run directory that metric files must not write into
RESERVED_FOLDERS = frozenset({'source', 'texts', 'plots', 'figures', 'models'})
RESERVED_METRICS = frozenset({'parameters'})
# plot name -> (metric name prefix, title, y label); redrawn when a metric of the group reaches a new step
PLOT_GROUPS = {
    'loss': ('loss/', 'Loss curves', 'loss'),
    'eer': ('eer/', 'EER per epoch', 'EER (%)'),
}


class OutputWarning(RuntimeWarning):
    """A file of the run's record could not be written; training goes on and the end of the run lists it."""


class LocalLogger(Logger):
    """Writes arguments, metrics, texts, plots and models as files under `run_dir`."""

    name = 'local'
    optional = False

    def __init__(self, run_dir: str, redactor: Redactor, source_dir: str | None = None) -> None:
        os.makedirs(run_dir, exist_ok=True)
        self.run_dir = run_dir
        self._redactor = redactor
        self._history = MetricHistory(os.path.join(run_dir, 'metrics.jsonl'))
        self._drawn_step: dict[str, int] = {}
        self._stale: set[str] = set()
        self._failures: dict[str, dict] = {}  # kind of output → {'count', 'path', 'error'} of its failed writes
        self.source_copy = None
        if source_dir is not None:
            self.source_copy = next_free_path(os.path.join(run_dir, 'source'))
            copy_sources(source_dir, self.source_copy, run_dir, redactor)

    def log_arguments(self, args: dict) -> None:
        """Write `parameters.txt` (or the next free parameters-<n>.txt): one `key: value` line each."""
        lines = [f'{key}: {value}'.replace('\n', '\\n') for key, value in args.items()]
        text = self._redactor.text('\n'.join(lines) + '\n')
        path = next_free_path(os.path.join(self.run_dir, 'parameters.txt'))
        self._write('parameters', path, lambda: atomic_write_bytes(path, text.encode('utf-8')))

    def _write(self, kind: str, path: str, write: Callable[[], None]) -> bool:
        """Run `write` (of `path`) and say whether it worked; a failed write (an OSError, or torch.save's
        RuntimeError around one) is counted under `kind`, and warned about once per kind."""
        try:
            write()
            return True
        except (OSError, RuntimeError) as error:
            if not isinstance(error, OSError) and not isinstance(error.__context__, OSError):
                raise
            failure = self._failures.setdefault(kind, {'count': 0, 'path': path, 'error': str(error)})
            failure['count'] += 1
            if failure['count'] == 1:
                warnings.warn(f'could not write {path} ({error}); training goes on, further failed writes of '
                              f'{kind} are counted and listed at the end of the run', OutputWarning, stacklevel=3)
            return False

    def incomplete_outputs(self) -> list[str]:
        """One line per kind of output with failed writes: how many, and the first file and error."""
        return [f"{kind}: {f['count']} write(s) failed, the first {f['path']} ({f['error']})"
                for kind, f in self._failures.items()]

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        """Append `[<step>] <name>: <value>` to <name>.txt and a record to metrics.jsonl; redraw plots."""
        check_name('metric', name)
        top = name.split('/')[0]
        if name in RESERVED_METRICS or ('/' in name and top in RESERVED_FOLDERS):
            raise ValueError(f"metric name {name!r} would write into the run directory's {top!r} "
                             f'file/folder; choose another name')
        step = self._history.next_step(name) if step is None else step
        path = os.path.join(self.run_dir, *name.split('/')) + '.txt'

        def append() -> None:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            append_whole(path, f'[{step}] {name}: {value}\n'.encode('utf-8'))

        self._write('metric files', path, append)
        self._write('metric files', self._history.path, lambda: self._history.add(name, value, step))
        for group, (prefix, _, _) in PLOT_GROUPS.items():
            if name.startswith(prefix):
                self._stale.add(group)
                if step > self._drawn_step.get(group, -1):
                    self._draw(group)

    def _draw(self, group: str) -> None:
        """Redraw one plot group from the whole history."""
        prefix, title, ylabel = PLOT_GROUPS[group]
        series = self._history.series(prefix)
        figure = curves_figure(series, title, ylabel)
        if self._write('plots', self.plot_path(group), lambda: save_png(figure, self.plot_path(group))):
            self._drawn_step[group] = max(step for points in series.values() for step, _ in points)
            self._stale.discard(group)

    def plot_path(self, group: str) -> str:
        """Where the plot of a group (a PLOT_GROUPS key) is written."""
        if group not in PLOT_GROUPS:
            raise KeyError(f'unknown plot group {group!r}; known: {sorted(PLOT_GROUPS)}')
        return os.path.join(self.run_dir, 'plots', f'{group}.png')

    def log_text(self, name: str, text: str) -> None:
        """Append `text` (and a newline) to texts/<name>.txt."""
        path = os.path.join(self.run_dir, 'texts', *check_name('text', name).split('/')) + '.txt'
        data = (self._redactor.text(text) + ('' if text.endswith('\n') else '\n')).encode('utf-8')

        def append() -> None:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            append_whole(path, data)

        self._write('texts', path, append)

    def figure_path(self, name: str) -> str:
        """Where a figure logged under `name` is written."""
        return os.path.join(self.run_dir, 'figures', *check_name('figure', name).split('/')) + '.png'

    def log_figure(self, name: str, figure_or_png_path: Figure | str) -> None:
        """Write figures/<name>.png from a figure, or copy a PNG file there (atomically either way)."""
        path = self.figure_path(name)

        def write() -> None:
            if isinstance(figure_or_png_path, Figure):
                save_png(figure_or_png_path, path)
            else:
                with open(figure_or_png_path, 'rb') as source:
                    atomic_write(path, lambda stream: shutil.copyfileobj(source, stream))

        self._write('figures', path, write)

    def save_model(self, name: str, state_dict: dict) -> None:
        """Write models/<name>.pt atomically with torch.save."""
        path = os.path.join(self.run_dir, 'models', *check_name('model', name).split('/')) + '.pt'
        self._write('models', path, lambda: atomic_write(path, lambda stream: torch.save(state_dict, stream)))

    def finish(self) -> None:
        """Draw the plots whose last values have not been drawn yet."""
        for group in sorted(self._stale):
            self._draw(group)
