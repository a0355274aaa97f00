"""Stable-layer-norm (pre-LN) students as released: the adapter reads the raw residual, the last state is normed."""
import torch
import torch.nn.functional as F

from helpers_models import stable_wav2vec2, waveforms
from models.student import Student
from models.teacher import Teacher


def test_teacher_last_state_is_last_hidden_state_after_the_encoder_norm():
    model = stable_wav2vec2()
    wav = waveforms(2)
    output = model(wav, output_hidden_states=True)
    raw = output.hidden_states  # transformers 5.x: the last entry is the last layer's output, before the norm
    assert (output.last_hidden_state - model.encoder.layer_norm(raw[-1])).abs().max() < 1e-6
    assert (output.last_hidden_state - raw[-1]).abs().max() > 0.1
    states = Teacher(model)(wav)  # [B, 4, T, H]
    assert all(torch.equal(states[:, i], raw[i]) for i in range(3))
    assert torch.equal(states[:, 3], output.last_hidden_state)


def test_adapter_reads_the_raw_residual_and_the_ffn_its_layer_norm():
    model = stable_wav2vec2()
    student = Student(model, 2, [0, 1], adapter_size=8, init='teacher').eval()
    seen = {}
    block = student.layers[1]
    block.adapter.register_forward_hook(lambda module, args, out: seen.update(adapter_in=args[0], adapter_out=out))
    block.layer.feed_forward.register_forward_hook(lambda module, args, out: seen.update(ffn_in=args[0], ffn_out=out))
    wav, num_kd = waveforms(4), 1
    states = student(wav, num_kd=num_kd)  # [4, 3, T, H]
    layer, x = block.layer, states[:, 1]  # the input of layer 1 (not the last state, so not normed)
    with torch.no_grad():
        attended, _ = layer.attention(layer.layer_norm(x))
        h = x + attended  # [4, T, H] the residual after attention (eval: no dropout)
    assert (seen['adapter_in'] - h[num_kd:]).abs().max() < 1e-5
    assert (seen['ffn_in'] - layer.final_layer_norm(h)).abs().max() < 1e-5
    assert (seen['adapter_in'] - layer.final_layer_norm(h)[num_kd:]).abs().max() > 0.1  # the two inputs differ
    out = h + seen['ffn_out']  # [4, T, H]
    out[num_kd:] += seen['adapter_out']
    norm = student.output_norm  # the teacher's encoder layer norm ('teacher' init)
    expected = F.layer_norm(out, (32,), norm.weight, norm.bias, model.config.layer_norm_eps)
    assert (states[:, 2] - expected).abs().max() < 1e-5


def test_last_state_is_layer_normed_in_release_mode_and_under_layerdrop():
    model = stable_wav2vec2()
    torch.manual_seed(0)
    student = Student(model, 2, [0, 1], adapter_size=8).eval()  # release: a fresh encoder norm, weight 1, bias 0
    outputs = []
    student.layers[1].register_forward_hook(lambda module, args, out: outputs.append(out[0]))
    states = student(waveforms(3), num_kd=1)  # [3, 3, T, H]
    last = states[:, -1]
    assert (last.mean(dim=-1)).abs().max() < 1e-5 and (last.var(dim=-1, unbiased=False) - 1).abs().max() < 1e-3
    assert (last - F.layer_norm(outputs[0], (32,), eps=model.config.layer_norm_eps)).abs().max() < 1e-5
    assert states[:, 1].var(dim=-1, unbiased=False).sub(1).abs().max() > 0.1  # earlier states are raw
    dropped = Student(model, 2, [0, 1], layerdrop=1.0, init='teacher').train()  # both layers skipped
    states = dropped(waveforms(3))
    assert torch.equal(states[:, 1], states[:, 0])
    assert torch.equal(states[:, 2], model.encoder.layer_norm(states[:, 0]))
