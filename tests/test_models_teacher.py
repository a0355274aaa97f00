"""Teacher loading (local directory like a hub id, clear offline errors), freezing, and use as a loss target."""

import huggingface_hub.constants
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers_models import tiny_ssl_model, tiny_teacher_dir, waveforms
from models.student import Student
from models.teacher import Teacher, load_ssl_model, teacher_hidden_size, teacher_num_layers


@pytest.mark.parametrize('family', ['hubert', 'wav2vec2', 'wavlm'])
def test_tiny_checkpoint_loads_back_with_its_weights(family):
    model = load_ssl_model(tiny_teacher_dir(family))
    assert model.config.model_type == family
    assert (teacher_num_layers(model), teacher_hidden_size(model)) == (3, 32)
    again = load_ssl_model(tiny_teacher_dir(family))
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    frames = model(waveforms(1, 3200)).last_hidden_state.shape[1]
    assert frames == 9  # 320x downsampling: (3200 - 400) / 320 + 1


def test_unknown_hub_id_offline_gives_clear_error(monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    with pytest.raises(OSError) as error:
        load_ssl_model('no-such-org/no-such-ssl-model')
    message = str(error.value)
    assert 'no-such-org/no-such-ssl-model' in message and 'huggingface_url=/path/to/dir' in message
    assert 'HF_HUB_OFFLINE' in message


def test_local_directory_without_config_gives_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match='no config.json'):
        load_ssl_model(str(tmp_path))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_ssl_model(str(tmp_path / 'missing'))
    (tmp_path / 'config.json').write_text('{"model_type": "hubert"}')
    with pytest.raises(OSError, match='could not load the checkpoint in directory .*huggingface_url=/path/to/dir'):
        load_ssl_model(str(tmp_path))


def test_teacher_is_frozen_and_stays_in_eval_mode():
    parent = nn.ModuleDict({'teacher': Teacher(tiny_ssl_model()), 'head': nn.Linear(2, 2)})
    parent.train()
    teacher = parent['teacher']
    assert parent['head'].training
    assert not any(module.training for module in teacher.modules())
    assert not any(p.requires_grad for p in teacher.parameters())
    wav = waveforms(2)
    assert torch.equal(teacher(wav), teacher(wav))  # eval: no dropout, LayerDrop or masking


def test_teacher_states_are_a_loss_target_for_the_student():
    model = tiny_ssl_model()
    teacher, student = Teacher(model), Student(model, 2, [0, 1], layerdrop=0.0)  # every layer runs
    wav = waveforms(2)
    target = teacher(wav)  # [B, L+1, T, H]
    assert target.shape == (2, 4, 12, 32) and not target.is_inference() and not target.requires_grad
    predicted = student(wav)[:, -1]
    loss = F.mse_loss(predicted, target[:, 3]) - F.cosine_similarity(predicted, target[:, 3], dim=-1).sum()
    loss.backward()  # mse saves the target for backward: an inference tensor would fail here
    assert all(p.grad is not None for p in student.layers[-1].parameters())
    with torch.inference_mode():
        inference_target = torch.stack(model(wav, output_hidden_states=True).hidden_states, dim=1)
    with pytest.raises(RuntimeError, match='[Ii]nference tensor'):
        F.mse_loss(student(wav)[:, -1], inference_target[:, 3]).backward()
