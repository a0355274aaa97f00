"""SpecAugment of the projected features, as transformers' HuBERT / wav2vec 2.0 / WavLM apply it in training."""
from __future__ import annotations

import torch
from torch import nn
from transformers import PretrainedConfig
from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices


class SpecAugment(nn.Module):
    """Replace random time spans by a learned vector, zero random feature spans; identity in eval mode.

    Spans are drawn by transformers' own `_compute_mask_indices` (NumPy's global generator), at the rates the
    config sets, exactly as the stock model's `_mask_hidden_states` does without an attention mask.
    """

    def __init__(self, config: PretrainedConfig, masked_spec_embed: torch.Tensor | None):
        super().__init__()
        apply = getattr(config, 'apply_spec_augment', True)
        self.time_prob = config.mask_time_prob if apply else 0.0
        self.time_length = config.mask_time_length
        self.time_min_masks = config.mask_time_min_masks
        self.feature_prob = config.mask_feature_prob if apply else 0.0
        self.feature_length = config.mask_feature_length
        self.feature_min_masks = getattr(config, 'mask_feature_min_masks', 0)  # WavLM's config lacks it
        self.register_parameter('masked_spec_embed', None)  # [H] when time masking is on
        if self.time_prob > 0:
            initial = (masked_spec_embed.detach().clone() if masked_spec_embed is not None
                       else torch.empty(config.hidden_size).uniform_())
            self.masked_spec_embed = nn.Parameter(initial)  # [H]

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden [N, T, H] → masked copy in training mode, hidden itself in eval mode."""
        if not self.training:
            return hidden
        batch, frames, channels = hidden.shape
        if self.time_prob > 0:
            spans = _compute_mask_indices((batch, frames), mask_prob=self.time_prob, mask_length=self.time_length,
                                          min_masks=self.time_min_masks)
            mask = torch.as_tensor(spans, device=hidden.device)  # [N, T]
            hidden = torch.where(mask[:, :, None], self.masked_spec_embed.to(hidden.dtype), hidden)  # [N, T, H]
        if self.feature_prob > 0:
            spans = _compute_mask_indices((batch, channels), mask_prob=self.feature_prob,
                                          mask_length=self.feature_length, min_masks=self.feature_min_masks)
            mask = torch.as_tensor(spans, device=hidden.device)  # [N, H]
            hidden = hidden.masked_fill(mask[:, None, :], 0.0)  # [N, T, H]
        return hidden
