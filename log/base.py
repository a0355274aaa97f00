"""The logger contract every backend implements, and the checks applied to what is logged.

Names become file paths (local) and attribute paths (trackers), so they are checked here once:
segments of letters, digits and `_ . - + = @`, joined by '/', never '.' or '..'
(e.g. 'eer/val', 'eer/final_O/full+tta').
"""
from __future__ import annotations

import abc
import numbers
import os
import re

from matplotlib.figure import Figure

_SEGMENT = r'[A-Za-z0-9_.+=@\-]+'
_NAME_PATTERN = re.compile(f'{_SEGMENT}(/{_SEGMENT})*')
PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


class Logger(abc.ABC):
    """One experiment-logging backend: local files, wandb or neptune.

    `optional` backends (online trackers) may be dropped by the facade when they fail;
    a failure of a non-optional backend (the local files) stops the run, except a failed file write, which the
    local backend counts (training goes on) and lists in `incomplete_outputs`.
    """

    name: str = ''
    optional: bool = True

    @abc.abstractmethod
    def log_arguments(self, args: dict) -> None:
        """Record the run's (already masked) arguments."""

    @abc.abstractmethod
    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        """Record one value of a scalar metric, at `step` when given."""

    @abc.abstractmethod
    def log_text(self, name: str, text: str) -> None:
        """Append a piece of text to the text called `name`."""

    @abc.abstractmethod
    def log_figure(self, name: str, figure_or_png_path: Figure | str) -> None:
        """Record a matplotlib figure, or a PNG file given by its path."""

    @abc.abstractmethod
    def save_model(self, name: str, state_dict: dict) -> None:
        """Store a model's state dict under `name`."""

    @abc.abstractmethod
    def finish(self) -> None:
        """Flush and close the backend; no call may follow."""

    def incomplete_outputs(self) -> list[str]:
        """One line per output of this backend that missed some writes (none by default)."""
        return []


def check_name(kind: str, name: str) -> str:
    """Return `name` if it is a valid metric/text/figure/model name, else raise ValueError naming it."""
    if not isinstance(name, str):
        raise TypeError(f'{kind} name must be a str, got {type(name).__name__}: {name!r}')
    if not _NAME_PATTERN.fullmatch(name) or any(part in ('.', '..') for part in name.split('/')):
        raise ValueError(f"{kind} name {name!r} is invalid: use segments of letters, digits and _ . - + = @ "
                         f"joined by '/' (e.g. 'eer/val'), without '.' or '..' segments")
    return name


def check_value(name: str, value: float) -> float:
    """Return `value` as a float if it is a real number (bool excluded), else raise TypeError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        hint = '; call .item() on a tensor first' if hasattr(value, 'item') else ''
        raise TypeError(f'metric {name!r}: value must be a real number, got {type(value).__name__}{hint}')
    return float(value)


# decimals a metric is recorded with, by the start of a part of its name: EER in % and minDCF mean nothing beyond 4
# decimals (34.599999999999994 is 34.6); every other metric (losses, learning rate, counts) keeps SIGNIFICANT digits
METRIC_DECIMALS = {'eer': 4, 'min_dcf': 4}
SIGNIFICANT = 6


def rounded(name: str, value: float) -> float:
    """`value` of metric `name` rounded to what it means (METRIC_DECIMALS, else SIGNIFICANT digits)."""
    for part in name.split('/'):
        for start, decimals in METRIC_DECIMALS.items():
            if part.startswith(start):
                return round(value, decimals)
    return float(f'{value:.{SIGNIFICANT}g}')


def check_step(name: str, step: int | None) -> int | None:
    """Return `step` if it is None or a non-negative int, else raise ValueError/TypeError."""
    if step is None:
        return None
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise TypeError(f'metric {name!r}: step must be an int or None, got {type(step).__name__}')
    if step < 0:
        raise ValueError(f'metric {name!r}: step must be >= 0, got {step}')
    return int(step)


def check_figure(name: str, figure_or_png_path: Figure | str) -> Figure | str:
    """Return the figure, or the path of an existing PNG file; raise a clear error otherwise."""
    if isinstance(figure_or_png_path, Figure):
        return figure_or_png_path
    if not isinstance(figure_or_png_path, (str, os.PathLike)):
        raise TypeError(f'figure {name!r}: expected a matplotlib Figure or a PNG path, '
                        f'got {type(figure_or_png_path).__name__}')
    path = os.fspath(figure_or_png_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'figure {name!r}: no file at {path!r}')
    with open(path, 'rb') as handle:
        if handle.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
            raise ValueError(f'figure {name!r}: {path!r} is not a PNG file')
    return path
