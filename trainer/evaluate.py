"""Evaluation: embed every test utterance (full + TTA segments), gather across ranks, score trials, EER/minDCF.

Protocol (SPEC §2): the full-utterance embedding, `num_seg` evenly spaced segments, cosine scores,
TTA score = mean over all segment pairs, final score = mean of full and TTA scores. Optionally each score kind is
also AS-Norm normalised (utils/score_norm.py) against a cohort of training speakers (ScoreCohort).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from data.trials import Trials, trial_index
from data.workers import ignore_stop_signals, stop_signals_blocked
from trainer.distributed import DistEnv, gather_to_main
from utils.hardware import fp32_region
from utils.metrics import verification_metrics
from utils.score_norm import CohortStats, as_norm, effective_top_n, top_cohort_stats

NORMALISED = '_asnorm'  # suffix of a score kind's AS-Norm figures: 'full_tta' → 'full_tta_asnorm'


def _first(batch):
    """DataLoader collate for batch size 1: the item itself, its audio as tensors (which pin_memory can pin)."""
    wav, segments, index = batch[0]
    return torch.from_numpy(wav), torch.from_numpy(segments), index  # [S], [K, seg], int


@torch.no_grad()
def extract_embeddings(embed: Callable[[torch.Tensor], torch.Tensor], eval_set: Dataset, env: DistEnv,
                       num_workers: int = 0, full: bool = True) -> tuple[np.ndarray | None, np.ndarray] | None:
    """Embeddings of every utterance of `eval_set`: full [N, E] (None if not `full`) and TTA [N, K, E].

    Each rank embeds utterances rank, rank + world, ... (no padding duplicates); rank 0 receives them
    all in dataset order, other ranks get None. `num_workers` DataLoader workers read the audio (pinned in memory on
    CUDA). Always fp32, also under an enclosing bf16 autocast: validation, the final evaluation, the AS-Norm cohort
    and the export embed alike, so the export's threshold and cohort come from the numbers it computes.
    """
    indices = list(range(env.rank, len(eval_set), env.world_size))
    loader = DataLoader(Subset(eval_set, indices), batch_size=1, num_workers=num_workers, collate_fn=_first,
                        pin_memory=env.device.type == 'cuda', worker_init_fn=ignore_stop_signals)
    rows, full_out, tta_out = [], [], []
    with stop_signals_blocked():  # workers start here: a group-wide stop signal must not kill one starting
        items = iter(loader)
    with fp32_region(env.device):
        for wav, segments, i in items:
            if full:
                x = wav.to(env.device, non_blocking=True).unsqueeze(0)  # [1, S]
                full_out.append(embed(x).float().cpu().numpy()[0])  # [E]
            tta_out.append(embed(segments.to(env.device, non_blocking=True)).float().cpu().numpy())  # [K, E]
            rows.append(i)
    shards = gather_to_main((rows, full_out, tta_out), env)
    if not env.is_main:
        return None
    order = np.concatenate([np.asarray(r, dtype=np.int64) for r, _, _ in shards])
    if sorted(order.tolist()) != list(range(len(eval_set))):
        raise RuntimeError(f'evaluation covered {len(order)} utterances, expected each of {len(eval_set)} once')
    inverse = np.argsort(order)
    tta = np.stack([e for _, _, t in shards for e in t])[inverse]  # [N, K, E]
    full_emb = np.stack([e for _, f, _ in shards for e in f])[inverse] if full else None  # [N, E]
    return full_emb, tta


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def kind_vectors(full: np.ndarray | None, tta: np.ndarray) -> dict[str, np.ndarray]:
    """Per utterance, the vector whose dot product with another utterance's gives a score kind: 'tta' the mean unit
    segment embedding [N, E] (the mean cosine over all K x K segment pairs equals the dot product of the mean unit
    vectors) and, when full embeddings exist, 'full' the unit full embedding [N, E]."""
    vectors = {'tta': _normalise(tta).mean(axis=1)}  # [N, E]
    if full is not None:
        vectors['full'] = _normalise(full)  # [N, E]
    return vectors


def with_joint(vectors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """kind_vectors plus 'full_tta': 'full' and 'tta' side by side over sqrt(2) [N, 2E], whose dot product is the
    mean of theirs (what the cohort statistics of the full_tta kind are computed from)."""
    return {**vectors, 'full_tta': np.concatenate([vectors['full'], vectors['tta']], axis=1) / np.sqrt(2)}


def _vector_scores(vectors: dict[str, np.ndarray], enroll: np.ndarray, test: np.ndarray) -> dict[str, np.ndarray]:
    """Each kind's trial scores [num_trials] from kind_vectors; 'full_tta' is the mean of 'full' and 'tta'."""
    scores = {kind: np.einsum('ij,ij->i', v[enroll], v[test]) for kind, v in vectors.items()}  # [num_trials]
    if 'full' in scores:
        scores['full_tta'] = (scores['full'] + scores['tta']) / 2
    return scores


