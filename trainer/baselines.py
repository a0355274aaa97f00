"""The trainable modules of the two-phase baselines (SPEC §3), one per phase, and postcomp's frozen fine-tuned teacher.

- precomp ("compress, then fine-tune"): `KDOnly` (student ← pre-trained teacher), then `SpeakerFineTune`
  (student + back-end + classifier, the student frozen in the first `freeze_epochs` epochs).
- postcomp ("fine-tune, then compress"): `SpeakerFineTune` of the full-depth teacher copy with its own back-end
  (the copy frozen in the first `freeze_epochs` epochs), then `EmbeddingKD` (student ← the fine-tuned copy:
  hidden-state KD plus embedding MSE), the copy wrapped as a `FineTunedTeacher`.
"""
from __future__ import annotations

import torch
from torch import nn

from models.backend import SpeakerBackend
from models.losses import embedding_mse
from models.student import Student
from trainer.steps import Batch, PhaseModule, SpeakerPhaseModule


def no_targets(teacher: nn.Module | None, batch: Batch) -> None:
    """A phase that learns from speaker labels only: no teacher forward at all."""
    return None


class KDOnly(PhaseModule):
    """precomp phase 1: the student's last state predicts the pre-trained teacher's layers (DistilHuBERT loss);
    no speaker loss, so the back-end and the classifier are not part of this phase."""

    def __init__(self, student: Student, kd_loss: nn.Module):
        super().__init__()
        self.student, self.kd_loss = student, kd_loss

    def forward(self, x_kd: torch.Tensor, x_ft: torch.Tensor, y: torch.Tensor, targets: torch.Tensor
                ) -> dict[str, torch.Tensor]:
        """KD loss of the KD audio; `targets` are the teacher's hidden states of `x_kd`, [B, Lt+1, T, H]."""
        hidden = self.student(x_kd, num_kd=x_kd.shape[0])  # [B, Ls+1, T, H]
        kd = self.kd_loss(hidden[:, -1], targets)
        return {'loss': kd, 'loss/kd': kd.detach()}


class SpeakerFineTune(SpeakerPhaseModule):
    """Speaker fine-tuning of an encoder + back-end + classifier on the FT audio, the encoder frozen (run without
    gradient, so Adam leaves it exactly as it was) during the first `frozen_epochs` epochs.

    precomp phase 2 fine-tunes the distilled student; postcomp phase 1 fine-tunes the full-depth teacher copy,
    held in the `student` slot (it is a Student with every teacher layer), so that phase's checkpoints are speaker
    models like any other (validated, exportable). A frozen encoder keeps its training-mode behaviour (dropout,
    LayerDrop, time masking) as the released baselines did: only its weights are fixed.
    """

    targets = staticmethod(no_targets)

    def __init__(self, student: Student, backend: SpeakerBackend, ft_loss: nn.Module, frozen_epochs: int):
        super().__init__()
        self.student, self.backend, self.ft_loss = student, backend, ft_loss
        self.frozen_epochs = frozen_epochs
        self.frozen = False  # set by start_epoch before every epoch

    def start_epoch(self, epoch: int) -> None:
        """Freeze the encoder for epochs 1..frozen_epochs, train it afterwards."""
        self.frozen = epoch <= self.frozen_epochs

    def forward(self, x_kd: torch.Tensor, x_ft: torch.Tensor, y: torch.Tensor, targets: None
                ) -> dict[str, torch.Tensor]:
        """Speaker loss of the FT audio and its labels (the KD audio is not used)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            hidden = self.student(x_ft)  # [B, L+1, T, H]
        ft = self.ft_loss(self.backend(hidden), y)  # [B, E] → class-weighted CE
        return {'loss': ft, 'loss/ft': ft.detach()}


class FineTunedTeacher(nn.Module):
    """postcomp phase 2's frozen teacher: the fine-tuned full-depth copy and its back-end, always in eval mode,
    no gradient. forward(x_kd, x_ft) → (hidden states of x_kd [B, Lt+1, T, H], speaker embeddings of x_ft [B, E])."""

    def __init__(self, encoder: Student, backend: SpeakerBackend):
        super().__init__()
        self.encoder, self.backend = encoder, backend
        self.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> FineTunedTeacher:
        """Stay in eval mode whatever a caller asks: the fine-tuned teacher is not trained any more."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, x_kd: torch.Tensor, x_ft: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b = x_kd.shape[0]
        states = self.encoder(torch.cat([x_kd, x_ft]))  # [2B, Lt+1, T, H]; eval mode: rows are independent
        return states[:b], self.backend(states[b:])  # [B, Lt+1, T, H], [B, E]


def finetuned_targets(teacher: FineTunedTeacher, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The fine-tuned teacher's hidden states of the KD audio and speaker embeddings of the FT audio."""
    return teacher(batch.x_kd, batch.x_ft)


class EmbeddingKD(SpeakerPhaseModule):
    """postcomp phase 2: hidden-state KD against the fine-tuned teacher on the KD audio, plus `w_embed_mse` × MSE
    between the student's speaker embeddings (student → back-end) and the fine-tuned teacher's on the FT audio
    (VoxCeleb1 dev crops, the data the teacher was fine-tuned on). The student's back-end learns from that MSE
    only: SPEC's phase 2 is KD + embedding MSE, so the speaker classifier is not used."""

    targets = staticmethod(finetuned_targets)

    def __init__(self, student: Student, backend: SpeakerBackend, kd_loss: nn.Module, w_kd: float,
                 w_embed_mse: float):
        super().__init__()
        self.student, self.backend, self.kd_loss = student, backend, kd_loss
        self.w_kd, self.w_embed_mse = w_kd, w_embed_mse

    def forward(self, x_kd: torch.Tensor, x_ft: torch.Tensor, y: torch.Tensor,
                targets: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        """KD loss on the KD rows, embedding MSE on the FT rows, one student forward over both."""
        teacher_hidden, teacher_embedding = targets  # [B, Lt+1, T, H], [B, E]
        b = x_kd.shape[0]
        hidden = self.student(torch.cat([x_kd, x_ft]), num_kd=b)  # [2B, Ls+1, T, H]
        kd = self.kd_loss(hidden[:b, -1], teacher_hidden)
        mse = embedding_mse(self.backend(hidden[b:]), teacher_embedding)  # [B, E] vs [B, E]
        return {'loss': self.w_kd * kd + self.w_embed_mse * mse, 'loss/kd': kd.detach(), 'loss/mse': mse.detach()}
