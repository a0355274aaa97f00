"""DistilHuBERT-style student: the teacher's CNN front-end and a few of its transformer layers, copied."""
from __future__ import annotations

import copy
import re

import torch
from torch import nn
from transformers import AutoModel, PretrainedConfig, PreTrainedModel

from models.families import family_of, layer_norm_style
from models.spec_augment import SpecAugment
from models.student_layer import StudentLayer

DROPOUT_KEYS = ('hidden_dropout', 'attention_dropout', 'activation_dropout', 'feat_proj_dropout')
# Where the encoder's own layer norm acts, by layer_norm_style: (on state 0, on the last state). Post-LN encoders
# normalise before the first layer; stable-layer-norm ones after the last, as transformers' encoders do.
ENCODER_NORMS = {'post': lambda encoder: (encoder.layer_norm, nn.Identity()),
                 'pre': lambda encoder: (nn.Identity(), encoder.layer_norm)}
# student_init: state-dict key prefixes copied from the teacher; every other weight keeps the fresh initialisation
# of AutoModel.from_config(student config). 'release' = the released hubert_student.py (CNN, projection, layers);
# 'teacher' = also positional convolution, encoder layer norm and mask embedding (DistilHuBERT / s3prl practice).
INIT_MODES = {'release': ('feature_extractor.', 'feature_projection.', 'encoder.layers.'), 'teacher': ('',)}
_LAYER_KEY = re.compile(r'^encoder\.layers\.(\d+)\.(.*)$')


def student_config(teacher_config: PretrainedConfig, num_layers: int, dropout: float | None = None,
                   layerdrop: float | None = None, mask_time_prob: float | None = None) -> PretrainedConfig:
    """The teacher's config with only the layer count changed, plus the optional rate overrides (None = keep)."""
    config = copy.deepcopy(teacher_config)
    config.num_hidden_layers = num_layers
    if dropout is not None:
        for key in DROPOUT_KEYS:
            setattr(config, key, dropout)
    if layerdrop is not None:
        config.layerdrop = layerdrop
    if mask_time_prob is not None:
        config.mask_time_prob = mask_time_prob
    return config


def _copied_state(student: nn.Module, teacher: PreTrainedModel, init_teacher_idx: list[int],
                  copied: tuple[str, ...]) -> dict:
    """Student state dict, its keys starting with a `copied` prefix filled from the teacher, the rest kept fresh.

    Layer k ← teacher layer init_teacher_idx[k], the rest by name. A student-layer weight the source layer lacks
    (WavLM's relative position embedding, held by layer 0 only) comes from the teacher layer at the same position;
    the student's own masked_spec_embed is kept when the teacher has none (its masking rate was 0).
    """
    source = teacher.state_dict()
    state = {}
    for key, own in student.state_dict().items():
        if not key.startswith(copied):
            state[key] = own
            continue
        match = _LAYER_KEY.match(key)
        candidates = [key]
        if match:
            k, rest = int(match.group(1)), match.group(2)
            candidates = [f'encoder.layers.{init_teacher_idx[k]}.{rest}', key]
        found = [c for c in candidates if c in source]
        if found:
            state[key] = source[found[0]]
        elif key == 'masked_spec_embed':
            state[key] = own
        else:
            raise RuntimeError(f"Student: the teacher has no weight for {key!r} (looked for {candidates})")
    return state


