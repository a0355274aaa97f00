"""Losses: DistilHuBERT hidden-state KD, speaker classification (softmax / AAM-softmax), embedding MSE.

Every loss computes in fp32, also inside bf16 autocast (amp=True): its inputs are cast up and autocast is off within
(utils/hardware.py fp32_region). A bf16 cosine has about 3 significant digits; times an AAM scale of 32 that is
±0.1 in a logit, and the KD heads' L1 and cosine terms would lose as much.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from utils.hardware import fp32_region, upcast

FRAME_REDUCTIONS = {'sum': torch.sum, 'mean': torch.mean}


class DistilHuBERTLoss(nn.Module):
    """One Linear→GELU→Linear head per target layer on the student's last state; L1 − λ·log σ(cos) per head.

    L_KD = mean_batch Σ_l (mean_{t,d}|ĥ_l − h_l| − λ · R_t log σ(cos(ĥ_l,t, h_l,t))),
    R_t = sum over frames (released OS-KDFT code) or mean (DistilHuBERT paper).
    """

    def __init__(self, hidden_size: int, target_layer_idx: list[int], cos_lambda: float = 1.0,
                 cos_reduction: str = 'sum'):
        super().__init__()
        self.target_layer_idx = list(target_layer_idx)  # checked by arguments.check_teacher_args
        self.cos_lambda = cos_lambda
        self.reduce_frames = FRAME_REDUCTIONS[cos_reduction]
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.GELU(), nn.Linear(hidden_size, hidden_size))
            for _ in self.target_layer_idx)

    def forward(self, student_last: torch.Tensor, teacher_hidden: torch.Tensor) -> torch.Tensor:
        """student_last [B, T, H], teacher_hidden [B, Lt+1, T, H] → scalar KD loss."""
        if max(self.target_layer_idx) >= teacher_hidden.shape[1]:
            raise ValueError(f"DistilHuBERTLoss: targets {self.target_layer_idx} beyond the {teacher_hidden.shape[1]} "
                             f"teacher states given")
        if student_last.shape != teacher_hidden[:, 0].shape:
            raise ValueError(f"DistilHuBERTLoss: student state {tuple(student_last.shape)} and teacher states "
                             f"{tuple(teacher_hidden.shape)} disagree on [B, T, H]")
        with fp32_region(student_last.device):
            student_last = upcast(student_last)  # [B, T, H]
            per_row = student_last.new_zeros(student_last.shape[0])  # [B]
            for layer, head in zip(self.target_layer_idx, self.heads):
                predicted, target = head(student_last), upcast(teacher_hidden[:, layer])  # [B, T, H]
                l1 = (predicted - target).abs().mean(dim=(1, 2))  # [B]
                log_cos = F.logsigmoid(F.cosine_similarity(predicted, target, dim=-1))  # [B, T]
                per_row = per_row + l1 - self.cos_lambda * self.reduce_frames(log_cos, dim=1)  # [B]
            return per_row.mean()


def class_weights_from_counts(counts: Sequence[int] | np.ndarray) -> torch.Tensor:
    """Class weights N / n_c from per-class utterance counts (every class needs at least one utterance)."""
    counts = torch.as_tensor(np.asarray(counts), dtype=torch.float64)
    if counts.dim() != 1 or len(counts) == 0 or bool((counts <= 0).any()):
        raise ValueError(f"counts: expected a 1-D array of positive per-class counts, got {counts.tolist()[:10]}")
    return (counts.sum() / counts).float()  # [C]


class SoftmaxLoss(nn.Module):
    """Linear(E→C) + cross-entropy, weighted per class when class_weights is given (margin and scale unused)."""

    def __init__(self, embed_size: int, num_classes: int, class_weights: torch.Tensor | None, margin: float,
                 scale: float):
        super().__init__()
        self.classifier = nn.Linear(embed_size, num_classes)
        self.register_buffer('class_weights', _checked_weights(class_weights, num_classes))

    def forward(self, embedding: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """embedding [B, E], labels [B] → scalar loss."""
        with fp32_region(embedding.device):
            logits = self.classifier(upcast(embedding))  # [B, C]
            return F.cross_entropy(logits, labels, weight=self.class_weights)

    def class_directions(self) -> torch.Tensor:
        """The classifier's weight rows, [C, E]: row c scores class c (the bias is not a direction)."""
        return self.classifier.weight


