"""The self-supervised speech model families the teacher and the student support."""
from __future__ import annotations

from dataclasses import dataclass

from transformers import (HubertConfig, HubertModel, PretrainedConfig, Wav2Vec2Config, Wav2Vec2Model, WavLMConfig,
                          WavLMModel)


@dataclass(frozen=True)
class Family:
    """What differs between families: their classes, and whether layer 0 makes a relative position bias."""

    config_class: type
    model_class: type
    relative_position_bias: bool  # WavLM: layer 0 computes a bias that every later layer reuses


FAMILIES = {
    'hubert': Family(HubertConfig, HubertModel, relative_position_bias=False),
    'wav2vec2': Family(Wav2Vec2Config, Wav2Vec2Model, relative_position_bias=False),
    'wavlm': Family(WavLMConfig, WavLMModel, relative_position_bias=True),
}


def family_of(config: PretrainedConfig) -> Family:
    """The Family of a transformers config, by its model_type; a clear error for unsupported models."""
    model_type = getattr(config, 'model_type', None)
    if model_type not in FAMILIES:
        raise ValueError(f"huggingface_url: model type {model_type!r} is not supported; expected a checkpoint of "
                         f"one of {sorted(FAMILIES)} (HuBERT, wav2vec 2.0, WavLM)")
    return FAMILIES[model_type]


def layer_norm_style(config: PretrainedConfig) -> str:
    """'pre' for the stable-layer-norm (pre-LN) variants, 'post' for the base (post-LN) ones."""
    return 'pre' if config.do_stable_layer_norm else 'post'
