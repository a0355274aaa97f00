"""Attentive feature tuner and speaker back-end: layer weights, gating, gradients, aggregation choices."""
import pytest
import torch
import torch.nn.functional as F

from models.backend import SpeakerBackend, statistics_pooling
from models.tuner import AttentiveFeatureTuner


def _states(batch=3, layers=3, frames=7, hidden=48, seed=0):
    return torch.randn(batch, layers, frames, hidden, generator=torch.Generator().manual_seed(seed))


def test_tuner_weights_sum_to_one_over_layers_and_output_matches_the_formula():
    torch.manual_seed(0)
    tuner = AttentiveFeatureTuner(48, 3).eval()
    hidden = _states()
    out, weights = tuner(hidden, return_weights=True)
    assert out.shape == (3, 48, 7) and weights.shape == (3, 3, 48, 7)
    assert torch.allclose(weights.sum(dim=1), torch.ones(3, 48, 7), atol=1e-6)
    assert tuner.tuners[0].down.out_features == 4  # bottleneck H / 12
    tuned, logits = [], []
    for layer, (t, attend) in enumerate(zip(tuner.tuners, tuner.attention)):  # eval mode: the noise is off
        u = (F.gelu(hidden[:, layer] @ t.down.weight.T + t.down.bias) @ t.up.weight.T + t.up.bias).transpose(1, 2)
        tuned.append(u)
        logits.append(attend(u))
    u, g = torch.stack(tuned, 1), torch.stack(logits, 1)  # [B, L, H, T]
    w = torch.exp(g) / torch.exp(g).sum(dim=1, keepdim=True)
    expected = (w * u).sum(dim=1) / (1 + torch.exp(-g.sum(dim=1)))
    assert torch.allclose(weights, w, atol=1e-6) and torch.allclose(out, expected, atol=1e-5)


def test_every_tuner_and_attention_parameter_gets_gradient():
    torch.manual_seed(0)
    tuner = AttentiveFeatureTuner(48, 2).train()
    out = tuner(_states(layers=2))
    (out ** 2).mean().backward()
    for name, p in tuner.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_tuner_noise_only_in_training():
    torch.manual_seed(0)
    tuner = AttentiveFeatureTuner(48, 2)
    hidden = _states(layers=2)
    assert not torch.equal(tuner.train()(hidden), tuner(hidden))
    assert torch.equal(tuner.eval()(hidden), tuner(hidden))


def test_weighted_sum_backend_uses_unnormalised_weights_then_pools():
    torch.manual_seed(0)
    backend = SpeakerBackend(48, 3, 16, 'weighted_sum').eval()
    weights = backend.aggregation.weights
    assert weights.shape == (3,) and bool(((weights >= 0) & (weights < 1)).all())
    hidden = _states()
    summed = sum(weights[i] * hidden[:, i] for i in range(3))  # [B, T, H]
    pooled = torch.cat([summed.mean(1), summed.std(1)], dim=1)  # [B, 2H]
    expected = backend.norm(backend.embedding(pooled))
    assert torch.allclose(backend(hidden), expected, atol=1e-5)


def test_tuner_backend_drops_state_zero():
    torch.manual_seed(0)
    backend = SpeakerBackend(48, 3, 16, 'tuner').eval()
    hidden = _states()
    changed = hidden.clone()
    changed[:, 0] += 10.0
    assert backend(hidden).shape == (3, 16)
    assert torch.equal(backend(hidden), backend(changed))
    assert not torch.equal(backend(hidden), backend(hidden.flip(1)))


def test_statistics_pooling_is_mean_and_unbiased_std_over_frames():
    features = torch.tensor([[[1.0, 3.0, 5.0], [2.0, 2.0, 2.0]]], requires_grad=True)  # [B=1, H=2, T=3]
    pooled = statistics_pooling(features)
    assert torch.equal(pooled, torch.tensor([[3.0, 2.0, 2.0, 0.0]]))  # std of 1, 3, 5: sqrt(8 / (3 - 1)) = 2
    assert torch.equal(pooled[:, 2:], features.std(dim=-1))
    pooled[:, 2:].sum().backward()  # a constant channel (std 0) gets a zero gradient, not NaN
    assert torch.equal(features.grad, torch.tensor([[[-0.5, 0.0, 0.5], [0.0, 0.0, 0.0]]]))
    with pytest.raises(ValueError, match='statistics_pooling: .* at least 2 frames'):
        statistics_pooling(torch.ones(2, 4, 1))


def test_backend_errors():
    with pytest.raises(ValueError, match='aggregation'):
        SpeakerBackend(48, 3, 16, 'mean')
    with pytest.raises(ValueError, match=r'\[B, 3, T, H\]'):
        SpeakerBackend(48, 3, 16, 'tuner')(_states(layers=2))
