"""The figures of a run: metric curves and the DET curve, drawn off-screen (Agg) and saved atomically.

Figures are built with `matplotlib.figure.Figure` directly (no pyplot), so no global figure
state builds up over a long run and no display is ever needed.
"""
from __future__ import annotations

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy.special import ndtri
from sklearn.metrics import det_curve

from utils.atomic import atomic_write

# DET axes ticks (probabilities), as in NIST DET plots
_DET_TICKS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4)
_DET_LIMITS = (0.0005, 0.5)


def new_figure(width: float = 6.4, height: float = 4.8) -> Figure:
    """A figure bound to the Agg canvas (renders without a display)."""
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: Figure, path: str) -> None:
    """Write `figure` to `path` as PNG atomically (see utils.atomic)."""
    atomic_write(path, lambda stream: figure.savefig(stream, format='png', dpi=100))


def curves_figure(series: dict[str, list[tuple[int, float]]], title: str, ylabel: str) -> Figure:
    """One line per metric (x = step, y = value), all on one axes."""
    figure = new_figure()
    axes = figure.add_subplot()
    for name in sorted(series):
        points = sorted(series[name])
        axes.plot([p[0] for p in points], [p[1] for p in points], marker='o', markersize=3, label=name)
    axes.set_title(title)
    axes.set_xlabel('epoch (step)')
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(ylabel)
    axes.grid(True, alpha=0.3)
    axes.legend(loc='best', fontsize='small')
    figure.tight_layout()
    return figure


def det_rates(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False-alarm and miss rates over all thresholds; labels are 1 (target) / 0 (non-target)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 1 or labels.shape != scores.shape:
        raise ValueError(f'DET: scores {scores.shape} and labels {labels.shape} must be 1-D of equal length')
    if not np.all(np.isfinite(scores)):
        raise ValueError('DET: scores contain NaN or infinity')
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError(f'DET: labels must be 0 or 1, got values {np.unique(labels)[:5].tolist()}')
    if not (np.any(labels == 1) and np.any(labels == 0)):
        raise ValueError('DET: labels must contain both target (1) and non-target (0) trials')
    false_alarm, miss, _ = det_curve(labels.astype(int), scores, pos_label=1)
    return false_alarm, miss


def det_figure(scores: np.ndarray, labels: np.ndarray, title: str) -> Figure:
    """DET curve on normal-deviate axes, with its equal-error point marked."""
    false_alarm, miss = det_rates(scores, labels)
    low, high = _DET_LIMITS
    x = ndtri(np.clip(false_alarm, low, high))
    y = ndtri(np.clip(miss, low, high))
    closest = int(np.argmin(np.abs(false_alarm - miss)))
    eer = (false_alarm[closest] + miss[closest]) / 2.0
    figure = new_figure(5.5, 5.5)
    axes = figure.add_subplot()
    axes.plot(x, y, label='DET')
    axes.plot([ndtri(low), ndtri(high)], [ndtri(low), ndtri(high)], linestyle=':', color='grey', linewidth=0.8)
    eer_deviate = ndtri(np.clip(eer, low, high))
    axes.plot([eer_deviate], [eer_deviate], 'o', label=f'EER {100.0 * eer:.2f} %')
    ticks = ndtri(np.array(_DET_TICKS))
    labels_text = [f'{100.0 * t:g}' for t in _DET_TICKS]
    axes.set_xticks(ticks, labels_text)
    axes.set_yticks(ticks, labels_text)
    axes.set_xlim(ndtri(low), ndtri(high))
    axes.set_ylim(ndtri(low), ndtri(high))
    axes.set_xlabel('false-alarm rate (%)')
    axes.set_ylabel('miss rate (%)')
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    axes.legend(loc='upper right')
    figure.tight_layout()
    return figure
