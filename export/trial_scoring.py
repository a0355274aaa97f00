"""Scoring a trial list with an exported model: VoxCeleb-format lists, with or without labels.

Labelled lines are `label enroll test` (read by data.trials.read_trials); unlabelled lists hold `enroll test`.
Scores are the training's final-evaluation scores (trainer.evaluate.score_trials), of kind model.SCORE_KIND, and
their AS-Norm (trainer.evaluate.cohort_scoring) when the export carries a cohort.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch

from data.trials import read_trials
from export.audio_inputs import embed_paths, locate_keys
from export.model import SCORE_KIND, ExportError, SpeakerRuntime
from trainer.evaluate import cohort_scoring, score_trials


@dataclass
class TrialPairs:
    """Enroll/test keys of every trial, and their 0/1 labels when the list has them."""
    enroll: list[str]
    test: list[str]
    labels: np.ndarray | None  # [N] int64, or None for an unlabelled list


def _unlabelled(path: str) -> TrialPairs:
    """Parse `enroll test` lines; a line with another field count stops with the file and line number."""
    enroll, test = [], []
    with open(path, encoding='utf-8') as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise ExportError(f"{path}, line {number}: expected 'enroll_key test_key' like the lines before, "
                                  f"got {line.rstrip()!r}")
            enroll.append(fields[0])
            test.append(fields[1])
    return TrialPairs(enroll, test, None)


def read_trial_pairs(path: str) -> TrialPairs:
    """Read a trial list; its first line decides labelled (3 fields) or unlabelled (2 fields)."""
    if not os.path.isfile(path):
        raise ExportError(f"trial list not found: {path}")
    with open(path, encoding='utf-8') as handle:
        first = next((line.split() for line in handle if line.strip()), [])
    if len(first) == 2:
        return _unlabelled(path)
    if len(first) != 3:
        raise ExportError(f"{path}: expected trial lines 'label enroll_key test_key' or 'enroll_key test_key', "
                          f"got {' '.join(first)!r}")
    try:
        trials = read_trials(path, name=os.path.basename(path))
    except ValueError as error:
        raise ExportError(str(error)) from error
    return TrialPairs(trials.enroll, trials.test, trials.labels)


def trial_scores(model: SpeakerRuntime, pairs: TrialPairs, roots: list[str], device: torch.device
                 ) -> dict[str, np.ndarray]:
    """full_tta score (mean of full and TTA cosine) of every trial [N] under SCORE_KIND, and under
    SCORE_KIND + '_asnorm' its AS-Norm when the model carries a cohort; each utterance is embedded once."""
    keys = list(dict.fromkeys(pairs.enroll + pairs.test))
    full, tta = embed_paths(model, locate_keys(keys, roots), keys, device)  # [U, E], [U, K, E]
    row = {key: i for i, key in enumerate(keys)}
    enroll = np.array([row[k] for k in pairs.enroll], dtype=np.int64)  # [N]
    test = np.array([row[k] for k in pairs.test], dtype=np.int64)  # [N]
    scores = {SCORE_KIND: score_trials(full, tta, enroll, test)[SCORE_KIND]}  # [N]
    if model.score_norm is not None:
        scores.update(cohort_scoring(full, tta, model.score_norm.cohort, kinds=(SCORE_KIND,)).scores(enroll, test))
    return scores


def has_both_classes(labels: np.ndarray | None) -> bool:
    """True when EER / minDCF can be computed: target and non-target trials are both present."""
    return labels is not None and bool(np.any(labels == 1)) and bool(np.any(labels == 0))
