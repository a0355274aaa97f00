"""One training step: the trainable module of a training phase, the frozen targets it learns from, and the update.

Every method is a sequence of phases (trainer/phases.py); each phase trains one `PhaseModule`. The joint methods
(`os_kdft2`, `os_kdft`) have one phase, `JointKDFT`: KD and FT rows run through the student in one forward, the
batch is [x_kd ; x_ft] and the student knows where the FT rows start. The two-phase baselines' modules are in
trainer/baselines.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from trainer.distributed import DistEnv, all_ranks_agree


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


def kd_targets(teacher: nn.Module, batch: Batch) -> torch.Tensor:
    """The pre-trained teacher's hidden states of the KD audio, [B, Lt+1, T, H] (inference mode inside)."""
    return teacher(batch.x_kd)


TargetsFn = Callable[[nn.Module | None, Batch], object]  # (the phase's frozen teacher, batch) → targets


class PhaseModule(nn.Module):
    """What a training phase trains. `targets(teacher, batch)` computes, without gradient, what the module learns
    from (the phase's frozen `teacher` is passed in, never held: it stays out of checkpoints and DDP);
    `start_epoch` lets a module change with the epoch (a frozen encoder in the first epochs)."""

    targets = staticmethod(kd_targets)

    def start_epoch(self, epoch: int) -> None:
        """Called before every training epoch (1-based); nothing changes by default."""


class SpeakerPhaseModule(PhaseModule):
    """A phase module holding `student` and `backend`: a speaker model that validation can embed with and that
    checkpoints describe for export."""

    student: nn.Module
    backend: nn.Module

    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        """Speaker embedding of raw 16 kHz audio: student → back-end, `[B, S]` → `[B, E]`."""
        return self.backend(self.student(wav))


class JointKDFT(SpeakerPhaseModule):
    """Student + speaker back-end + KD prediction heads + speaker classifier, trained jointly."""

    def __init__(self, student: nn.Module, backend: nn.Module, kd_loss: nn.Module, ft_loss: nn.Module,
                 w_kd: float, w_ft: float):
        super().__init__()
        self.student, self.backend, self.kd_loss, self.ft_loss = student, backend, kd_loss, ft_loss
        self.w_kd, self.w_ft = w_kd, w_ft

    def forward(self, x_kd: torch.Tensor, x_ft: torch.Tensor, y: torch.Tensor, targets: torch.Tensor
                ) -> dict[str, torch.Tensor]:
        """Losses of one joint step; `targets` are the teacher's hidden states of `x_kd`."""
        b = x_kd.shape[0]
        hidden = self.student(torch.cat([x_kd, x_ft]), num_kd=b)  # [2B, Ls+1, T, H]
        kd = self.kd_loss(hidden[:b, -1], targets)  # last student state → teacher layers
        ft = self.ft_loss(self.backend(hidden[b:]), y)  # [B, E] → class-weighted CE
        return {'loss': self.w_kd * kd + self.w_ft * ft, 'loss/kd': kd.detach(), 'loss/ft': ft.detach()}


def train_step(model: nn.Module, teacher: nn.Module | None, batch: Batch, optimizer: torch.optim.Optimizer,
               env: DistEnv, amp: bool, targets_of: TargetsFn = kd_targets) -> dict[str, float] | None:
    """Forward, backward and update; returns the losses, or None when a non-finite loss on any rank
    made every rank skip the update together. `targets_of(teacher, batch)` is the phase module's `targets`
    (the pre-trained teacher's hidden states of the KD audio unless a phase says otherwise)."""
    autocast = torch.autocast(env.device.type, dtype=torch.bfloat16, enabled=amp and env.device.type == 'cuda')
    with autocast:
        targets = targets_of(teacher, batch)  # no graph: frozen models only
        losses = model(batch.x_kd, batch.x_ft, batch.y, targets)
    optimizer.zero_grad(set_to_none=True)
    losses['loss'].backward()  # always, so DDP's gradient reduction stays in step on every rank
    if not all_ranks_agree(bool(torch.isfinite(losses['loss']).item()), env):
        optimizer.zero_grad(set_to_none=True)
        return None
    optimizer.step()
    return {name: float(value.detach()) for name, value in losses.items()}
