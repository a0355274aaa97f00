"""One training step per method: the trainable module that computes a method's losses, and the update.

The joint methods (`os_kdft2`, `os_kdft`) run KD and FT rows through the student in one forward:
the batch is [x_kd ; x_ft] and the student knows where the FT rows start.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from trainer.distributed import DistEnv, all_ranks_agree


class JointKDFT(nn.Module):
    """Student + speaker back-end + KD prediction heads + speaker classifier, trained jointly."""

    def __init__(self, student: nn.Module, backend: nn.Module, kd_loss: nn.Module, ft_loss: nn.Module,
                 w_kd: float, w_ft: float):
        super().__init__()
        self.student, self.backend, self.kd_loss, self.ft_loss = student, backend, kd_loss, ft_loss
        self.w_kd, self.w_ft = w_kd, w_ft

    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        """Speaker embedding of raw 16 kHz audio: student → back-end, `[B, S]` → `[B, E]`."""
        return self.backend(self.student(wav))

    def forward(self, x_kd: torch.Tensor, x_ft: torch.Tensor, y: torch.Tensor, targets: torch.Tensor
                ) -> dict[str, torch.Tensor]:
        """Losses of one joint step; `targets` are the teacher's hidden states of `x_kd`."""
        b = x_kd.shape[0]
        hidden = self.student(torch.cat([x_kd, x_ft]), num_kd=b)  # [2B, Ls+1, T, H]
        kd = self.kd_loss(hidden[:b, -1], targets)  # last student state → teacher layers
        ft = self.ft_loss(self.backend(hidden[b:]), y)  # [B, E] → class-weighted CE
        return {'loss': self.w_kd * kd + self.w_ft * ft, 'loss/kd': kd.detach(), 'loss/ft': ft.detach()}


METHOD_MODULES = {'os_kdft2': JointKDFT, 'os_kdft': JointKDFT}


@dataclass
class Batch:
    """One training batch on its device: KD audio, FT audio and speaker labels."""
    x_kd: torch.Tensor  # [B, S]
    x_ft: torch.Tensor  # [B, S]
    y: torch.Tensor  # [B]

    @classmethod
    def from_loader(cls, items, device: torch.device) -> 'Batch':
        x_kd, x_ft, y = items[:3]
        return cls(x_kd.to(device, non_blocking=True), x_ft.to(device, non_blocking=True),
                   y.to(device, non_blocking=True))


def train_step(model: nn.Module, teacher: nn.Module, batch: Batch, optimizer: torch.optim.Optimizer,
               env: DistEnv, amp: bool) -> dict[str, float] | None:
    """Forward, backward and update; returns the losses, or None when a non-finite loss on any rank
    made every rank skip the update together."""
    autocast = torch.autocast(env.device.type, dtype=torch.bfloat16, enabled=amp and env.device.type == 'cuda')
    with autocast:
        targets = teacher(batch.x_kd)  # [B, Lt+1, T, H], inference mode inside
        losses = model(batch.x_kd, batch.x_ft, batch.y, targets)
    optimizer.zero_grad(set_to_none=True)
    losses['loss'].backward()  # always, so DDP's gradient reduction stays in step on every rank
    if not all_ranks_agree(bool(torch.isfinite(losses['loss']).item()), env):
        optimizer.zero_grad(set_to_none=True)
        return None
    optimizer.step()
    return {name: float(value.detach()) for name, value in losses.items()}
