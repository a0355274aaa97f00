"""The frozen teacher: any HuBERT / wav2vec 2.0 / WavLM checkpoint, from the hub or a local directory."""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.utils import logging as hf_logging

from models.families import FAMILIES

LOCAL_HINT = ("to work offline, pass huggingface_url=/path/to/dir: a directory holding config.json and the weights "
              "(model.safetensors or pytorch_model.bin) as save_pretrained writes them; or pre-fill the Hugging Face "
              "cache on a connected machine and set HF_HUB_OFFLINE=1")


def _source(url: str) -> tuple[str, bool]:
    """Where from_pretrained should look, and whether that is a local directory (checked, with clear errors)."""
    local = os.path.isabs(url) or url.startswith(('.', '~')) or os.path.exists(url)
    source = os.path.expanduser(url) if local else url
    if local and not os.path.isdir(source):
        raise FileNotFoundError(f"huggingface_url: local directory {url!r} does not exist; {LOCAL_HINT}")
    if local and not os.path.isfile(os.path.join(source, 'config.json')):
        raise FileNotFoundError(f"huggingface_url: directory {url!r} has no config.json; {LOCAL_HINT}")
    return source, local


@contextlib.contextmanager
def _quiet_progress(quiet: bool) -> Iterator[None]:
    """Inside the block, no transformers / huggingface_hub progress bar when `quiet` (the bars' switch restored
    after): loading or writing a local directory takes seconds and its per-rank "Loading weights" bar tells the user
    nothing; a download from the hub keeps its bars."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    if quiet:
        hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if quiet and was_enabled:
            hf_logging.enable_progress_bar()


def _from_pretrained(auto_class, url: str):
    """auto_class.from_pretrained(url), turning a failed fetch or load into a message naming the key and the id."""
    source, local = _source(url)
    try:
        with _quiet_progress(local):
            return auto_class.from_pretrained(source)
    except (OSError, ValueError) as error:
        where = (f"could not load the checkpoint in directory {url!r}" if local else
                 f"could not fetch {url!r} from the Hugging Face hub nor find it in the local cache "
                 f"(no network, or a wrong id?)")
        raise OSError(f"huggingface_url: {where}; {LOCAL_HINT}. Cause: {error}") from error


def load_ssl_model(url: str) -> PreTrainedModel:
    """Load a speech SSL model with AutoModel.from_pretrained from a hub id or a local directory, with clear errors."""
    return _from_pretrained(AutoModel, url)


def load_ssl_config(url: str) -> PretrainedConfig:
    """The checkpoint's configuration only (no weights): enough to check arguments before anything heavy runs."""
    return _from_pretrained(AutoConfig, url)


def teacher_num_layers(model: PreTrainedModel) -> int:
    """Transformer layers of a loaded SSL model."""
    return model.config.num_hidden_layers


def teacher_hidden_size(model: PreTrainedModel) -> int:
    """Hidden (model) width of a loaded SSL model."""
    return model.config.hidden_size


class Teacher(nn.Module):
    """Frozen SSL model: forward(wav [B, S]) → all hidden states [B, L+1, T, H], always in eval mode, no graph.

    The model runs under torch.inference_mode; its hidden states are stacked outside it, so the result is an ordinary
    tensor that a loss may save for backward (an inference tensor could not be), at no extra copy. The last state is
    last_hidden_state: the same tensor for post-LN models; for stable-layer-norm ones it is after the encoder layer
    norm, which transformers 4.x (the release's) recorded as the last hidden state and 5.x no longer does.
    """

    def __init__(self, model: PreTrainedModel):
        super().__init__()
        self.model = model
        self.model.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> Teacher:
        """Stay in eval mode whatever a parent module asks: the teacher is never trained."""
        return super().train(False)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [B, S] → hidden states [B, L+1, T, H] (index 0: the input of the first transformer layer)."""
        with torch.inference_mode():
            output = self.model(wav, output_hidden_states=True)
        states = output.hidden_states[:-1] + (output.last_hidden_state,)  # L+1 × [B, T, H]
        return torch.stack(states, dim=1)  # [B, L+1, T, H], a normal tensor


def make_tiny_teacher(path: str, family: str = 'hubert', hidden_size: int = 96, num_layers: int = 4,
                      num_heads: int = 4, intermediate_size: int = 192, conv_dim: int = 64, seed: int = 1) -> str:
    """Save a random-weight model of `family` with a tiny config (320x CNN downsampling) to `path`; return `path`.

    Used by the built-in demo and by tests: load it back with load_ssl_model, exactly like a real checkpoint.
    """
    if family not in FAMILIES:
        raise ValueError(f"family: got {family!r}, expected one of {sorted(FAMILIES)}")
    if hidden_size % num_heads or hidden_size % 4:
        raise ValueError(f"hidden_size: {hidden_size} must be divisible by num_heads ({num_heads}) and by 4 "
                         f"(the positional convolution groups)")
    spec = FAMILIES[family]
    config = spec.config_class(
        hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
        intermediate_size=intermediate_size, conv_dim=(conv_dim,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2, 2, 2, 2, 2), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.model_class(config)
    with _quiet_progress(True):  # no "Writing model shards" bar for a file of a few hundred kB
        model.save_pretrained(path)
    return path
