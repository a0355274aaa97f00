"""Speaker-verification metrics: EER and minDCF, pure NumPy (plus scikit-learn's ROC sweep).

Both follow the NIST speaker-recognition evaluation definitions: for a threshold t,
P_miss(t) = share of target trials scored below t, P_fa(t) = share of non-target trials
scored at or above t (NIST SRE 2008 evaluation plan, section 3.1).
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_curve


def _error_rates(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Miss and false-alarm rates at every distinct threshold, from accept-nothing to accept-all."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.shape != labels.shape or scores.ndim != 1:
        raise ValueError(f'scores {scores.shape} and labels {labels.shape} must be 1-D of equal length')
    if not (np.any(labels == 1) and np.any(labels == 0)):
        raise ValueError('labels must contain both target (1) and non-target (0) trials')
    fpr, tpr, thresholds = roc_curve(labels, scores, pos_label=1, drop_intermediate=False)
    return 1.0 - tpr, fpr, thresholds  # P_miss, P_fa, thresholds (descending)


def _eer(p_miss: np.ndarray, p_fa: np.ndarray, thresholds: np.ndarray) -> tuple[float, float]:
    i = int(np.argmin(np.abs(p_miss - p_fa)))
    return float((p_miss[i] + p_fa[i]) / 2 * 100.0), float(thresholds[i])


def _min_dcf(p_miss: np.ndarray, p_fa: np.ndarray, p_target: float, c_miss: float, c_fa: float) -> float:
    dcf = c_miss * p_miss * p_target + c_fa * p_fa * (1.0 - p_target)
    return float(dcf.min() / min(c_miss * p_target, c_fa * (1.0 - p_target)))


def compute_eer(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Equal error rate in percent and its threshold.

    EER is the operating point where P_miss = P_fa; on a finite list it is taken at the
    threshold minimising |P_miss - P_fa|, reported as the mean of the two rates there.
    """
    return _eer(*_error_rates(scores, labels))


def compute_min_dcf(scores: np.ndarray, labels: np.ndarray, p_target: float,
                    c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """Normalised minimum detection cost (NIST SRE):

    DCF(t) = C_miss * P_miss(t) * p_target + C_fa * P_fa(t) * (1 - p_target),
    divided by min(C_miss * p_target, C_fa * (1 - p_target)), minimised over t.
    """
    p_miss, p_fa, _ = _error_rates(scores, labels)
    return _min_dcf(p_miss, p_fa, p_target, c_miss, c_fa)


def verification_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """EER (%), its threshold, and minDCF at p_target 0.01 and 0.05 (C_miss = C_fa = 1), from one ROC sweep."""
    p_miss, p_fa, thresholds = _error_rates(scores, labels)
    eer, threshold = _eer(p_miss, p_fa, thresholds)
    return {'eer': eer, 'threshold': threshold,
            'min_dcf_0.01': _min_dcf(p_miss, p_fa, 0.01, 1.0, 1.0),
            'min_dcf_0.05': _min_dcf(p_miss, p_fa, 0.05, 1.0, 1.0)}
