"""build_models: each method's recipe, the argument checks that guard it, and one joint KD + FT step."""
import numpy as np
import pytest
import torch

from arguments import METHOD_ARGS, check_args, check_teacher_args, check_values
from helpers_models import TINY, model_args, tiny_teacher_dir, waveforms
from models import build_models
from models.teacher import load_ssl_config
from trainer.methods import METHODS
from models.backend import TunerAggregation, WeightedSum
from models.losses import AAMSoftmaxLoss, SoftmaxLoss


def _build(method: str = 'os_kdft2', **changes):
    args = model_args(method=method, **{**METHOD_ARGS[method]['args'], 'student_layerdrop': 0.0, **changes})
    return build_models(args, 4, np.array([3, 1, 2, 2]), adapter=METHODS[method].adapter,
                        finetune_teacher=METHODS[method].finetune_teacher)


@pytest.mark.parametrize('method, adapters, aggregation', [
    ('os_kdft2', 0, TunerAggregation), ('os_kdft', 8, WeightedSum), ('precomp', 0, WeightedSum),
    ('postcomp', 0, WeightedSum)])
def test_each_method_builds_its_recipe(method, adapters, aggregation):
    """The tuner for os_kdft2 only: OS-KDFT and both released baselines use the weighted-sum back-end."""
    models = _build(method)
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
    (dict(student_hidden_layer_size=768), 'student_hidden_layer_size'), (dict(ft_loss='arcface'), 'ft_loss'),
    (dict(target_layer_idx=[4, 8, 12]), 'target_layer_idx'), (dict(init_teacher_idx=[0, 5]), 'init_teacher_idx')])
def test_bad_arguments_are_refused_by_name_before_building(change, key):
    """Each key is checked once, by arguments.check_values / check_args / check_teacher_args (the teacher's config)."""
    args = model_args(path_train=tiny_teacher_dir(), path_test=tiny_teacher_dir(), path_trials=tiny_teacher_dir(),
                      **change)
    config = load_ssl_config(args['huggingface_url'])
    with pytest.raises(SystemExit, match=f"'{key}'"):
        check_values(args)
        check_args(args, world_size=1)
        check_teacher_args(args, config.num_hidden_layers, config.hidden_size)
    assert config.hidden_size == TINY['hidden_size']


def test_class_weights_need_the_counts():
    with pytest.raises(ValueError, match='class_weight'):
        build_models(model_args(), 4, None, adapter=False, finetune_teacher=False)


def test_softmax_is_the_default_speaker_loss():
    assert isinstance(_build().ft_loss, SoftmaxLoss)
