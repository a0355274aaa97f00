"""One student transformer layer: a transformers encoder layer, optionally with the OS-KDFT adapter on FT rows."""
from __future__ import annotations

import torch
from torch import nn

from models.adapter import BottleneckAdapter


def _attend_plain(attention: nn.Module, hidden: torch.Tensor, position_bias: torch.Tensor | None):
    """HuBERT / wav2vec 2.0 self-attention (SDPA or eager, as the config selects); no position bias."""
    out, _ = attention(hidden, attention_mask=None)  # [N, T, H]
    return out, position_bias


def _attend_relative(attention: nn.Module, hidden: torch.Tensor, position_bias: torch.Tensor | None):
    """WavLM gated relative-position attention: layer 0 makes the bias, the later layers reuse it."""
    out, _, position_bias = attention(hidden, attention_mask=None, position_bias=position_bias)  # [N, T, H]
    return out, position_bias


ATTENTION_CALLS = {False: _attend_plain, True: _attend_relative}  # keyed by Family.relative_position_bias


def _post_ln_block(block: StudentLayer, hidden: torch.Tensor, num_kd: int, position_bias):
    """Base (post-LN) layer: h = LN(x + Attn(x)); out = LN_final(h + FFN(h) [+ A(h) on FT rows])."""
    layer = block.layer
    attended, position_bias = block.attend(layer.attention, hidden, position_bias)
    hidden = layer.layer_norm(hidden + layer.dropout(attended))  # [N, T, H]
    hidden = layer.final_layer_norm(hidden + block.feed_forward(hidden, hidden, num_kd))  # [N, T, H]
    return hidden, position_bias


def _pre_ln_block(block: StudentLayer, hidden: torch.Tensor, num_kd: int, position_bias):
    """Stable-layer-norm (pre-LN) layer: h = x + Attn(LN(x)); out = h + FFN(LN_final(h)) [+ A(h) on FT rows].

    The adapter reads the raw residual h, as in the released OS-KDFT, where it sits beside the FFN call.
    """
    layer = block.layer
    attended, position_bias = block.attend(layer.attention, layer.layer_norm(hidden), position_bias)
    hidden = hidden + layer.dropout(attended)  # [N, T, H]
    hidden = hidden + block.feed_forward(layer.final_layer_norm(hidden), hidden, num_kd)  # [N, T, H]
    language_adapter = getattr(layer, 'adapter_layer', None)  # transformers' MMS attention adapter, when configured
    if language_adapter is not None:
        hidden = hidden + language_adapter(hidden)
    return hidden, position_bias


LAYER_BLOCKS = {'post': _post_ln_block, 'pre': _pre_ln_block}  # keyed by families.layer_norm_style


class StudentLayer(nn.Module):
    """Runs a transformers encoder layer's own sub-modules on [x_kd ; x_ft]; the adapter touches FT rows only.

    KD rows (the first `num_kd`) compute exactly the teacher layer's function; FT rows add the adapter A(h) to the
    feed-forward output, so the adapter never sees, nor gets gradient from, a KD row.
    """

    def __init__(self, layer: nn.Module, style: str, relative_position_bias: bool, hidden_size: int,
                 adapter_size: int | None, initializer_range: float):
        super().__init__()
        if style not in LAYER_BLOCKS:
            raise ValueError(f"StudentLayer: style {style!r}, expected one of {sorted(LAYER_BLOCKS)}")
        self.layer = layer
        self.adapter = None if adapter_size is None else BottleneckAdapter(  # initialised as transformers' post_init
            hidden_size, adapter_size, 'relu', init_std=initializer_range)
        self.style = style
        self.attend = ATTENTION_CALLS[relative_position_bias]

    def feed_forward(self, ffn_input: torch.Tensor, adapter_input: torch.Tensor, num_kd: int) -> torch.Tensor:
        """FFN(ffn_input) on every row, plus A(adapter_input) on the FT rows when the layer has an adapter."""
        out = self.layer.feed_forward(ffn_input)  # [N, T, H]
        if self.adapter is None:
            return out
        return torch.cat([out[:num_kd], out[num_kd:] + self.adapter(adapter_input[num_kd:])], dim=0)  # [N, T, H]

    def forward(self, hidden: torch.Tensor, num_kd: int, position_bias: torch.Tensor | None = None):
        """hidden [N, T, H] → (hidden [N, T, H], position bias for the next layer or None)."""
        return LAYER_BLOCKS[self.style](self, hidden, num_kd, position_bias)
