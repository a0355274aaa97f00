"""bench/gpu.py runs end to end on a machine without GPU: it says it fell back, and prints every table."""
import pytest
import torch

from bench import gpu


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the CPU fallback')
def test_gpu_script_falls_back_to_cpu_and_prints_its_tables(capsys):
    gpu.main(['--model', 'tiny', '--device', 'cpu', '--threads', '1'])
    out = capsys.readouterr().out
    assert 'NO GPU VISIBLE: CPU FALLBACK' in out
    assert '| gloo ' in out and '| ok ' in out  # the one-process group all_reduce gave the right value
    for title in ('os_kdft2 training step on cpu', 'speed-up over "eager, fp32"', 'speaker embedding on cpu',
                  'parameters'):
        assert title in out
    for variant in ('eager, fp32', 'sdpa, fp32'):
        assert f'| {variant} ' in out
