"""OS-KDFT2 attentive feature tuner: per-layer tuners weighted over layers, channels and frames."""
from __future__ import annotations

import torch
from torch import nn

from models.adapter import BottleneckAdapter


def _attention_logits(hidden_size: int) -> nn.Sequential:
    """g = Conv1d(H→H/8, k=1) → ReLU → BatchNorm1d → Tanh → Conv1d(H/8→H, k=1), on [B, H, T]."""
    reduced = hidden_size // 8
    if reduced < 1:
        raise ValueError(f"AttentiveFeatureTuner: hidden_size {hidden_size} too small (needs hidden_size // 8 >= 1)")
    return nn.Sequential(nn.Conv1d(hidden_size, reduced, kernel_size=1), nn.ReLU(), nn.BatchNorm1d(reduced),
                         nn.Tanh(), nn.Conv1d(reduced, hidden_size, kernel_size=1))


class AttentiveFeatureTuner(nn.Module):
    """Hidden states 1..L [B, L, T, H] → tuned features [B, H, T].

    u_l = W_up · N(GELU(W_down · x_l)) (bottleneck H/12, no residual); g_l = attention logits of u_l;
    x = Σ_l softmax_l(g)_l ⊙ u_l, gated by σ(Σ_l g_l) over channels and frames.
    """

    def __init__(self, hidden_size: int, num_layers: int):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"AttentiveFeatureTuner: expected at least one layer, got num_layers={num_layers}")
        self.num_layers = num_layers
        self.tuners = nn.ModuleList(BottleneckAdapter(hidden_size, hidden_size // 12, 'gelu')
                                    for _ in range(num_layers))
        self.attention = nn.ModuleList(_attention_logits(hidden_size) for _ in range(num_layers))

    def branches(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden [B, L, T, H] → (tuned u [B, L, H, T], attention logits g [B, L, H, T])."""
        if hidden.dim() != 4 or hidden.shape[1] != self.num_layers:
            raise ValueError(f"AttentiveFeatureTuner: expected hidden states [B, {self.num_layers}, T, H] "
                             f"(layers 1..L, state 0 dropped), got {tuple(hidden.shape)}")
        tuned = [tuner(hidden[:, l]).transpose(1, 2) for l, tuner in enumerate(self.tuners)]  # L × [B, H, T]
        logits = [attend(u) for u, attend in zip(tuned, self.attention)]  # L × [B, H, T]
        return torch.stack(tuned, dim=1), torch.stack(logits, dim=1)  # [B, L, H, T] each

    def forward(self, hidden: torch.Tensor, return_weights: bool = False):
        """hidden [B, L, T, H] → x [B, H, T]; with return_weights also the layer weights [B, L, H, T]."""
        tuned, logits = self.branches(hidden)  # [B, L, H, T]
        weights = torch.softmax(logits, dim=1)  # [B, L, H, T], sums to 1 over layers
        features = (weights * tuned).sum(dim=1) * torch.sigmoid(logits.sum(dim=1))  # [B, H, T]
        return (features, weights) if return_weights else features