class Student(nn.Module):
    """Teacher-family student: forward(wav [N, S], num_kd) → all hidden states [N, L+1, T, H].

    Rows [:num_kd] are KD rows, rows [num_kd:] FT rows (the adapter, when set, acts on FT rows only). In training mode
    it applies dropout, SpecAugment and LayerDrop at the config's rates like transformers' model, except that a
    skipped layer repeats the previous hidden state, so there are always L+1 states. State 0 is the input of the first
    layer, as transformers records it: after pos-conv + encoder layer norm for post-LN models, after pos-conv only
    for stable-layer-norm ones. For those the last state is the encoder's last_hidden_state, after the encoder
    layer norm (what transformers 4.x, the release's, also recorded as the last of its hidden_states).

    `init` (key student_init) picks what is copied from the teacher, see INIT_MODES; the rest is the fresh
    initialisation of AutoModel.from_config under the caller's seed (nothing draws from torch's generator before it).
    """

    def __init__(self, teacher_model: PreTrainedModel, num_layers: int, init_teacher_idx: list[int],
                 adapter_size: int | None = None, dropout: float | None = None, layerdrop: float | None = None,
                 mask_time_prob: float | None = None, init: str = 'release'):
        super().__init__()
        family = family_of(teacher_model.config)
        idx = list(init_teacher_idx)  # values checked by arguments.check_teacher_args; here only their count
        if len(idx) != num_layers:
            raise ValueError(f"Student: {num_layers} layers need as many source layer indices, got {idx}")
        self.config = student_config(teacher_model.config, num_layers, dropout, layerdrop, mask_time_prob)
        self.init_teacher_idx = idx
        built = AutoModel.from_config(self.config)  # transformers' own modules and init at the student's size
        built.load_state_dict(_copied_state(built, teacher_model, idx, INIT_MODES[init]))
        style = layer_norm_style(self.config)
        self.feature_extractor = built.feature_extractor
        self.feature_projection = built.feature_projection
        self.spec_augment = SpecAugment(self.config, getattr(built, 'masked_spec_embed', None))
        self.pos_conv_embed = built.encoder.pos_conv_embed
        self.input_norm, self.output_norm = ENCODER_NORMS[style](built.encoder)
        self.dropout = built.encoder.dropout
        self.layers = nn.ModuleList(
            StudentLayer(layer, style, family.relative_position_bias, self.config.hidden_size, adapter_size,
                         self.config.initializer_range)
            for layer in built.encoder.layers)
        self.first_droppable = 1 if family.relative_position_bias else 0  # WavLM never drops its bias-making layer 0

    @property
    def hidden_size(self) -> int:
        """Width of every hidden state."""
        return self.config.hidden_size

    @property
    def num_layers(self) -> int:
        """Transformer layers (the output has num_layers + 1 hidden states)."""
        return len(self.layers)

    def adapter_parameters(self) -> list[nn.Parameter]:
        """Parameters of the OS-KDFT adapters (empty without adapters)."""
        return [p for layer in self.layers if layer.adapter is not None for p in layer.adapter.parameters()]

    def _skips(self, index: int) -> bool:
        """LayerDrop draw for layer `index`, as transformers draws it (one torch.rand per layer)."""
        if not self.training or self.config.layerdrop <= 0.0 or index < self.first_droppable:
            return False
        return bool(torch.rand([]) < self.config.layerdrop)

    def forward(self, wav: torch.Tensor, num_kd: int = 0) -> torch.Tensor:
        """wav [N, S] (rows [:num_kd] KD, the rest FT) → hidden states [N, L+1, T, H]."""
        if wav.dim() != 2:
            raise ValueError(f"Student: expected wav of shape [N, samples], got {tuple(wav.shape)}")
        if not 0 <= num_kd <= wav.shape[0]:
            raise ValueError(f"Student: num_kd must be in 0..{wav.shape[0]} (the batch), got {num_kd}")
        features = self.feature_extractor(wav).transpose(1, 2)  # [N, T, C]
        projected = self.feature_projection(features)  # wav2vec2 / WavLM also return the normed features
        hidden = projected[0] if isinstance(projected, tuple) else projected  # [N, T, H]
        hidden = self.spec_augment(hidden)  # [N, T, H]
        hidden = hidden + self.pos_conv_embed(hidden)  # [N, T, H]
        hidden = self.dropout(self.input_norm(hidden))  # [N, T, H]
        states, position_bias = [hidden], None
        for index, layer in enumerate(self.layers):
            if not self._skips(index):
                hidden, position_bias = layer(hidden, num_kd, position_bias)  # [N, T, H]
            states.append(hidden)
        states[-1] = self.output_norm(hidden)  # [N, T, H], the encoder layer norm of stable-layer-norm models
        return torch.stack(states, dim=1)  # [N, L+1, T, H]
