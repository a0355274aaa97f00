"""Adaptive symmetric score normalisation (AS-Norm) of verification scores against a cohort, in NumPy.

Definition (Matejka et al., "Analysis of score normalization in multilingual speaker recognition", Interspeech
2017, adaptive s-norm): each side of a trial is scored against every cohort entry; of those scores, the top N (the
N highest, i.e. the cohort entries closest to that side) give a mean mu and a standard deviation sigma; the trial's
raw score s becomes

    s' = 1/2 * [ (s - mu_e) / sigma_e + (s - mu_t) / sigma_t ]        (e: enrolment side, t: test side).

With N = the cohort's size it is plain symmetric s-norm over the whole cohort. Scores are dot products of
per-utterance vectors with the cohort vectors (the caller chooses the vectors; see trainer/evaluate.py), computed in
float64. sigma is the standard deviation of the N scores themselves (ddof 0); ddof 1 would only multiply every
normalised score by one constant, which changes no EER or minDCF.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

BLOCK_ROWS = 2048  # utterances scored against the cohort at once: bounds the [rows, C] float64 score block
MIN_TOP_N = 2  # a standard deviation needs at least two scores
STD_FLOOR = 1e-12  # keeps a cohort whose top scores are all equal (duplicated entries) from dividing by zero


class CohortStats(NamedTuple):
    """Per utterance, the mean and standard deviation of its top-N cohort scores."""
    mean: np.ndarray  # [U] float64
    std: np.ndarray  # [U] float64

    def take(self, rows: np.ndarray) -> CohortStats:
        """The statistics of utterances `rows` (e.g. the enrolment side of every trial)."""
        return CohortStats(self.mean[rows], self.std[rows])


def effective_top_n(top_n: int, cohort_entries: int) -> int:
    """The N actually used: `top_n`, or every cohort entry when the cohort is smaller; a ValueError below two."""
    used = min(top_n, cohort_entries)
    if used < MIN_TOP_N:
        raise ValueError(f"AS-Norm needs at least {MIN_TOP_N} cohort scores per side, got top_n={top_n} with "
                         f"{cohort_entries} cohort entries")
    return used


def top_cohort_stats(vectors: np.ndarray, cohort: np.ndarray, top_n: int,
                     block_rows: int = BLOCK_ROWS) -> CohortStats:
    """Mean and standard deviation of the top-`top_n` scores (dot products) of each row of `vectors` [U, D] against
    `cohort` [C, D]; every entry is used when C <= top_n. Vectorised over utterances and cohort, in blocks of rows."""
    if vectors.ndim != 2 or cohort.ndim != 2 or vectors.shape[1] != cohort.shape[1]:
        raise ValueError(f"expected vectors [U, D] and cohort [C, D] of the same D, got {vectors.shape} and "
                         f"{cohort.shape}")
    n = effective_top_n(top_n, cohort.shape[0])
    cohort64 = np.asarray(cohort, dtype=np.float64)  # [C, D]
    means, stds = [], []
    for start in range(0, vectors.shape[0], block_rows):
        scores = np.asarray(vectors[start:start + block_rows], dtype=np.float64) @ cohort64.T  # [B, C]
        top = np.partition(scores, scores.shape[1] - n, axis=1)[:, scores.shape[1] - n:]  # [B, n] the n highest
        means.append(top.mean(axis=1))
        stds.append(np.maximum(top.std(axis=1), STD_FLOOR))
    return CohortStats(np.concatenate(means) if means else np.zeros(0), np.concatenate(stds) if stds else np.zeros(0))


def as_norm(scores: np.ndarray, enroll: CohortStats, test: CohortStats) -> np.ndarray:
    """AS-Norm of raw trial scores [N], given each trial's enrolment-side and test-side cohort statistics [N]."""
    s = np.asarray(scores, dtype=np.float64)  # [N]
    return 0.5 * ((s - enroll.mean) / enroll.std + (s - test.mean) / test.std)  # [N]
