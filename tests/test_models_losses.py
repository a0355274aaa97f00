"""Losses against independent explicit computations."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from models.losses import (SPEAKER_LOSSES, AAMSoftmaxLoss, DistilHuBERTLoss, SoftmaxLoss, class_weights_from_counts,
                           embedding_mse)


def _explicit_kd(loss, student_last, teacher_hidden, reduction):
    """DistilHuBERT loss with plain Python loops over rows, heads and frames."""
    total = 0.0
    for b in range(student_last.shape[0]):
        row = 0.0
        for layer, head in zip(loss.target_layer_idx, loss.heads):
            pred, target = head(student_last[b]), teacher_hidden[b, layer]  # [T, H]
            frames, dims = pred.shape
            diffs = [abs(float(pred[t, d] - target[t, d])) for t in range(frames) for d in range(dims)]
            l1 = sum(diffs) / (frames * dims)
            logs = []
            for t in range(frames):
                p, h = pred[t].tolist(), target[t].tolist()
                norms = math.sqrt(sum(x * x for x in p)) * math.sqrt(sum(y * y for y in h))
                cos = sum(x * y for x, y in zip(p, h)) / norms
                logs.append(math.log(1 / (1 + math.exp(-cos))))
            reduced = sum(logs) if reduction == 'sum' else sum(logs) / frames
            row += l1 - loss.cos_lambda * reduced
        total += row
    return total / student_last.shape[0]


@pytest.mark.parametrize('reduction', ['sum', 'mean'])
def test_kd_loss_equals_explicit_loops(reduction):
    torch.manual_seed(0)
    loss = DistilHuBERTLoss(8, [1, 3], cos_lambda=0.7, cos_reduction=reduction)
    student_last, teacher_hidden = torch.randn(2, 5, 8), torch.randn(2, 4, 5, 8)
    with torch.no_grad():
        got = loss(student_last, teacher_hidden).item()
        expected = _explicit_kd(loss, student_last, teacher_hidden, reduction)
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_kd_loss_checks_its_targets_against_the_teacher_states_given():
    """The keys themselves are checked once, by arguments.check_teacher_args; the loss keeps the shape invariant."""
    with pytest.raises(ValueError, match='targets \\[4, 8, 12\\] beyond the 5 teacher states'):
        DistilHuBERTLoss(8, [4, 8, 12])(torch.randn(1, 5, 8), torch.randn(1, 5, 5, 8))  # teacher with 4 layers


def test_aam_with_zero_margin_is_softmax_on_scaled_cosines():
    torch.manual_seed(0)
    aam = AAMSoftmaxLoss(6, 4, None, margin=0.0, scale=30.0)
    emb, labels = torch.randn(5, 6), torch.tensor([0, 1, 2, 3, 1])
    cosines = F.normalize(emb) @ F.normalize(aam.weight).T
    assert aam(emb, labels).item() == pytest.approx(F.cross_entropy(30.0 * cosines, labels).item(), rel=1e-6)


def test_aam_margin_lowers_the_target_logit_by_the_angle_margin():
    torch.manual_seed(0)
    aam = AAMSoftmaxLoss(6, 4, None, margin=0.2, scale=30.0)
    emb, labels = torch.randn(5, 6), torch.tensor([0, 1, 2, 3, 1])
    cosines = F.normalize(emb) @ F.normalize(aam.weight).T
    theta = torch.acos(cosines.gather(1, labels[:, None]))
    logits = cosines.clone().scatter_(1, labels[:, None], torch.cos(theta + 0.2))
    assert aam(emb, labels).item() == pytest.approx(F.cross_entropy(30.0 * logits, labels).item(), rel=1e-5)


def test_class_weights_and_weighted_softmax():
    weights = class_weights_from_counts(np.array([1, 3, 4]))
    assert torch.allclose(weights, torch.tensor([8.0, 8 / 3, 2.0]))
    torch.manual_seed(0)
    loss = SoftmaxLoss(6, 3, weights, margin=0.2, scale=30.0)
    emb, labels = torch.randn(4, 6), torch.tensor([0, 1, 2, 2])
    logp = torch.log_softmax(loss.classifier(emb), dim=1)
    w = weights[labels]
    expected = -(w * logp[torch.arange(4), labels]).sum() / w.sum()
    assert loss(emb, labels).item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ValueError, match='counts'):
        class_weights_from_counts([3, 0, 2])
    with pytest.raises(ValueError, match='class_weights'):
        SPEAKER_LOSSES['aam'](6, 4, weights, 0.2, 30.0)


def test_embedding_mse_treats_the_teacher_as_a_target():
    student = torch.randn(3, 4, requires_grad=True)
    teacher = torch.randn(3, 4, requires_grad=True)
    loss = embedding_mse(student, teacher)
    assert loss.item() == pytest.approx(((student - teacher) ** 2).mean().item())
    loss.backward()
    assert student.grad is not None and teacher.grad is None
