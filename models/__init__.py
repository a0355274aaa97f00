"""Models of OS-KDFT2: build the teacher, student, back-end and losses a method needs."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from models.backend import SpeakerBackend
from models.losses import SPEAKER_LOSSES, DistilHuBERTLoss, check_target_layers, class_weights_from_counts
from models.student import Student
from models.teacher import Teacher, load_ssl_model, teacher_hidden_size, teacher_num_layers


@dataclass(frozen=True)
class Recipe:
    """What a method changes in the models: OS-KDFT adapters, a fine-tunable full-depth teacher copy (postcomp)."""

    adapter: bool
    finetune_teacher: bool


RECIPES = {
    'os_kdft2': Recipe(adapter=False, finetune_teacher=False),
    'os_kdft': Recipe(adapter=True, finetune_teacher=False),
    'precomp': Recipe(adapter=False, finetune_teacher=False),
    'postcomp': Recipe(adapter=False, finetune_teacher=True),
}
AGGREGATION_BY_TFT = {True: 'tuner', False: 'weighted_sum'}


class Models(nn.Module):
    """All parts of one run; .train() leaves the teacher in eval mode, .to() moves everything.

    teacher_ft / teacher_backend exist for postcomp only: a trainable full-depth copy of the teacher (a Student with
    every teacher layer, same behaviour as transformers' model in training) and its own back-end; ft_loss classifies
    their embeddings in phase 1, and the fine-tuned copy gives the KD targets and embeddings of phase 2.
    """

    def __init__(self, teacher: Teacher, student: Student, backend: SpeakerBackend, kd_loss: DistilHuBERTLoss,
                 ft_loss: nn.Module, teacher_ft: Student | None = None, teacher_backend: SpeakerBackend | None = None):
        super().__init__()
        self.teacher = teacher
        self.student = student
        self.backend = backend
        self.kd_loss = kd_loss
        self.ft_loss = ft_loss
        self.teacher_ft = teacher_ft
        self.teacher_backend = teacher_backend

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Every parameter with requires_grad (the frozen teacher excluded), for the optimizer."""
        return [p for p in self.parameters() if p.requires_grad]


def _class_weights(class_weight: bool, class_counts: np.ndarray | None, num_speakers: int) -> torch.Tensor | None:
    """N / n_c weights when class_weight is on; a clear error when the counts are missing or mismatched."""
    if not class_weight:
        return None
    if class_counts is None or len(class_counts) != num_speakers:
        got = None if class_counts is None else len(class_counts)
        raise ValueError(f"class_weight: True needs class_counts with one count per speaker ({num_speakers}), "
                         f"got {got}")
    return class_weights_from_counts(class_counts)


def build_models(huggingface_url: str, method: str, num_speakers: int, class_counts: np.ndarray | None,
                 student_layers: int, init_teacher_idx: list[int], student_hidden_size: int, adapter_size: int,
                 embed_size: int, use_TFT: bool, target_layer_idx: list[int], cos_lambda: float,
                 kd_cos_reduction: str, ft_loss: str, class_weight: bool, aam_margin: float, aam_scale: float,
                 student_dropout: float | None, student_layerdrop: float | None,
                 student_mask_time_prob: float | None) -> Models:
    """Load the teacher and build the student, back-end and losses of `method` (SPEC §3)."""
    if method not in RECIPES:
        raise ValueError(f"method: got {method!r}, expected one of {sorted(RECIPES)}")
    if ft_loss not in SPEAKER_LOSSES:
        raise ValueError(f"ft_loss: got {ft_loss!r}, expected one of {sorted(SPEAKER_LOSSES)}")
    recipe = RECIPES[method]
    ssl_model = load_ssl_model(huggingface_url)
    hidden, depth = teacher_hidden_size(ssl_model), teacher_num_layers(ssl_model)
    if student_hidden_size != hidden:
        raise ValueError(f"student_hidden_layer_size: {student_hidden_size} differs from the teacher's hidden size "
                         f"{hidden} ({huggingface_url}); the student keeps the teacher's width")
    check_target_layers(target_layer_idx, depth)
    aggregation = AGGREGATION_BY_TFT[bool(use_TFT)]
    student = Student(ssl_model, student_layers, init_teacher_idx, adapter_size if recipe.adapter else None,
                      student_dropout, student_layerdrop, student_mask_time_prob)
    backend = SpeakerBackend(hidden, student_layers + 1, embed_size, aggregation)
    kd_loss = DistilHuBERTLoss(hidden, target_layer_idx, cos_lambda, kd_cos_reduction)
    weights = _class_weights(class_weight, class_counts, num_speakers)
    speaker_loss = SPEAKER_LOSSES[ft_loss](embed_size, num_speakers, weights, aam_margin, aam_scale)
    teacher_ft = teacher_backend = None
    if recipe.finetune_teacher:
        teacher_ft = Student(ssl_model, depth, list(range(depth)))
        teacher_backend = SpeakerBackend(hidden, depth + 1, embed_size, aggregation)
    return Models(Teacher(ssl_model), student, backend, kd_loss, speaker_loss, teacher_ft, teacher_backend)
