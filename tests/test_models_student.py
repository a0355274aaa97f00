"""Student: copies the teacher exactly, keeps L+1 states under LayerDrop, training-mode behaviour and overrides."""
import numpy as np
import pytest
import torch
from transformers import Wav2Vec2Config, Wav2Vec2Model

from helpers_models import TINY, tiny_ssl_model, waveforms
from models.spec_augment import SpecAugment
from models.student import Student
from models.teacher import Teacher


def _stable_wav2vec2():
    """A tiny stable-layer-norm (pre-LN) wav2vec 2.0, the layout of the large checkpoints."""
    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
                            conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                            do_stable_layer_norm=True, feat_extract_norm='layer')
    torch.manual_seed(3)
    return Wav2Vec2Model(config).eval()


MODELS = {'hubert': lambda: tiny_ssl_model('hubert'), 'wav2vec2': lambda: tiny_ssl_model('wav2vec2'),
          'wavlm': lambda: tiny_ssl_model('wavlm'), 'wav2vec2-stable': _stable_wav2vec2}


@pytest.mark.parametrize('name', sorted(MODELS))
@pytest.mark.parametrize('num_layers', [1, 2])
def test_student_reproduces_teacher_hidden_states(name, num_layers):
    model = MODELS[name]()
    wav = waveforms(3)
    expected = Teacher(model)(wav)  # [B, 4, T, H]
    student = Student(model, num_layers, list(range(num_layers))).eval()
    got = student(wav, num_kd=1)  # [B, num_layers + 1, T, H]
    assert got.shape == (3, num_layers + 1) + expected.shape[2:]
    assert (got - expected[:, :num_layers + 1]).abs().max() < 1e-5


def test_layer_k_is_copied_from_the_chosen_teacher_layer():
    model = tiny_ssl_model('hubert').eval()
    wav = waveforms(2)
    states = Teacher(model)(wav)
    student = Student(model, 2, [2, 0]).eval()
    got = student(wav)
    with torch.no_grad():
        first = model.encoder.layers[2](states[:, 0])  # the teacher's own layer 2 on state 0
        second = model.encoder.layers[0](first)
    assert (got[:, 1] - first).abs().max() < 1e-5 and (got[:, 2] - second).abs().max() < 1e-5


def test_wavlm_student_keeps_the_relative_position_embedding_of_layer_0():
    model = tiny_ssl_model('wavlm')
    student = Student(model, 2, [2, 1])
    attention = student.layers[0].layer.attention
    assert torch.equal(attention.rel_attn_embed.weight, model.encoder.layers[0].attention.rel_attn_embed.weight)
    assert torch.equal(attention.q_proj.weight, model.encoder.layers[2].attention.q_proj.weight)
    assert student.eval()(waveforms(2)).shape == (2, 3, 12, 32)


@pytest.mark.parametrize('idx', [[0], [0, 3], [-1, 0], [0, 1, 2]])
def test_bad_init_teacher_idx_names_the_key(idx):
    with pytest.raises(ValueError, match='init_teacher_idx'):
        Student(tiny_ssl_model(), 2, idx)


@pytest.mark.parametrize('family', ['hubert', 'wavlm'])
def test_layerdrop_one_still_yields_every_state(family):
    model = tiny_ssl_model(family)
    student = Student(model, 3, [0, 1, 2], layerdrop=1.0).train()
    states = student(waveforms(2))
    assert states.shape[1] == 4
    kept = 1 if family == 'wavlm' else 0  # WavLM's layer 0 makes the position bias and is never dropped
    for index in range(kept + 1, 4):
        assert torch.equal(states[:, index], states[:, kept])
    if family == 'hubert':
        assert not torch.equal(states[:, 0], student.eval()(waveforms(2))[:, 0])  # it was a training forward
        model.config.layerdrop = 1.0  # the trap: the stock encoder records states of executed layers only
        assert len(model.train()(waveforms(2), output_hidden_states=True).hidden_states) < 4


def test_zero_rates_make_training_mode_equal_the_teacher():
    model = tiny_ssl_model()
    wav = waveforms(2)
    expected = Teacher(model)(wav)
    plain = Student(model, 2, [0, 1], dropout=0.0, layerdrop=0.0, mask_time_prob=0.0).train()
    assert plain.spec_augment.masked_spec_embed is None
    assert (plain(wav) - expected[:, :3]).abs().max() < 1e-5
    default = Student(model, 2, [0, 1], layerdrop=0.0).train()  # teacher config: dropout 0.1, masking 0.05
    assert default.config.hidden_dropout == 0.1 and default.config.mask_time_prob == 0.05
    assert (default(wav) - expected[:, :3]).abs().max() > 1e-3
    with pytest.raises(ValueError, match='student_layerdrop'):
        Student(model, 2, [0, 1], layerdrop=1.5)


def test_spec_augment_masks_time_spans_in_training_only():
    config = tiny_ssl_model().config
    config.mask_time_prob, config.mask_time_length = 0.5, 3
    embed = torch.randn(TINY['hidden_size'])
    augment = SpecAugment(config, embed)
    hidden = torch.randn(4, 40, TINY['hidden_size'])
    np.random.seed(0)
    masked = augment.train()(hidden)
    replaced = (masked == embed).all(dim=-1)  # [B, T]
    untouched = (masked == hidden).all(dim=-1)
    assert replaced.any(dim=1).all() and bool((replaced ^ untouched).all())
    assert replaced.float().mean() < 0.5 + 1e-6
    assert augment.eval()(hidden) is hidden
