"""Evaluation: embed every test utterance (full + TTA segments), gather across ranks, score trials, EER/minDCF.

Protocol (SPEC §2): the full-utterance embedding, `num_seg` evenly spaced segments, cosine scores,
TTA score = mean over all segment pairs, final score = mean of full and TTA scores.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from data.trials import Trials, trial_index
from data.workers import ignore_stop_signals
from trainer.distributed import DistEnv, gather_objects
from utils.metrics import verification_metrics


def _first(batch):
    """DataLoader collate for batch size 1: the item itself."""
    return batch[0]


@torch.no_grad()
def extract_embeddings(embed: Callable[[torch.Tensor], torch.Tensor], eval_set: Dataset, env: DistEnv,
                       num_workers: int = 0, amp: bool = False, full: bool = True
                       ) -> tuple[np.ndarray | None, np.ndarray] | None:
    """Embeddings of every utterance of `eval_set`: full [N, E] (None if not `full`) and TTA [N, K, E].

    Each rank embeds utterances rank, rank + world, ... (no padding duplicates); rank 0 receives them
    all in dataset order, other ranks get None.
    """
    indices = list(range(env.rank, len(eval_set), env.world_size))
    loader = DataLoader(Subset(eval_set, indices), batch_size=1, num_workers=num_workers, collate_fn=_first,
                        worker_init_fn=ignore_stop_signals)
    rows, full_out, tta_out = [], [], []
    autocast = torch.autocast(env.device.type, dtype=torch.bfloat16, enabled=amp and env.device.type == 'cuda')
    with autocast:
        for wav, segments, i in loader:
            if full:
                x = torch.as_tensor(wav, device=env.device).unsqueeze(0)  # [1, S]
                full_out.append(embed(x).float().cpu().numpy()[0])  # [E]
            tta_out.append(embed(torch.as_tensor(segments, device=env.device)).float().cpu().numpy())  # [K, E]
            rows.append(i)
    shards = gather_objects((rows, full_out, tta_out), env)
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


def score_trials(full: np.ndarray | None, tta: np.ndarray, enroll: np.ndarray, test: np.ndarray
                 ) -> dict[str, np.ndarray]:
    """Cosine trial scores, vectorised: 'tta' and, when full embeddings exist, 'full' and 'full_tta'.

    The mean cosine over all K x K segment pairs equals the dot product of the mean unit vectors.
    """
    mean_unit = _normalise(tta).mean(axis=1)  # [N, E]
    scores = {'tta': np.einsum('ij,ij->i', mean_unit[enroll], mean_unit[test])}  # [num_trials]
    if full is not None:
        unit = _normalise(full)  # [N, E]
        scores['full'] = np.einsum('ij,ij->i', unit[enroll], unit[test])
        scores['full_tta'] = (scores['full'] + scores['tta']) / 2
    return scores


def evaluate_trials(full: np.ndarray | None, tta: np.ndarray, keys: list[str], trials: Trials
                    ) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """Metrics of every score kind on one trial list, and the scores themselves (for DET plots)."""
    enroll, test = trial_index(trials, keys)
    scores = score_trials(full, tta, enroll, test)
    return {kind: verification_metrics(s, trials.labels) for kind, s in scores.items()}, scores
