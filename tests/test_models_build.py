"""build_models: each method's recipe, argument checks, and one joint KD + FT step."""
import numpy as np
import pytest
import torch

from helpers_models import tiny_teacher_dir, waveforms
from models import build_models
from models.backend import TunerAggregation, WeightedSum
from models.losses import AAMSoftmaxLoss, SoftmaxLoss


def _build(**changes):
    args = dict(huggingface_url=tiny_teacher_dir('hubert'), method='os_kdft2', num_speakers=4,
                class_counts=np.array([3, 1, 2, 2]), student_layers=2, init_teacher_idx=[0, 1],
                student_hidden_size=32, adapter_size=8, embed_size=16, use_TFT=True, target_layer_idx=[1, 2, 3],
                cos_lambda=1.0, kd_cos_reduction='sum', ft_loss='softmax', class_weight=True, aam_margin=0.2,
                aam_scale=30.0, student_dropout=None, student_layerdrop=0.0, student_mask_time_prob=None)
    args.update(changes)
    return build_models(**args)


@pytest.mark.parametrize('method, use_tft, adapters, aggregation', [
    ('os_kdft2', True, 0, TunerAggregation), ('os_kdft', False, 8, WeightedSum),
    ('precomp', True, 0, TunerAggregation), ('postcomp', True, 0, TunerAggregation)])
def test_each_method_builds_its_recipe(method, use_tft, adapters, aggregation):
    models = _build(method=method, use_TFT=use_tft)
    assert len(models.student.adapter_parameters()) == adapters
    assert isinstance(models.backend.aggregation, aggregation)
    assert torch.allclose(models.ft_loss.class_weights, torch.tensor([8 / 3, 8.0, 4.0, 4.0]))
    assert (models.teacher_ft is not None) == (method == 'postcomp')
    if method == 'postcomp':
        assert models.teacher_ft.num_layers == 3 and models.teacher_backend.num_states == 4
        wav = waveforms(2)
        assert (models.teacher_ft.eval()(wav) - models.teacher(wav)).abs().max() < 1e-5  # a full, trainable copy
        assert all(p.requires_grad for p in models.teacher_ft.parameters())


def test_joint_step_trains_everything_but_the_teacher():
    torch.manual_seed(0)
    models = _build(ft_loss='aam', class_weight=False)
    assert isinstance(models.ft_loss, AAMSoftmaxLoss) and models.ft_loss.class_weights is None
    models.train()
    assert not models.teacher.training and models.student.training
    wav_kd, wav_ft, labels = waveforms(2, seed=1), waveforms(2, seed=2), torch.tensor([0, 3])
    hidden = models.student(torch.cat([wav_kd, wav_ft]), num_kd=2)  # [4, 3, T, H]
    kd = models.kd_loss(hidden[:2, -1], models.teacher(wav_kd))
    ft = models.ft_loss(models.backend(hidden[2:]), labels)
    (kd + ft).backward()
    trainable = models.trainable_parameters()
    assert not any(p.requires_grad for p in models.teacher.parameters())
    assert len(trainable) == sum(1 for _ in models.parameters()) - sum(1 for _ in models.teacher.parameters())
    missing = [n for n, p in models.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []


@pytest.mark.parametrize('change, key', [
    (dict(student_hidden_size=768), 'student_hidden_layer_size'), (dict(method='distil'), 'method'),
    (dict(ft_loss='arcface'), 'ft_loss'), (dict(class_counts=None), 'class_weight'),
    (dict(target_layer_idx=[4, 8, 12]), 'target_layer_idx'), (dict(init_teacher_idx=[0, 5]), 'init_teacher_idx'),
    (dict(student_dropout=2.0), 'student_dropout')])
def test_bad_arguments_name_their_key(change, key):
    with pytest.raises(ValueError, match=key):
        _build(**change)


def test_softmax_is_the_default_speaker_loss():
    assert isinstance(_build().ft_loss, SoftmaxLoss)
