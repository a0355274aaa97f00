"""Seeding and RNG state capture, so a run is reproducible and a resumed run continues exactly."""
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
    """Every global RNG state this process draws from (LayerDrop, dropout, masks, noise)."""
    state = {'python': random.getstate(), 'numpy': np.random.get_state(), 'torch': torch.get_rng_state()}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what get_rng_state captured."""
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
