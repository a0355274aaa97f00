"""Speaker back-end: layer aggregation → statistics pooling → Linear → BatchNorm1d → speaker embedding."""
from __future__ import annotations

import torch
from torch import nn

from models.tuner import AttentiveFeatureTuner


class TunerAggregation(nn.Module):
    """OS-KDFT2: the attentive feature tuner over hidden states 1..L (state 0, the CNN projection, is dropped)."""

    def __init__(self, hidden_size: int, num_states: int):
        super().__init__()
        self.tuner = AttentiveFeatureTuner(hidden_size, num_states - 1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [B, L+1, T, H] → [B, H, T]."""
        return self.tuner(hidden[:, 1:])  # [B, H, T]


class WeightedSum(nn.Module):
    """OS-KDFT: Σ_i w_i · h_i over all L+1 states, w ~ U(0, 1) at init and used unnormalised, as released.

    Takes hidden_size only to share the aggregation constructor signature; the weights are per state.
    """

    def __init__(self, hidden_size: int, num_states: int):
        super().__init__()
        self.weights = nn.Parameter(torch.rand(num_states))  # [L+1]

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [B, L+1, T, H] → [B, H, T]."""
        summed = (hidden * self.weights[None, :, None, None]).sum(dim=1)  # [B, T, H]
        return summed.transpose(1, 2)  # [B, H, T]


AGGREGATIONS = {'tuner': TunerAggregation, 'weighted_sum': WeightedSum}


def statistics_pooling(features: torch.Tensor) -> torch.Tensor:
    """features [B, H, T] → mean ‖ unbiased std over frames [B, 2H], as released (`x.std(dim=-1)`).

    No floor is needed anywhere: torch.std's gradient at a zero std (a channel constant over time) is 0, not NaN.
    The one NaN, a single frame (T − 1 = 0 degrees of freedom), is rejected with a clear error instead of floored.
    """
    if features.shape[-1] < 2:
        raise ValueError(f"statistics_pooling: the std over frames needs at least 2 frames, got features of shape "
                         f"{tuple(features.shape)} (an input shorter than about 45 ms at 16 kHz?)")
    mean = features.mean(dim=-1)  # [B, H]
    std = features.std(dim=-1)  # [B, H], unbiased (divides by T - 1)
    return torch.cat([mean, std], dim=-1)  # [B, 2H]


class SpeakerBackend(nn.Module):
    """Hidden states [B, L+1, T, H] → speaker embedding [B, E] through the chosen aggregation."""

    def __init__(self, hidden_size: int, num_states: int, embed_size: int, aggregation: str):
        super().__init__()
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"aggregation: got {aggregation!r}, expected one of {sorted(AGGREGATIONS)} "
                             f"(use_TFT=True selects 'tuner', False 'weighted_sum')")
        if num_states < 2:
            raise ValueError(f"SpeakerBackend: num_states must count state 0 and at least one layer, got {num_states}")
        self.num_states = num_states
        self.aggregation = AGGREGATIONS[aggregation](hidden_size, num_states)
        self.embedding = nn.Linear(2 * hidden_size, embed_size)
        self.norm = nn.BatchNorm1d(embed_size)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [B, L+1, T, H] → embedding [B, E]."""
        if hidden.dim() != 4 or hidden.shape[1] != self.num_states:
            raise ValueError(f"SpeakerBackend: expected hidden states [B, {self.num_states}, T, H], "
                             f"got {tuple(hidden.shape)}")
        features = self.aggregation(hidden)  # [B, H, T]
        return self.norm(self.embedding(statistics_pooling(features)))  # [B, E]
