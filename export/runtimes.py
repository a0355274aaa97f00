"""The runtimes an export runs on, chosen by name: 'torch' (export.json + model.safetensors through PyTorch) or
'onnx' (model.onnx + model.onnx.json through onnxruntime's CPU provider). Both give a SpeakerRuntime."""
from __future__ import annotations

from typing import Callable

import torch

from export.model import ExportError, SpeakerRuntime
from export.onnx_runtime import load_onnx
from export.store import load_exported


def _torch(path: str, device: torch.device) -> SpeakerRuntime:
    return load_exported(path, device)


def _onnx(path: str, device: torch.device) -> SpeakerRuntime:
    if device.type != 'cpu':
        raise ExportError(f"device {str(device)!r}: runtime onnx runs on the CPU (onnxruntime's CPU provider); use "
                          f"device cpu, or runtime torch on {device.type}")
    return load_onnx(path)


RUNTIMES: dict[str, Callable[[str, torch.device], SpeakerRuntime]] = {'torch': _torch, 'onnx': _onnx}


def resolve_device(name: str | torch.device | None, runtime: str) -> torch.device:
    """The torch device named (None: CUDA when this machine has it and the runtime is torch, else the CPU)."""
    if runtime not in RUNTIMES:
        raise ExportError(f"runtime {runtime!r}: expected one of {sorted(RUNTIMES)}")
    if name is None:
        return torch.device('cuda' if runtime == 'torch' and torch.cuda.is_available() else 'cpu')
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ExportError(f"device {name!r}: not a torch device ({error}); use cpu or cuda") from error
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ExportError(f"device {name!r}: CUDA is not available on this machine; use cpu")
    return device


def load_runtime(path: str, runtime: str = 'torch', device: str | torch.device | None = None) -> SpeakerRuntime:
    """Load the export at `path` with `runtime` ('torch' or 'onnx') on `device` (None: see resolve_device)."""
    return RUNTIMES[runtime](path, resolve_device(device, runtime))