def score_trials(full: np.ndarray | None, tta: np.ndarray, enroll: np.ndarray, test: np.ndarray
                 ) -> dict[str, np.ndarray]:
    """Cosine trial scores, vectorised: 'tta' and, when full embeddings exist, 'full' and 'full_tta'."""
    return _vector_scores(kind_vectors(full, tta), enroll, test)


@dataclass(frozen=True)
class ScoreCohort:
    """The AS-Norm cohort: per cohort speaker, the unit mean direction of its utterances' unit full embeddings and of
    their mean unit TTA segment embeddings, and N, the top cohort scores kept per side.

    Each entry is scored as a pseudo-utterance whose full embedding and every TTA segment are those directions, by
    the score kind's own formula: 'full' is the cosine with the speaker's mean embedding (WeSpeaker's cohort),
    'tta' the mean cosine of the segments with it, 'full_tta' their mean. So cohort scores are on the scale of the
    trial scores they normalise (cosines), and a speaker with many utterances counts once.
    """
    full: np.ndarray  # [S, E] float32, unit rows
    tta: np.ndarray  # [S, E] float32, unit rows
    top_n: int  # as asked (cohort_size); effective_top_n caps it at S

    @property
    def speakers(self) -> int:
        """Number of cohort entries S."""
        return self.full.shape[0]

    @property
    def used_top_n(self) -> int:
        """The N of the top-N actually used: top_n, or S when the cohort is smaller."""
        return effective_top_n(self.top_n, self.speakers)

    def vectors(self) -> dict[str, np.ndarray]:
        """kind_vectors of the cohort entries (pseudo-utterances with one TTA segment each), in float64; the stored
        rows are used as they are, not normalised again (so an export's cohort scores equal the run's)."""
        return with_joint({'full': self.full.astype(np.float64), 'tta': self.tta.astype(np.float64)})  # [S, E]


def build_cohort(full: np.ndarray, tta: np.ndarray, speakers: np.ndarray, top_n: int) -> ScoreCohort:
    """The cohort of utterances with embeddings full [M, E], tta [M, K, E] and cohort speaker index [M] (0..S-1,
    every index present): per speaker the unit mean of the unit full embeddings and of the mean unit TTA vectors,
    computed in float64 and kept as float32 (as an export stores it, so the export's AS-Norm equals the run's)."""
    counts = np.bincount(speakers)  # [S]
    if counts.min(initial=1) == 0:
        raise ValueError(f"cohort speaker indices must cover 0..{len(counts) - 1}; some have no utterance")
    vectors = kind_vectors(full.astype(np.float64), tta.astype(np.float64))
    entries = []
    for kind in ('full', 'tta'):
        sums = np.zeros((len(counts), vectors[kind].shape[1]))  # [S, E]
        np.add.at(sums, speakers, vectors[kind])
        entries.append(_normalise(sums / counts[:, None]).astype(np.float32))
    return ScoreCohort(entries[0], entries[1], top_n)


@dataclass(frozen=True)
class CohortScoring:
    """Every utterance's float64 'full' and 'tta' vectors (kind_vectors) and, per normalised kind, its top-N cohort
    statistics: what AS-Norm needs to normalise any trial among these utterances."""
    vectors: dict[str, np.ndarray]  # 'full', 'tta': [U, E] float64
    stats: dict[str, CohortStats]  # kind → [U]

    def scores(self, enroll: np.ndarray, test: np.ndarray) -> dict[str, np.ndarray]:
        """AS-Norm of each kind's trial scores [num_trials], named kind + NORMALISED. The raw scores are those of
        score_trials recomputed in float64 (a cohort whose top scores lie close together magnifies float32 noise)."""
        raw = _vector_scores(self.vectors, enroll, test)  # [num_trials] each
        return {kind + NORMALISED: as_norm(raw[kind], stats.take(enroll), stats.take(test))
                for kind, stats in self.stats.items()}


def cohort_scoring(full: np.ndarray, tta: np.ndarray, cohort: ScoreCohort,
                   kinds: tuple[str, ...] = ('full', 'tta', 'full_tta')) -> CohortScoring:
    """The CohortScoring of utterances with embeddings full [U, E] and tta [U, K, E], for the score kinds `kinds`."""
    vectors = kind_vectors(full.astype(np.float64), tta.astype(np.float64))  # 'full', 'tta': [U, E]
    utterances, entries = with_joint(vectors), cohort.vectors()
    return CohortScoring(vectors, {kind: top_cohort_stats(utterances[kind], entries[kind], cohort.top_n)
                                   for kind in kinds})


def evaluate_trials(full: np.ndarray | None, tta: np.ndarray, keys: list[str], trials: Trials,
                    norm: CohortScoring | None = None
                    ) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """Metrics of every score kind on one trial list, and the scores themselves (for DET plots); with the
    CohortScoring of every utterance, the AS-Norm kinds as well."""
    enroll, test = trial_index(trials, keys)
    scores = score_trials(full, tta, enroll, test)
    if norm is not None:
        scores.update(norm.scores(enroll, test))
    return {kind: verification_metrics(s, trials.labels) for kind, s in scores.items()}, scores
