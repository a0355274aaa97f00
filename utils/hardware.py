"""What a run computes on and how precisely: the numeric settings every rank makes before its first GPU operation
(TF32, deterministic algorithms), the start line that says so, and the check that a machine whose GPUs torch cannot
use does not train on the CPU without a word.

TF32 (`tf32`): Ampere and later GPUs multiply fp32 matrices and convolutions on tensor cores with a 10-bit mantissa.
torch's defaults differ between the two (matmul off, cuDNN on); the release ran in NGC's 23.08 container, which turns
both on. The key sets both explicitly. Deterministic algorithms (`deterministic`): cuDNN and some CUDA kernels (e.g.
the backward of attention and of index operations) accumulate in an order that changes from run to run; on, torch
picks deterministic kernels (or stops naming the operation that has none) and cuBLAS gets the fixed workspace it needs
for reproducible results.
"""
from __future__ import annotations

import glob
import os
from contextlib import nullcontext

import torch

CUBLAS_WORKSPACE = ':4096:8'  # CUBLAS_WORKSPACE_CONFIG for deterministic cuBLAS results (CUDA >= 10.2)
GPU_DEVICE_NODES = '/dev/nvidia[0-9]*'  # one per GPU the NVIDIA driver exposes on Linux
HIDDEN = ('', '-1', 'none', 'NoDevFiles')  # CUDA_VISIBLE_DEVICES values that hide every GPU on purpose


def apply_numerics(tf32: bool, deterministic: bool) -> None:
    """Set TF32 for matmul and cuDNN, and deterministic algorithms on or off (off: torch's defaults), in this process.
    Every rank calls it before its first CUDA operation: cuBLAS reads CUBLAS_WORKSPACE_CONFIG when it starts (a value
    the user set is kept)."""
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    if deterministic:
        os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = False  # its kernel choice depends on timing: never reproducible


def precision_text(device_type: str, tf32: bool, amp: bool) -> str:
    """The precision a run on `device_type` computes in, in words: bf16 (amp on a GPU), TF32 or fp32."""
    if device_type != 'cuda':
        return 'fp32' + (' (amp=True applies to GPUs only)' if amp else '')
    matrices = 'TF32 (matmul + cuDNN)' if tf32 else 'fp32 (TF32 off)'
    if amp:
        return f'bf16 autocast in the training step, {matrices} elsewhere (losses, validation, evaluation)'
    return matrices


def start_line(devices: list[str], names: list[str], backend: str | None, tf32: bool, amp: bool,
               deterministic: bool, timeout_min: float) -> str:
    """The line every run starts with: each rank's device (`names`: GPU model names, or [] on the CPU), the world size,
    the process-group backend (None: one process, no group) with its timeout, the precision and whether algorithms
    are deterministic. (nccl's watchdog reports an expired timeout in its own words: this line names the key.)"""
    where = ', '.join(devices) if len(set(devices)) > 1 else devices[0]
    if names:
        where += f" ({', '.join(sorted(set(names)))})"
    group = (f'{backend} process group (process_group_timeout_min={timeout_min:g})' if backend
             else 'no process group')
    processes = f"{len(devices)} process{'es' if len(devices) > 1 else ''}"
    precision = precision_text(devices[0].split(':')[0], tf32, amp)
    switch = 'on' if deterministic else 'off'
    return f'hardware: {processes} on {where}, {group} | precision: {precision} | deterministic: {switch}'


def unusable_cuda(device_nodes: list[str], visible_devices: str | None, available: bool, cuda_build: str | None) -> str:
    """Why GPUs this machine has cannot be used by torch ('' when they can, or when there are none or all are hidden on
    purpose with CUDA_VISIBLE_DEVICES): `device_nodes` the GPU device files present, `available` what
    torch.cuda.is_available() says, `cuda_build` torch.version.cuda (None for a CPU-only build)."""
    if available or not device_nodes or (visible_devices is not None and visible_devices.strip() in HIDDEN):
        return ''
    if cuda_build is None:
        return (f'this machine has GPUs ({", ".join(device_nodes)}) but torch {torch.__version__} is a CPU-only build; '
                f'install a CUDA build of torch')
    return (f'this machine has GPUs ({", ".join(device_nodes)}) but torch {torch.__version__} (CUDA {cuda_build}) '
            f'cannot use them: torch.cuda.is_available() is False (usually an NVIDIA driver older than that CUDA '
            f'version; nvidia-smi shows the driver)')


def machine_cuda_problem() -> str:
    """unusable_cuda for this machine."""
    return unusable_cuda(sorted(glob.glob(GPU_DEVICE_NODES)), os.environ.get('CUDA_VISIBLE_DEVICES'),
                         torch.cuda.is_available(), torch.version.cuda)



def fp32_region(device: torch.device):
    """A context in which autocast is off on `device` (also inside an enclosing autocast), so what runs there computes
    in the precision of its inputs: the losses and every embedding for evaluation run in fp32 with amp=True. A
    device type without autocast (meta) needs nothing switched off."""
    if torch.amp.is_autocast_available(device.type):
        return torch.autocast(device.type, enabled=False)
    return nullcontext()


def upcast(tensor: torch.Tensor) -> torch.Tensor:
    """`tensor` in fp32 when it is in a 16-bit float type (what autocast produced), otherwise as it is (fp32, and
    float64 where a test computes in double)."""
    return tensor.float() if tensor.dtype in (torch.bfloat16, torch.float16) else tensor
