"""Seeding and RNG state capture, so a run is reproducible and a resumed run continues exactly.

An RNG state is kept as plain values (bytes, ints, lists), not tensors or NumPy arrays: a checkpoint holding it loads
with torch.load(weights_only=True), and it restores on the CPU whatever device a checkpoint's tensors are mapped to.
"""
from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(*keys: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) from a tuple of integers, e.g. (seed, epoch, rank)."""
    seed = int(np.random.SeedSequence(list(keys)).generate_state(1)[0])
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def get_rng_state() -> dict:
    """Every global RNG state this process draws from (LayerDrop, dropout, masks, noise), as plain values. Of CUDA
    only the current device's state: the one this rank draws from (a resume with fewer visible GPUs restores it)."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    state = {'python': random.getstate(), 'numpy': (kind, keys.tolist(), position, has_gauss, gauss),
             'torch': torch.get_rng_state().numpy().tobytes()}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state().numpy().tobytes()
    return state


def _byte_tensor(data: bytes) -> torch.Tensor:
    """A CPU ByteTensor holding `data`, what torch's set_rng_state functions take."""
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def set_rng_state(state: dict) -> None:
    """Restore what get_rng_state captured (on the CPU; the CUDA state into the current device)."""
    random.setstate(state['python'])
    kind, keys, position, has_gauss, gauss = state['numpy']
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(_byte_tensor(state['torch']))
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(_byte_tensor(state['cuda']))


def plain_rng_state(legacy: dict) -> dict:
    """get_rng_state's form of a state captured before RNG states were plain values (a NumPy array, CPU tensors, and
    one CUDA state per visible GPU, of which the current device's is kept when it exists)."""
    kind, keys, position, has_gauss, gauss = legacy['numpy']
    state = {'python': legacy['python'], 'numpy': (kind, np.asarray(keys).tolist(), position, has_gauss, gauss),
             'torch': legacy['torch'].cpu().numpy().tobytes()}
    cuda = legacy.get('cuda', [])
    if torch.cuda.is_available() and torch.cuda.current_device() < len(cuda):
        state['cuda'] = cuda[torch.cuda.current_device()].cpu().numpy().tobytes()
    return state
