"""Parameter table of the paper configuration, built from configs alone: `python -m models.summary`."""
from __future__ import annotations

import torch
from torch import nn
from transformers import AutoModel, HubertConfig, PretrainedConfig

from models.backend import SpeakerBackend
from models.losses import SPEAKER_LOSSES, DistilHuBERTLoss
from models.student import Student
from models.tuner import AttentiveFeatureTuner


def count(module: nn.Module | list[nn.Parameter]) -> int:
    """Number of scalar parameters of a module or a parameter list."""
    params = module.parameters() if isinstance(module, nn.Module) else module
    return sum(p.numel() for p in params)


def parameter_table(teacher_config: PretrainedConfig | None = None, student_layers: int = 2,
                    adapter_size: int = 64, embed_size: int = 192, num_speakers: int = 1211,
                    target_layer_idx: tuple[int, ...] = (4, 8, 12)) -> list[tuple[str, int]]:
    """(part, parameters) rows; the teacher defaults to HubertConfig() = the HuBERT-base architecture, random init."""
    config = HubertConfig() if teacher_config is None else teacher_config
    with torch.random.fork_rng(devices=[]):
        teacher = AutoModel.from_config(config)
        student = Student(teacher, student_layers, list(range(student_layers)), adapter_size=adapter_size)
    hidden, depth, states = config.hidden_size, config.num_hidden_layers, student_layers + 1
    adapters = count(student.adapter_parameters())
    student_core = count(student) - adapters
    tuner_backend = count(SpeakerBackend(hidden, states, embed_size, 'tuner'))
    sum_backend = count(SpeakerBackend(hidden, states, embed_size, 'weighted_sum'))
    heads = count(DistilHuBERTLoss(hidden, list(target_layer_idx)))
    classifier = count(SPEAKER_LOSSES['softmax'](embed_size, num_speakers, None, 0.0, 1.0))
    layer = count(student.layers[0].layer)
    return [
        (f'teacher: {config.model_type}, {depth} layers, hidden {hidden}', count(teacher)),
        (f'student: CNN + {student_layers} layers (before heads and back-end)', student_core),
        ('  student CNN feature encoder', count(student.feature_extractor)),
        ('  student feature projection', count(student.feature_projection)),
        ('  student positional convolution', count(student.pos_conv_embed)),
        ('  student transformer layer (each)', layer),
        (f'OS-KDFT adapters ({student_layers} x bottleneck {adapter_size})', adapters),
        (f'KD prediction heads ({len(target_layer_idx)} x Linear-GELU-Linear)', heads),
        (f'attentive feature tuner ({student_layers} layers)', count(AttentiveFeatureTuner(hidden, student_layers))),
        (f'back-end, tuner (os_kdft2): tuner + pooling + Linear/BN to {embed_size}', tuner_backend),
        (f'back-end, weighted sum (os_kdft): {states} weights + Linear/BN to {embed_size}', sum_backend),
        (f'speaker classifier, softmax ({num_speakers} speakers)', classifier),
        ('trainable, os_kdft2: student + tuner back-end + KD heads + classifier',
         student_core + tuner_backend + heads + classifier),
        ('trainable, os_kdft: student + adapters + weighted-sum back-end + KD heads + classifier',
         student_core + adapters + sum_backend + heads + classifier),
    ]


def format_table(rows: list[tuple[str, int]]) -> str:
    """Rows as aligned text: name, exact count, millions."""
    width = max(len(name) for name, _ in rows)
    lines = [f"{'part':<{width}}  {'parameters':>12}  {'M':>8}"]
    lines += [f'{name:<{width}}  {value:>12,}  {value / 1e6:>8.2f}' for name, value in rows]
    return '\n'.join(lines)


def main() -> None:
    """Print the paper configuration's parameter table (`python -m models.summary`)."""
    print(format_table(parameter_table()))


if __name__ == '__main__':
    main()