class AAMSoftmaxLoss(nn.Module):
    """Additive angular margin softmax (ArcFace): s · cos(θ_y + m) for the target class, s · cos θ otherwise.

    `directions` [C, E] starts the class weights from given rows (copied; no random draw), else Xavier-normal.
    """

    def __init__(self, embed_size: int, num_classes: int, class_weights: torch.Tensor | None, margin: float,
                 scale: float, directions: torch.Tensor | None = None):
        super().__init__()
        if directions is None:
            self.weight = nn.Parameter(torch.empty(num_classes, embed_size))  # [C, E]
            nn.init.xavier_normal_(self.weight)
        elif directions.shape != (num_classes, embed_size):
            raise ValueError(f"AAMSoftmaxLoss: expected directions of shape {(num_classes, embed_size)}, "
                             f"got {tuple(directions.shape)}")
        else:
            self.weight = nn.Parameter(directions.detach().clone())  # [C, E]
        self.margin, self.scale = margin, scale
        self.register_buffer('class_weights', _checked_weights(class_weights, num_classes))

    def forward(self, embedding: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """embedding [B, E], labels [B] → scalar loss."""
        with fp32_region(embedding.device):
            cosine = F.linear(F.normalize(upcast(embedding)), F.normalize(self.weight))  # [B, C]
            sine = (1.0 - cosine.pow(2)).clamp(min=1e-7, max=1.0).sqrt()  # [B, C], floored: finite gradient at |cos|=1
            shifted = cosine * math.cos(self.margin) - sine * math.sin(self.margin)  # cos(θ + m), [B, C]
            # past θ = π − m, cos(θ + m) stops decreasing: the usual linear extension (ArcFace's easy_margin=False)
            shifted = torch.where(cosine > math.cos(math.pi - self.margin), shifted,
                                  cosine - math.sin(math.pi - self.margin) * self.margin)  # [B, C]
            target = F.one_hot(labels, cosine.shape[1]).bool()  # [B, C]
            logits = self.scale * torch.where(target, shifted, cosine)  # [B, C]
            return F.cross_entropy(logits, labels, weight=self.class_weights)

    def class_directions(self) -> torch.Tensor:
        """The class weight rows, [C, E] (only their directions count)."""
        return self.weight


def large_margin_copy(loss: SoftmaxLoss | AAMSoftmaxLoss, margin: float, scale: float) -> AAMSoftmaxLoss:
    """An AAM-softmax head that starts from `loss`'s class directions and class weights, with its own margin and
    scale. A copy, not a view: training the head leaves `loss` (and any checkpoint of it) as it was. After softmax
    training the classifier's weight rows point the way of their classes (the bias, which AAM lacks, is dropped)."""
    directions = loss.class_directions()  # [C, E]
    weights = None if loss.class_weights is None else loss.class_weights.clone()  # [C]
    return AAMSoftmaxLoss(directions.shape[1], directions.shape[0], weights, margin, scale, directions)


def _checked_weights(class_weights: torch.Tensor | None, num_classes: int) -> torch.Tensor | None:
    """Class weights as a float tensor of length num_classes, or None."""
    if class_weights is None:
        return None
    weights = torch.as_tensor(class_weights, dtype=torch.float32)
    if weights.shape != (num_classes,):
        raise ValueError(f"class_weights: expected {num_classes} weights (one per speaker), got {tuple(weights.shape)}")
    return weights


SPEAKER_LOSSES = {'softmax': SoftmaxLoss, 'aam': AAMSoftmaxLoss}


def embedding_mse(student_emb: torch.Tensor, teacher_emb: torch.Tensor) -> torch.Tensor:
    """postcomp: mean squared error between student and (fine-tuned, detached) teacher embeddings [B, E]."""
    if student_emb.shape != teacher_emb.shape:
        raise ValueError(f"embedding_mse: shapes differ: student {tuple(student_emb.shape)}, "
                         f"teacher {tuple(teacher_emb.shape)}")
    with fp32_region(student_emb.device):
        return F.mse_loss(upcast(student_emb), upcast(teacher_emb.detach()))
