"""GlooSyncBatchNorm: two gloo processes normalise with the global batch, like BatchNorm1d on one process."""
import pytest
import torch
import torch.nn as nn

from arguments import SYSTEM_ARGS
from trainer.distributed import GlooSyncBatchNorm, convert_sync_batchnorm, launch

pytestmark = pytest.mark.slow  # two gloo ranks


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 6, 5, generator=g) * 3 + 1, torch.randn(8, 6, 5, generator=g)  # x, upstream grad


def _reference():
    x, up = _data()
    bn = nn.BatchNorm1d(6)
    x = x.clone().requires_grad_(True)
    y = bn(x)
    (y * up).sum().backward()
    return y.detach(), x.grad, bn.running_mean, bn.running_var


def _worker(env, out_dir):
    x, up = _data()
    half = slice(4 * env.rank, 4 * env.rank + 4)
    bn = convert_sync_batchnorm(nn.Sequential(nn.BatchNorm1d(6)), env.device)[0]
    assert isinstance(bn, GlooSyncBatchNorm)
    xr = x[half].clone().requires_grad_(True)
    y = bn(xr)
    (y * up[half]).sum().backward()
    torch.save({'y': y.detach(), 'grad': xr.grad, 'mean': bn.running_mean, 'var': bn.running_var},
               f'{out_dir}/rank{env.rank}.pt')


def test_two_gloo_processes_match_global_batchnorm(tmp_path):
    launch(_worker, str(tmp_path), usable_gpu='cpu', cpu_processes=2,
           timeout_min=SYSTEM_ARGS['process_group_timeout_min'])
    ranks = [torch.load(tmp_path / f'rank{r}.pt') for r in range(2)]
    y, grad, mean, var = _reference()
    torch.testing.assert_close(torch.cat([r['y'] for r in ranks]), y, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(torch.cat([r['grad'] for r in ranks]), grad, atol=1e-5, rtol=1e-5)
    for r in ranks:
        torch.testing.assert_close(r['mean'], mean, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(r['var'], var, atol=1e-5, rtol=1e-5)
