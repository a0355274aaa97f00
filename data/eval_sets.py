"""Evaluation set: each test utterance whole (full-utterance embedding) and as evenly spaced TTA segments."""
from __future__ import annotations

from typing import Sequence

import numpy as np
from torch.utils.data import Dataset

from data.audio import read_audio, segments_of
from data.utterance_index import Utterance


class EvalSet(Dataset):
    """Item i = (whole utterance [n] float32, TTA segments [num_seg, seg_size], i); lengths differ per item."""

    def __init__(self, utts: Sequence[Utterance], seg_size: int, num_seg: int) -> None:
        if not utts:
            raise ValueError("the evaluation list is empty (check path_test)")
        if seg_size <= 0 or num_seg <= 0:
            raise ValueError(f"seg_size and num_seg must be positive, got {seg_size} and {num_seg}")
        self.utts = utts
        self.seg_size = seg_size
        self.num_seg = num_seg

    @property
    def keys(self) -> list[str]:
        """Utterance keys in item order (the rows of the embedding matrix)."""
        return [u.key for u in self.utts]

    def __len__(self) -> int:
        return len(self.utts)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, int]:
        wav = read_audio(self.utts[i].path)  # [n]
        return wav, segments_of(wav, self.seg_size, self.num_seg), i  # [n], [num_seg, seg_size]
