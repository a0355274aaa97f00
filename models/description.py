"""A plain-data description of a speaker model (student + back-end), enough to rebuild it without the teacher.

The trainer stores it in checkpoint['export'] and export/ writes it into export.json, so any checkpoint can be
exported later without the teacher, the training arguments or the data.
"""
from __future__ import annotations

from torch import nn

from data.audio import SAMPLE_RATE
from models.backend import AGGREGATIONS
from models.families import FAMILIES

AGGREGATION_NAMES = {cls: name for name, cls in AGGREGATIONS.items()}

# key of the description → (type, what it is); checked when an export or a checkpoint entry is read
FIELDS = {
    'student_config': (dict, "the student's transformers config (to_dict(), with model_type)"),
    'num_layers': (int, 'student transformer layers'),
    'adapter_size': ((int, type(None)), 'OS-KDFT adapter bottleneck, or null without adapters'),
    'aggregation': (str, f'back-end layer aggregation, one of {sorted(AGGREGATIONS)}'),
    'hidden_size': (int, 'hidden width'),
    'num_states': (int, 'hidden states the back-end reads (num_layers + 1)'),
    'embed_size': (int, 'speaker embedding size'),
    'seg_size': (int, 'TTA segment length in samples'),
    'num_seg': (int, 'TTA segments per utterance'),
    'sample_rate': (int, 'audio sample rate'),
}


class DescriptionError(ValueError):
    """A model description that is incomplete or inconsistent; the message names where it came from."""


def describe_model(core: nn.Module, seg_size: int, num_seg: int) -> dict:
    """The description of `core.student` + `core.backend` (a JointKDFT or anything holding both) as plain data."""
    student, backend = core.student, core.backend
    adapter = student.layers[0].adapter
    aggregation = AGGREGATION_NAMES.get(type(backend.aggregation))
    if aggregation is None:
        raise DescriptionError(f"back-end aggregation {type(backend.aggregation).__name__} is not one of "
                          f"{sorted(AGGREGATIONS)}; it cannot be exported")
    return check_spec({
        'student_config': student.config.to_dict(),
        'num_layers': student.num_layers,
        'adapter_size': None if adapter is None else adapter.down.out_features,
        'aggregation': aggregation,
        'hidden_size': student.hidden_size,
        'num_states': backend.num_states,
        'embed_size': backend.embedding.out_features,
        'seg_size': seg_size,
        'num_seg': num_seg,
        'sample_rate': SAMPLE_RATE,
    }, 'describe_model')


def check_spec(spec: object, where: str) -> dict:
    """Return `spec` when it is a complete, consistent description; else a DescriptionError naming `where`."""
    if not isinstance(spec, dict):
        raise DescriptionError(f"{where}: expected a model description (a dict), got {type(spec).__name__}")
    for key, (kind, what) in FIELDS.items():
        value = spec.get(key)
        if key not in spec or not isinstance(value, kind) or isinstance(value, bool):
            raise DescriptionError(f"{where}: model description needs {key!r} ({what}), got {value!r}")
    model_type = spec['student_config'].get('model_type')
    if model_type not in FAMILIES:
        raise DescriptionError(f"{where}: student_config model_type {model_type!r} is not one of {sorted(FAMILIES)}")
    if spec['aggregation'] not in AGGREGATIONS:
        raise DescriptionError(f"{where}: aggregation {spec['aggregation']!r}, expected one of {sorted(AGGREGATIONS)}")
    if spec['student_config'].get('num_hidden_layers') != spec['num_layers'] or \
            spec['num_states'] != spec['num_layers'] + 1:
        raise DescriptionError(f"{where}: inconsistent layer counts (num_layers {spec['num_layers']}, num_states "
                          f"{spec['num_states']}, config num_hidden_layers "
                          f"{spec['student_config'].get('num_hidden_layers')})")
    if spec['seg_size'] <= 0 or spec['num_seg'] <= 0:
        raise DescriptionError(f"{where}: seg_size and num_seg must be positive, got {spec['seg_size']} and "
                          f"{spec['num_seg']}")
    if spec['sample_rate'] != SAMPLE_RATE:
        raise DescriptionError(f"{where}: sample_rate {spec['sample_rate']}, expected {SAMPLE_RATE}")
    return spec
