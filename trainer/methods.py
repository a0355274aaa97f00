"""The method table: every method's whole recipe in one entry, and the phase modules its phases train.

The path of one training batch (os_kdft2), file by file:
  main.py: main → prepare (arguments checked, data/bundle.py: build_data, run directory) → launch
           (trainer/distributed.py) → run → train_and_report: logger, then
  trainer/run.py: run_phases → build_parts (models/__init__.py: build_models) and, per phase of METHODS[method],
                  build_trainer → Trainer.fit
  trainer/loop.py: Trainer.fit → train_epoch: the DataLoader yields a data.curriculum.Batch
                   (x_kd [B, S], x_ft [B, S], y [B]) → train_step:
                   targets = phase.targets(parts, batch)   the frozen teacher's hidden states [B, Lt+1, T, H]
                   losses = module(batch, targets)         JointKDFT.forward below
                   losses['loss'].backward(); optimizer.step()
  trainer/methods.py: JointKDFT.forward: student([x_kd ; x_ft], num_kd=B) → hidden [2B, Ls+1, T, H];
                   kd_loss(hidden[:B, -1], targets) (models/losses.py), ft_loss(backend(hidden[B:]), y)
                   (models/backend.py, models/losses.py).

A method is one entry of METHODS: what it changes in the models (OS-KDFT adapters, a fine-tunable teacher copy),
and its phases. A phase names what it trains (a PhaseModule built from the shared model parts), how its targets are
computed and from which frozen model, its epoch-count key and whether it validates. The argument values a method
sets (and its budget in the built-in demo) are its entry of arguments.py: METHOD_ARGS, under the same name. Adding a
method means one entry here plus its phase modules, and one there.
`phases_of(args)` gives the phases a run trains: its method's, then large-margin fine-tuning (LMFT) when
lmft_epochs > 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import torch
from torch import nn

from data.curriculum import Batch
from models import Models
from models.losses import embedding_mse, large_margin_copy


class PhaseModule(nn.Module):
    """What a training phase trains: forward(batch, targets) → losses ('loss' is optimised, 'loss/<part>' logged).

    `start_epoch` lets a module change with the epoch (a frozen encoder in the first epochs); it returns True when the
    optimiser must start afresh from that epoch on (the released baselines' new Adam when the encoder unfreezes).
    """

    def start_epoch(self, epoch: int) -> bool:
        """Called before every training epoch (1-based); nothing changes by default."""
        return False


class SpeakerPhaseModule(PhaseModule):
    """A phase module holding `student` and `backend`: a speaker model that validation embeds with and that
    checkpoints describe for export."""

    student: nn.Module
    backend: nn.Module

    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        """Speaker embedding of raw 16 kHz audio: student → back-end, `[B, S]` → `[B, E]`."""
        return self.backend(self.student(wav))


class JointKDFT(SpeakerPhaseModule):
    """os_kdft2 / os_kdft: student + speaker back-end + KD prediction heads + speaker classifier, trained jointly; KD
    and FT rows run through the student in one forward, which knows where the FT rows start (the adapters')."""

    def __init__(self, student: nn.Module, backend: nn.Module, kd_loss: nn.Module, ft_loss: nn.Module,
                 w_kd: float, w_ft: float):
        super().__init__()
        self.student, self.backend, self.kd_loss, self.ft_loss = student, backend, kd_loss, ft_loss
        self.w_kd, self.w_ft = w_kd, w_ft

    def forward(self, batch: Batch, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Losses of one joint step; `targets` are the teacher's hidden states of x_kd, [B, Lt+1, T, H]."""
        b = batch.x_kd.shape[0]
        hidden = self.student(torch.cat([batch.x_kd, batch.x_ft]), num_kd=b)  # [2B, Ls+1, T, H]
        kd = self.kd_loss(hidden[:b, -1], targets)  # last student state → teacher layers
        ft = self.ft_loss(self.backend(hidden[b:]), batch.y)  # [B, E] → class-weighted CE
        return {'loss': self.w_kd * kd + self.w_ft * ft, 'loss/kd': kd.detach(), 'loss/ft': ft.detach()}


class KDOnly(PhaseModule):
    """precomp phase 1: the student's last state predicts the pre-trained teacher's layers (DistilHuBERT loss);
    no speaker loss, so the back-end and the classifier are not part of this phase."""

    def __init__(self, student: nn.Module, kd_loss: nn.Module):
        super().__init__()
        self.student, self.kd_loss = student, kd_loss

    def forward(self, batch: Batch, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """KD loss of the KD audio; `targets` are the teacher's hidden states of x_kd, [B, Lt+1, T, H]."""
        hidden = self.student(batch.x_kd, num_kd=batch.x_kd.shape[0])  # [B, Ls+1, T, H]
        kd = self.kd_loss(hidden[:, -1], targets)
        return {'loss': kd, 'loss/kd': kd.detach()}


class SpeakerFineTune(SpeakerPhaseModule):
    """Speaker fine-tuning of an encoder + back-end + classifier on the FT audio, the encoder frozen during the first
    `frozen_epochs` epochs as the released baselines freeze it: in eval mode (no dropout, LayerDrop or time masking)
    and without gradient, so Adam leaves it exactly as it was. When it unfreezes, the release starts a fresh Adam and
    scheduler over every trainable parameter: start_epoch asks the loop for that.

    precomp phase 2 fine-tunes the distilled student; postcomp phase 1 fine-tunes the full-depth teacher copy,
    held in the `student` slot (it is a Student with every teacher layer), so that phase's checkpoints are speaker
    models like any other (validated, exportable).
    """

    def __init__(self, student: nn.Module, backend: nn.Module, ft_loss: nn.Module, frozen_epochs: int):
        super().__init__()
        self.student, self.backend, self.ft_loss = student, backend, ft_loss
        self.frozen_epochs = frozen_epochs
        self.frozen = False  # set by start_epoch before every epoch

    def start_epoch(self, epoch: int) -> bool:
        """Freeze the encoder for epochs 1..frozen_epochs, train it afterwards; a fresh optimiser when it unfreezes."""
        self.frozen = epoch <= self.frozen_epochs
        self.train(self.training)
        return self.frozen_epochs > 0 and epoch == self.frozen_epochs + 1

    def train(self, mode: bool = True) -> SpeakerFineTune:
        """Train mode for the back-end; the encoder stays in eval mode while frozen."""
        super().train(mode)
        self.student.train(mode and not self.frozen)
        return self

    def forward(self, batch: Batch, targets: None) -> dict[str, torch.Tensor]:
        """Speaker loss of the FT audio and its labels (the phase reads no KD audio)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            hidden = self.student(batch.x_ft)  # [B, L+1, T, H]
        ft = self.ft_loss(self.backend(hidden), batch.y)  # [B, E] → class-weighted CE
        return {'loss': ft, 'loss/ft': ft.detach()}


class EmbeddingKD(SpeakerPhaseModule):
    """postcomp phase 2, as released: on the KD audio, hidden-state KD against the fine-tuned teacher plus
    `w_embed_mse` × MSE between the student's speaker embedding (student → its back-end) and the fine-tuned teacher's
    (teacher → its back-end) of the same audio. The FT audio is not used; no speaker classifier."""

    def __init__(self, student: nn.Module, backend: nn.Module, kd_loss: nn.Module, w_kd: float, w_embed_mse: float):
        super().__init__()
        self.student, self.backend, self.kd_loss = student, backend, kd_loss
        self.w_kd, self.w_embed_mse = w_kd, w_embed_mse

    def forward(self, batch: Batch, targets: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        """KD loss and embedding MSE, both on the KD rows."""
        teacher_hidden, teacher_embedding = targets  # [B, Lt+1, T, H], [B, E]
        hidden = self.student(batch.x_kd, num_kd=batch.x_kd.shape[0])  # [B, Ls+1, T, H]
        kd = self.kd_loss(hidden[:, -1], teacher_hidden)
        mse = embedding_mse(self.backend(hidden), teacher_embedding)  # [B, E] vs [B, E]
        return {'loss': self.w_kd * kd + self.w_embed_mse * mse, 'loss/kd': kd.detach(), 'loss/mse': mse.detach()}


# ----- targets: what a phase learns from, computed without gradient from a frozen model -----
def pretrained_targets(parts: Models, batch: Batch) -> torch.Tensor:
    """The pre-trained teacher's hidden states of the KD audio, [B, Lt+1, T, H] (inference mode inside)."""
    return parts.teacher(batch.x_kd)


def no_targets(parts: Models, batch: Batch) -> None:
    """A phase that learns from speaker labels only: no teacher forward at all."""
    return None


@torch.no_grad()
def finetuned_targets(parts: Models, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """postcomp phase 2: the fine-tuned teacher copy (eval mode, no gradient) on the KD audio — its hidden states,
    [B, Lt+1, T, H], and its speaker embeddings (copy → its back-end), [B, E]."""
    states = parts.teacher_ft.eval()(batch.x_kd)  # [B, Lt+1, T, H]
    return states, parts.teacher_backend.eval()(states)  # [B, Lt+1, T, H], [B, E]


def method_learning_rate(args: dict) -> tuple[float, float]:
    """A method's own phases: Adam at lr, cosine down to lr_min."""
    return args['lr'], args['lr_min']


def lmft_learning_rate(args: dict) -> tuple[float, float]:
    """Large-margin fine-tuning: Adam at lmft_lr, cosine down to min(lr_min, lmft_lr), so it never rises."""
    return args['lmft_lr'], min(args['lr_min'], args['lmft_lr'])


@dataclass(frozen=True)
class Phase:
    """One training phase of a method."""
    name: str  # recorded in checkpoints; names the phase's files and metric prefix
    module: Callable[[Models, dict], PhaseModule]  # (shared parts, arguments) → what this phase trains
    targets: Callable[[Models, Batch], object]  # (shared parts, batch) → what it learns from, no gradient
    epochs_key: str  # 'epoch' (speaker fine-tuning, joint), 'epoch_KD' (KD without labels), 'lmft_epochs'
    validates: bool  # speaker validation and best-epoch selection after every epoch
    kd_audio: bool = True  # reads KD crops (False: learns from speaker labels only, opens no KD file)
    ft_audio: bool = True  # reads FT crops (False: KD only, opens no FT file)
    evaluates: bool = False  # an earlier phase whose best state gets its own final evaluation (postcomp's teacher)
    crop_key: str = 'crop_size'  # argument key of its training crop length (samples)
    learning_rate: Callable[[dict], tuple[float, float]] = method_learning_rate  # args → (Adam lr, cosine floor)


@dataclass(frozen=True)
class Method:
    """What one method trains (the argument values it sets: arguments.METHOD_ARGS)."""
    adapter: bool  # OS-KDFT adapters in every student layer, used by the FT rows only
    finetune_teacher: bool  # a trainable full-depth teacher copy with its own back-end (postcomp)
    phases: tuple[Phase, ...] = field(default=())


# ----- phase modules: (shared parts, arguments) → what a phase trains -----
def joint_module(parts: Models, args: dict) -> PhaseModule:
    """os_kdft2 / os_kdft: KD and speaker fine-tuning of the student in one step."""
    return JointKDFT(parts.student, parts.backend, parts.kd_loss, parts.ft_loss, args['w_kd'], args['w_ft'])


def kd_only_module(parts: Models, args: dict) -> PhaseModule:
    """precomp phase 1: the student distilled from the teacher, no speaker labels."""
    return KDOnly(parts.student, parts.kd_loss)


def student_ft_module(parts: Models, args: dict) -> PhaseModule:
    """precomp phase 2: the distilled student fine-tuned for speakers (encoder frozen for freeze_epochs)."""
    return SpeakerFineTune(parts.student, parts.backend, parts.ft_loss, args['freeze_epochs'])


def teacher_ft_module(parts: Models, args: dict) -> PhaseModule:
    """postcomp phase 1: the teacher copy fine-tuned for speakers (encoder frozen for freeze_epochs)."""
    return SpeakerFineTune(parts.teacher_ft, parts.teacher_backend, parts.ft_loss, args['freeze_epochs'])


def embedding_kd_module(parts: Models, args: dict) -> PhaseModule:
    """postcomp phase 2: the fine-tuned teacher compressed into the student (hidden states and embeddings)."""
    return EmbeddingKD(parts.student, parts.backend, parts.kd_loss, args['w_kd'], args['w_embed_mse'])


def lmft_module(parts: Models, args: dict) -> PhaseModule:
    """Large-margin fine-tuning of the student + back-end with an AAM-softmax copy of the last speaker head."""
    head = large_margin_copy(parts.ft_loss, args['lmft_margin'], args['aam_scale'])
    return SpeakerFineTune(parts.student, parts.backend, head, frozen_epochs=0)


JOINT = Phase('joint', joint_module, pretrained_targets, 'epoch', validates=True)

METHODS: dict[str, Method] = {
    # joint KD + FT, attentive feature tuner, curriculum KD data
    'os_kdft2': Method(adapter=False, finetune_teacher=False, phases=(JOINT,)),
    # joint KD + FT, adapters on the FT rows, weighted-sum back-end, LibriSpeech KD data
    'os_kdft': Method(adapter=True, finetune_teacher=False, phases=(JOINT,)),
    # compress (KD only, no speaker validation), then fine-tune the student (frozen for freeze_epochs)
    'precomp': Method(
        adapter=False, finetune_teacher=False,
        phases=(Phase('kd', kd_only_module, pretrained_targets, 'epoch_KD', validates=False, ft_audio=False),
                Phase('ft', student_ft_module, no_targets, 'epoch', validates=True, kd_audio=False))),
    # fine-tune the teacher copy (frozen for freeze_epochs; evaluated), then compress it into the student (KD data
    # LibriSpeech, switched to VoxCeleb1 from epoch int(0.9 epoch_KD) on)
    'postcomp': Method(
        adapter=False, finetune_teacher=True,
        phases=(Phase('teacher_ft', teacher_ft_module, no_targets, 'epoch', validates=True, kd_audio=False,
                      evaluates=True),
                Phase('kd', embedding_kd_module, finetuned_targets, 'epoch_KD', validates=True, ft_audio=False))),
}

# Large-margin fine-tuning, the modern recipe's last phase: student + back-end from the method's best state, speaker
# labels only, AAM-softmax at lmft_margin (scale aam_scale) on lmft_crop_size crops at lmft_lr. Its head is a copy
# of parts.ft_loss made when the module is built (models/losses.py: large_margin_copy), i.e. of the speaker classifier
# the method trained last: the student's own in os_kdft2 / os_kdft / precomp; in postcomp, whose student has none,
# the fine-tuned teacher's: the student's embeddings were distilled to match that teacher's (embedding MSE), so its
# class directions are a start in the student's embedding space rather than random ones.
LMFT = Phase('lmft', lmft_module, no_targets, 'lmft_epochs', validates=True, kd_audio=False, crop_key='lmft_crop_size',
             learning_rate=lmft_learning_rate)


def phases_of(args: dict) -> tuple[Phase, ...]:
    """The phases a run of args['method'] trains: the method's own, then LMFT when args['lmft_epochs'] > 0. With LMFT
    the method's own last phase also gets its own final evaluation: the figure LM-FT is measured against. The LMFT
    module must be built after the previous phase's best state is restored (trainer/run.py run_phases does)."""
    phases = METHODS[args['method']].phases
    if args['lmft_epochs'] == 0:
        return phases
    return (*phases[:-1], replace(phases[-1], evaluates=True), LMFT)
