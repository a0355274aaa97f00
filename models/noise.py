"""Training noise of the OS-KDFT adapters and the OS-KDFT2 tuners."""
from __future__ import annotations

import torch
from torch import nn


class TrainingNoise(nn.Module):
    """N(z) = z + ε, ε ~ N(0, σ²), σ = U(low, high) · mean|z| drawn per forward; identity in eval mode.

    σ is a regulariser's scale, not a function to learn through, so it is computed from z detached.
    """

    def __init__(self, low: float = 0.1, high: float = 0.5):
        super().__init__()
        if not 0.0 <= low <= high:
            raise ValueError(f"TrainingNoise: expected 0 <= low <= high, got low={low}, high={high}")
        self.low = low
        self.high = high

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Add the noise in training mode; return z itself in eval mode."""
        if not self.training:
            return z
        factor = torch.empty((), device=z.device).uniform_(self.low, self.high)
        sigma = factor * z.detach().abs().mean()
        return z + torch.randn_like(z) * sigma

    def extra_repr(self) -> str:
        return f'sigma=U({self.low}, {self.high})·mean|z|'
