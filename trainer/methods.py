"""Each method as a sequence of training phases, chosen by name (SPEC §3): one code path, four recipes.

A phase names what it trains (a PhaseModule built from the shared parts of models.build_models), the frozen model
its targets come from, its epoch count key and whether it validates the speaker model every epoch. Every phase
runs through the same Trainer (trainer/fit.py); trainer/phases.py runs them in order and hands each phase's
result to the next.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from models import Models
from trainer.baselines import EmbeddingKD, FineTunedTeacher, KDOnly, SpeakerFineTune
from trainer.steps import JointKDFT, PhaseModule


@dataclass(frozen=True)
class Phase:
    """One training phase of a method."""
    name: str  # recorded in checkpoints; names the phase's files and metric prefix
    build: Callable[[Models, dict], PhaseModule]  # (parts, arguments) → the trainable module
    teacher: Callable[[Models], nn.Module | None]  # parts → the frozen model the targets come from
    epochs_key: str  # 'epoch' (speaker fine-tuning, joint) or 'epoch_KD' (KD without speaker labels)
    validates: bool  # speaker validation and best-epoch selection after every epoch


def _joint(parts: Models, args: dict) -> PhaseModule:
    return JointKDFT(parts.student, parts.backend, parts.kd_loss, parts.ft_loss, args['w_kd'], args['w_ft'])


def _kd_only(parts: Models, args: dict) -> PhaseModule:
    return KDOnly(parts.student, parts.kd_loss)


def _student_ft(parts: Models, args: dict) -> PhaseModule:
    return SpeakerFineTune(parts.student, parts.backend, parts.ft_loss, args['freeze_epochs'])


def _teacher_ft(parts: Models, args: dict) -> PhaseModule:
    return SpeakerFineTune(parts.teacher_ft, parts.teacher_backend, parts.ft_loss, args['freeze_epochs'])


def _embedding_kd(parts: Models, args: dict) -> PhaseModule:
    return EmbeddingKD(parts.student, parts.backend, parts.kd_loss, args['w_kd'], args['w_embed_mse'])


def _pretrained(parts: Models) -> nn.Module:
    return parts.teacher


def _no_teacher(parts: Models) -> None:
    return None


def _finetuned(parts: Models) -> nn.Module:
    return FineTunedTeacher(parts.teacher_ft, parts.teacher_backend)


JOINT = Phase('joint', _joint, _pretrained, 'epoch', validates=True)

METHOD_PHASES: dict[str, tuple[Phase, ...]] = {
    'os_kdft2': (JOINT,),
    'os_kdft': (JOINT,),
    # compress (KD only, no speaker validation), then fine-tune the student (frozen for freeze_epochs)
    'precomp': (Phase('kd', _kd_only, _pretrained, 'epoch_KD', validates=False),
                Phase('ft', _student_ft, _no_teacher, 'epoch', validates=True)),
    # fine-tune the teacher copy (frozen for freeze_epochs), then compress it into the student
    'postcomp': (Phase('teacher_ft', _teacher_ft, _no_teacher, 'epoch', validates=True),
                 Phase('kd', _embedding_kd, _finetuned, 'epoch_KD', validates=True)),
}
