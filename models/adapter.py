"""Bottleneck adapter with training noise: W_up · N(act(W_down · x)), used by OS-KDFT layers and OS-KDFT2 tuners."""
from __future__ import annotations

import torch
from torch import nn

from models.noise import TrainingNoise

ACTIVATIONS = {'relu': nn.ReLU, 'gelu': nn.GELU}


class BottleneckAdapter(nn.Module):
    """x [.., H] → Linear(H→b) → activation → TrainingNoise → Linear(b→H).

    No residual: the OS-KDFT layer adds it to the feed-forward output, the tuner uses it as is. `init_std` None keeps
    PyTorch's default Linear init (the tuner, built outside transformers in the release); a float gives weights
    N(0, init_std) and zero biases, as transformers' post_init leaves the released OS-KDFT layer adapters.
    """

    def __init__(self, hidden_size: int, bottleneck: int, activation: str, init_std: float | None = None):
        super().__init__()
        if bottleneck < 1:
            raise ValueError(f"adapter bottleneck: expected a positive size, got {bottleneck} "
                             f"(adapter_size, or hidden_size // 12 for the tuner)")
        if activation not in ACTIVATIONS:
            raise ValueError(f"adapter activation: got {activation!r}, expected one of {sorted(ACTIVATIONS)}")
        self.down = nn.Linear(hidden_size, bottleneck)
        self.activation = ACTIVATIONS[activation]()
        self.noise = TrainingNoise()
        self.up = nn.Linear(bottleneck, hidden_size)
        if init_std is not None:
            for linear in (self.down, self.up):
                nn.init.normal_(linear.weight, mean=0.0, std=init_std)
                nn.init.zeros_(linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return W_up · N(act(W_down · x)) with the shape of x."""
        return self.up(self.noise(self.activation(self.down(x))))  # [.., H]
