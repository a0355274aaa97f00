"""Export of the student + back-end: same embeddings as in training, no teacher weights, never overwrites."""
from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file

from export import ExportError, describe_model, export_from_checkpoint, export_model, load_exported
from helpers_export import NUM_SEG, SEG_SIZE, training_core
from trainer.checkpoint import save_atomic


def _waveforms(batch: int, samples: int, seed: int) -> torch.Tensor:
    return 0.1 * torch.randn(batch, samples, generator=torch.Generator().manual_seed(seed))  # [B, S]


@pytest.mark.parametrize('method, family, aggregation, adapters', [('os_kdft2', 'hubert', 'tuner', False),
                                                                   ('os_kdft', 'hubert', 'weighted_sum', True),
                                                                   ('os_kdft2', 'wavlm', 'tuner', False)])
def test_exported_embeddings_equal_the_training_models(tmp_path, method, family, aggregation, adapters):
    core = training_core(method, family=family)
    out = export_model(core, str(tmp_path / 'export'), threshold=0.25, metadata={'method': method},
                       seg_size=SEG_SIZE, num_seg=NUM_SEG)
    model = load_exported(out)
    assert model.spec['aggregation'] == aggregation and model.spec['student_config']['model_type'] == family
    assert (model.spec['adapter_size'] == 8) is adapters
    assert model.threshold == 0.25 and model.metadata == {'method': method}
    wav = _waveforms(3, 6400, seed=1)
    with torch.no_grad():
        expected = core.embed(wav)  # [3, E]
    got = model.embed(wav)
    assert got.shape == (3, 16)
    assert torch.allclose(got, expected, atol=1e-5, rtol=0)
    model.train()  # an export is inference-only: asking for training mode changes nothing
    assert not model.training and torch.allclose(model.embed(wav), expected, atol=1e-5, rtol=0)


def test_os_kdft_export_runs_its_adapters(tmp_path):
    core = training_core('os_kdft')
    model = load_exported(export_model(core, str(tmp_path / 'e'), 0.0, {}, SEG_SIZE, NUM_SEG))
    wav = _waveforms(2, 4800, seed=2)
    with_adapters = model.embed(wav)
    with torch.no_grad():
        for param in model.student.adapter_parameters():
            param.zero_()
    assert len(model.student.adapter_parameters()) == 8  # 2 layers x (down, up) x (weight, bias)
    assert (with_adapters - model.embed(wav)).abs().max() > 1e-3


def test_export_holds_no_teacher_weights(tmp_path):
    core = training_core('os_kdft2')
    out = export_model(core, str(tmp_path / 'e'), 0.1, {}, SEG_SIZE, NUM_SEG)
    model = load_exported(out)
    count = lambda module: sum(p.numel() for p in module.parameters())
    assert count(model) == count(core.student) + count(core.backend)
    assert count(model) < count(core)  # the KD heads and the speaker classifier stay behind
    stored = load_file(os.path.join(out, 'model.safetensors'))
    expected = {k: v for k, v in core.state_dict().items() if k.startswith(('student.', 'backend.'))}
    assert set(stored) == set(expected)
    assert all(torch.equal(stored[k], expected[k]) for k in stored)
    config = json.load(open(os.path.join(out, 'export.json')))
    assert config['model']['student_config']['num_hidden_layers'] == 2  # the tiny teacher has 3


def test_export_never_overwrites_a_directory(tmp_path):
    core = training_core('os_kdft2')
    target = tmp_path / 'existing'
    target.mkdir()
    (target / 'keep.txt').write_text('mine')
    with pytest.raises(ExportError, match='existing already exists'):
        export_model(core, str(target), 0.1, {}, SEG_SIZE, NUM_SEG)
    assert os.listdir(target) == ['keep.txt']
    assert os.listdir(tmp_path) == ['existing']  # no temporary folder left behind


def test_load_rejects_a_directory_that_is_not_an_export(tmp_path):
    with pytest.raises(ExportError, match=f'{tmp_path}.* no export.json'):
        load_exported(str(tmp_path))
    (tmp_path / 'export.json').write_text('{"format": "something else"}')
    with pytest.raises(ExportError, match='export.json is not an export description'):
        load_exported(str(tmp_path))
    with pytest.raises(ExportError, match='missing.* is not a directory'):
        load_exported(str(tmp_path / 'missing'))


def test_load_rejects_an_export_without_weights(tmp_path):
    out = export_model(training_core('os_kdft2'), str(tmp_path / 'e'), 0.1, {}, SEG_SIZE, NUM_SEG)
    os.remove(os.path.join(out, 'model.safetensors'))
    with pytest.raises(ExportError, match='no model.safetensors'):
        load_exported(out)


def test_export_from_a_self_describing_checkpoint(tmp_path):
    core = training_core('os_kdft')
    ckpt = str(tmp_path / 'checkpoint_best.pt')
    save_atomic({'model': core.state_dict(), 'export': describe_model(core, SEG_SIZE, NUM_SEG),
                 'state': {'epoch': 7, 'best_epoch': 5, 'best_eer': 12.5}}, ckpt)
    model = load_exported(export_from_checkpoint(ckpt, str(tmp_path / 'e'), threshold=0.4))
    wav = _waveforms(2, 5000, seed=3)
    with torch.no_grad():
        assert torch.allclose(model.embed(wav), core.embed(wav), atol=1e-5, rtol=0)
    assert model.threshold == 0.4 and (model.seg_size, model.num_seg) == (SEG_SIZE, NUM_SEG)
    assert model.metadata['best_epoch'] == 5 and model.metadata['source_checkpoint'] == ckpt


def test_checkpoint_without_export_entry_is_named(tmp_path):
    core = training_core('os_kdft2')
    ckpt = str(tmp_path / 'old.pt')
    save_atomic({'model': core.state_dict()}, ckpt)
    with pytest.raises(ExportError, match=f"checkpoint {ckpt} has no 'model' and 'export' entries"):
        export_from_checkpoint(ckpt, str(tmp_path / 'e'), 0.1)
    assert not os.path.exists(tmp_path / 'e')
