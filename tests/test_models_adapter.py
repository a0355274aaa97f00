"""OS-KDFT adapter: released initialisation, FT rows only, no KD gradient, training noise in training mode only."""
import numpy as np
import pytest
import torch
from torch import nn

from helpers_models import tiny_ssl_model, waveforms
from models.backend import SpeakerBackend
from models.losses import DistilHuBERTLoss, SoftmaxLoss
from models.noise import TrainingNoise
from models.student import Student
from models.teacher import Teacher
from models.tuner import AttentiveFeatureTuner


def _forward(student, wav, num_kd, seed=5):
    """One training forward with every random draw (torch and NumPy) seeded."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    return student(wav, num_kd=num_kd)


@pytest.mark.parametrize('initializer_range', [0.02, 0.05])
def test_layer_adapters_start_as_transformers_post_init_leaves_them(initializer_range):
    model = tiny_ssl_model()
    model.config.initializer_range = initializer_range  # 0.02 in HuBERT's config; the adapters follow the config
    torch.manual_seed(0)
    student = Student(model, 2, [0, 1], adapter_size=64)
    adapters = [layer.adapter for layer in student.layers]
    weights = torch.cat([linear.weight.flatten() for a in adapters for linear in (a.down, a.up)])  # 4 × 64·32
    assert abs(weights.std().item() / initializer_range - 1) < 0.1
    assert abs(weights.mean().item()) < 0.1 * initializer_range
    assert all(torch.equal(linear.bias, torch.zeros_like(linear.bias)) for a in adapters for linear in (a.down, a.up))


def test_tuner_keeps_pytorchs_default_linear_init():
    torch.manual_seed(4)
    down, up = nn.Linear(48, 4), nn.Linear(4, 48)  # what PyTorch draws for the first tuner's two Linear layers
    torch.manual_seed(4)
    tuner = AttentiveFeatureTuner(48, 2).tuners[0]
    assert torch.equal(tuner.down.weight, down.weight) and torch.equal(tuner.down.bias, down.bias)
    assert torch.equal(tuner.up.weight, up.weight) and torch.equal(tuner.up.bias, up.bias)
    assert tuner.down.bias.abs().min() > 0 and tuner.up.weight.abs().max() > 3 * 0.02  # not N(0, 0.02), zero bias


def test_adapter_weights_never_change_kd_rows():
    student = Student(tiny_ssl_model(), 2, [0, 1], adapter_size=8).train()
    wav = waveforms(4)
    before = _forward(student, wav, num_kd=2)
    with torch.no_grad():
        for p in student.adapter_parameters():
            p.add_(torch.randn_like(p))
    after = _forward(student, wav, num_kd=2)
    assert torch.equal(before[:2], after[:2])
    assert not torch.equal(before[2:, 1:], after[2:, 1:])


def test_kd_rows_compute_the_teacher_layers_with_adapters_present():
    model = tiny_ssl_model()
    wav = waveforms(3)
    student = Student(model, 2, [0, 1], adapter_size=8, init='teacher').eval()
    got = student(wav, num_kd=2)
    assert (got[:2] - Teacher(model)(wav)[:2, :3]).abs().max() < 1e-5


def test_kd_loss_gives_adapters_no_gradient_and_ft_loss_does():
    model = tiny_ssl_model()
    teacher = Teacher(model)
    student = Student(model, 2, [0, 1], adapter_size=8, layerdrop=0.0).train()
    kd_loss, backend = DistilHuBERTLoss(32, [1, 2, 3]), SpeakerBackend(32, 3, 16, 'weighted_sum')
    ft_loss = SoftmaxLoss(16, 5, None, 0.0, 1.0)
    wav_kd, wav_ft = waveforms(2, seed=1), waveforms(3, seed=2)
    hidden = student(torch.cat([wav_kd, wav_ft]), num_kd=2)  # [5, 3, T, H]
    kd_loss(hidden[:2, -1], teacher(wav_kd)).backward(retain_graph=True)
    adapters = student.adapter_parameters()
    assert len(adapters) == 8
    assert all(p.grad is None or not p.grad.any() for p in adapters)
    assert student.layers[1].layer.feed_forward.output_dense.weight.grad.abs().sum() > 0
    ft_loss(backend(hidden[2:]), torch.tensor([0, 3, 4])).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in adapters)


def test_noise_acts_in_training_mode_only():
    noise = TrainingNoise()
    z = torch.randn(200, 64) * 3.0
    torch.manual_seed(0)
    noisy = noise.train()(z)
    ratio = (noisy - z).std() / z.abs().mean()  # the drawn σ / mean|z|
    assert 0.1 - 0.01 < ratio < 0.5 + 0.01
    assert not torch.equal(noise(z), noise(z))  # redrawn per forward
    assert noise.eval()(z) is z


def test_adapter_noise_makes_ft_rows_random_in_training_and_eval_deterministic():
    student = Student(tiny_ssl_model(), 2, [0, 1], adapter_size=8, dropout=0.0, layerdrop=0.0, mask_time_prob=0.0)
    wav = waveforms(4)
    first, second = student.train()(wav, num_kd=2), student(wav, num_kd=2)
    assert torch.equal(first[:2], second[:2]) and not torch.equal(first[2:, 1:], second[2:, 1:])
    student.eval()
    assert torch.equal(student(wav, num_kd=2), student(wav, num_kd=2))


@pytest.mark.parametrize('num_kd', [-1, 5])
def test_num_kd_outside_the_batch_is_rejected(num_kd):
    with pytest.raises(ValueError, match='num_kd'):
        Student(tiny_ssl_model(), 1, [0], adapter_size=4)(waveforms(4), num_kd=num_kd)
