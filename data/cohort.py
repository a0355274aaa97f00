"""The AS-Norm cohort's utterances: up to a fixed number of training utterances per training speaker, drawn
reproducibly, embedded like the test set (whole utterance + TTA segments) and averaged per speaker by the trainer."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data.eval_sets import EvalSet
from data.utterance_index import UtteranceIndex

COHORT_STREAM = 15  # the RNG stream of the draw: rand_seed and this, apart from every other draw of a run


@dataclass
class CohortSpec:
    """The cohort to embed: its utterances, each one's cohort speaker (0..S-1), and N of the top-N (cohort_size)."""
    eval_set: EvalSet
    speakers: np.ndarray  # [M] int64, cohort speaker index of every utterance of eval_set
    top_n: int


def draw_cohort(utts: UtteranceIndex, per_speaker: int, seed: int) -> UtteranceIndex:
    """Up to `per_speaker` utterances of every speaker of `utts` (0: all), drawn without replacement from
    (seed, COHORT_STREAM), in index order; the same for the same list and seed whatever the processes."""
    rng = np.random.default_rng([seed, COHORT_STREAM])
    order = np.argsort(utts.labels, kind='stable')  # [U] grouped by speaker, index order within
    starts = np.flatnonzero(np.r_[True, np.diff(utts.labels[order]) != 0])  # [S] first row of each group
    chosen = []
    for rows in np.split(order, starts[1:]):
        take = len(rows) if per_speaker == 0 else min(per_speaker, len(rows))
        chosen.append(rng.choice(rows, size=take, replace=False))
    return utts.subset(np.sort(np.concatenate(chosen)))


def cohort_spec(train_utts: UtteranceIndex, per_speaker: int, top_n: int, seed: int, seg_size: int,
                num_seg: int) -> CohortSpec:
    """The cohort of the training speakers (draw_cohort), with every utterance's speaker as an index 0..S-1."""
    if len(train_utts) == 0:
        raise ValueError("the AS-Norm cohort needs training utterances; the training list is empty")
    chosen = draw_cohort(train_utts, per_speaker, seed)
    _, speakers = np.unique(chosen.labels, return_inverse=True)  # [M] 0..S-1
    return CohortSpec(EvalSet(chosen, seg_size, num_seg), speakers.astype(np.int64), top_n)
