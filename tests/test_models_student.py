"""Student: initialisation modes, the teacher's states in 'teacher' mode, L+1 states under LayerDrop, overrides."""
import numpy as np
import pytest
import torch
from torch import nn
from transformers import AutoModel

from arguments import check_teacher_args, get_args

from helpers_models import TINY, stable_wav2vec2, tiny_ssl_model, waveforms
from models.spec_augment import SpecAugment
from models.student import Student, student_config
from models.teacher import Teacher

MODELS = {'hubert': lambda: tiny_ssl_model('hubert'), 'wav2vec2': lambda: tiny_ssl_model('wav2vec2'),
          'wavlm': lambda: tiny_ssl_model('wavlm'), 'wav2vec2-stable': stable_wav2vec2}


def _encoder_norm(module: nn.Module) -> nn.Module:
    """The encoder layer norm a Student uses (on state 0 for post-LN, on the last state for stable-layer-norm)."""
    return next(norm for norm in (module.input_norm, module.output_norm) if not isinstance(norm, nn.Identity))


def _fresh_parts(model: nn.Module) -> dict[str, nn.Module | torch.Tensor]:
    """The parts 'release' mode keeps fresh, of a transformers model."""
    return {'pos_conv': model.encoder.pos_conv_embed, 'layer_norm': model.encoder.layer_norm,
            'mask': model.masked_spec_embed}


def _student_parts(student: Student) -> dict[str, nn.Module | torch.Tensor]:
    """The same parts, of a Student."""
    return {'pos_conv': student.pos_conv_embed, 'layer_norm': _encoder_norm(student),
            'mask': student.spec_augment.masked_spec_embed}


def _same(a: nn.Module | torch.Tensor, b: nn.Module | torch.Tensor) -> bool:
    """Every weight equal (a module's state dict, or one tensor)."""
    if isinstance(a, torch.Tensor):
        return torch.equal(a, b)
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize('name', sorted(MODELS))
def test_release_init_copies_cnn_projection_and_layers_and_keeps_the_rest_fresh(name):
    model = MODELS[name]()
    with torch.no_grad():  # a random teacher's encoder layer norm is still ones / zeros, like a fresh one
        model.encoder.layer_norm.weight.normal_(1.0, 0.1)
        model.encoder.layer_norm.bias.normal_(0.0, 0.1)
    torch.manual_seed(11)
    student = Student(model, 2, [2, 0])  # student_init='release', the default
    torch.manual_seed(11)
    fresh = AutoModel.from_config(student_config(model.config, 2))
    assert _same(student.feature_extractor, model.feature_extractor)
    assert _same(student.feature_projection, model.feature_projection)
    for k, source in enumerate([2, 0]):
        own, theirs = student.layers[k].layer.state_dict(), model.encoder.layers[source].state_dict()
        bias_table = {key for key in own if 'rel_attn_embed' in key}  # WavLM: from the teacher's layer 0
        assert own.keys() - bias_table <= theirs.keys()
        assert all(torch.equal(own[key], theirs[key]) for key in own.keys() - bias_table)
    for part, own in _student_parts(student).items():
        assert _same(own, _fresh_parts(fresh)[part]), part
        assert not _same(own, _fresh_parts(model)[part]), part


@pytest.mark.parametrize('name', ['hubert', 'wav2vec2-stable'])
def test_teacher_init_copies_pos_conv_layer_norm_and_mask_embedding_too(name):
    model = MODELS[name]()
    with torch.no_grad():
        model.encoder.layer_norm.weight.normal_(1.0, 0.1)
    student = Student(model, 2, [0, 1], init='teacher')
    for part, own in _student_parts(student).items():
        assert _same(own, _fresh_parts(model)[part]), part


def test_unknown_init_mode_is_refused_by_the_arguments():
    with pytest.raises(SystemExit, match="argument 'student_init': got 'distil'"):
        get_args(['path_train=/d', 'student_init=distil'])


@pytest.mark.parametrize('name', sorted(MODELS))
@pytest.mark.parametrize('num_layers', [1, 2, 3])
def test_teacher_init_student_reproduces_teacher_hidden_states(name, num_layers):
    model = MODELS[name]()
    wav = waveforms(3)
    expected = Teacher(model)(wav)[:, :num_layers + 1]  # [B, num_layers + 1, T, H]
    if name == 'wav2vec2-stable' and num_layers < 3:  # a stable-LN model's last state is after the encoder norm
        expected[:, -1] = model.encoder.layer_norm(expected[:, -1])
    student = Student(model, num_layers, list(range(num_layers)), init='teacher').eval()
    got = student(wav, num_kd=1)  # [B, num_layers + 1, T, H]
    assert got.shape == expected.shape
    assert (got - expected).abs().max() < 1e-5


def test_layer_k_is_copied_from_the_chosen_teacher_layer():
    model = tiny_ssl_model('hubert').eval()
    wav = waveforms(2)
    states = Teacher(model)(wav)
    student = Student(model, 2, [2, 0], init='teacher').eval()
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
def test_bad_init_teacher_idx_is_refused_by_the_arguments(idx):
    args = get_args(['path_train=/d', f'init_teacher_idx={idx}'])
    with pytest.raises(SystemExit, match="argument 'init_teacher_idx'"):
        check_teacher_args(args, teacher_layers=3, teacher_hidden=args['student_hidden_layer_size'])
    if len(idx) != 2:  # the count is also the Student's own invariant
        with pytest.raises(ValueError, match='Student: 2 layers need as many source layer indices'):
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
    plain = Student(model, 2, [0, 1], dropout=0.0, layerdrop=0.0, mask_time_prob=0.0, init='teacher').train()
    assert plain.spec_augment.masked_spec_embed is None
    assert (plain(wav) - expected[:, :3]).abs().max() < 1e-5
    default = Student(model, 2, [0, 1], layerdrop=0.0, init='teacher').train()  # config: dropout 0.1, masking 0.05
    assert default.config.hidden_dropout == 0.1 and default.config.mask_time_prob == 0.05
    assert (default(wav) - expected[:, :3]).abs().max() > 1e-3
    with pytest.raises(SystemExit, match="argument 'student_layerdrop'"):
        get_args(['path_train=/d', 'student_layerdrop=1.5'])


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
