"""Models of OS-KDFT2: build the teacher, student, back-end and losses a method needs."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from models.backend import SpeakerBackend
from models.losses import SPEAKER_LOSSES, DistilHuBERTLoss, class_weights_from_counts
from models.student import Student
from models.teacher import Teacher, load_ssl_model, teacher_hidden_size, teacher_num_layers


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


def build_models(args: dict, num_speakers: int, class_counts: np.ndarray | None, adapter: bool,
                 finetune_teacher: bool) -> Models:
    """Load the teacher (args['huggingface_url']) and build the student, back-end and losses from the argument keys
    (checked before by arguments.check_args / check_teacher_args). `adapter`: OS-KDFT adapters in every student layer;
    `finetune_teacher`: a trainable full-depth teacher copy with its own back-end (postcomp)."""
    ssl_model = load_ssl_model(args['huggingface_url'])
    hidden, depth = teacher_hidden_size(ssl_model), teacher_num_layers(ssl_model)
    aggregation = 'tuner' if args['use_TFT'] else 'weighted_sum'
    layers = args['student_hidden_layer_num']
    student = Student(ssl_model, layers, args['init_teacher_idx'], args['adapter_size'] if adapter else None,
                      args['student_dropout'], args['student_layerdrop'], args['student_mask_time_prob'],
                      init=args['student_init'])
    backend = SpeakerBackend(hidden, layers + 1, args['embed_size'], aggregation)
    kd_loss = DistilHuBERTLoss(hidden, args['target_layer_idx'], args['cos_lambda'], args['kd_cos_reduction'])
    weights = _class_weights(args['class_weight'], class_counts, num_speakers)
    speaker_loss = SPEAKER_LOSSES[args['ft_loss']](args['embed_size'], num_speakers, weights, args['aam_margin'],
                                                   args['aam_scale'])
    teacher_ft = teacher_backend = None
    if finetune_teacher:
        teacher_ft = Student(ssl_model, depth, list(range(depth)), init='teacher')  # the whole teacher, trainable
        teacher_backend = SpeakerBackend(hidden, depth + 1, args['embed_size'], aggregation)
    return Models(Teacher(ssl_model), student, backend, kd_loss, speaker_loss, teacher_ft, teacher_backend)
