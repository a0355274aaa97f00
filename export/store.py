"""Writing and reading export directories: export.json (description, threshold, metadata) + model.safetensors, and
cohort.safetensors when the run normalised its scores (AS-Norm, export/cohort.py).

An export is written into a temporary sibling folder and renamed into place, so a directory named like an export
is always complete; an existing directory is never overwritten.
"""
from __future__ import annotations

import json
import math
import os

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from export.cohort import ScoreNorm, read_cohort, write_cohort
from export.model import FORMAT, SCORE_KIND, VERSION, ExportedModel, ExportError, read_document, read_safetensors
from models.description import check_spec, describe_model
from utils.atomic import atomic_directory, umask_mode
from trainer import checkpoint

CONFIG_FILE = 'export.json'
WEIGHTS_FILE = 'model.safetensors'
EXPORTED_PARTS = ('student.', 'backend.')  # the only state-dict prefixes an export keeps
EXPECTED = f'an export directory holding {CONFIG_FILE} and {WEIGHTS_FILE} (written by export_model or ' \
           f'`python -m export export`)'


def plain_json(value: object) -> object:
    """JSON fallback for metadata values: NumPy / torch scalars as numbers, anything else as text."""
    return value.item() if hasattr(value, 'item') else str(value)


def exported_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The student and back-end tensors of a JointKDFT state dict (no KD heads, no classifier, no teacher)."""
    return {k: v for k, v in state.items() if k.startswith(EXPORTED_PARTS)}


def check_new_directory(out_dir: str) -> None:
    """An ExportError naming `out_dir` when it exists: exports never overwrite anything."""
    if os.path.exists(out_dir):
        raise ExportError(f"export directory {out_dir} already exists and is never overwritten; choose a new one")


def save_export(model: ExportedModel, out_dir: str) -> str:
    """Write `model` to the new directory `out_dir`; return it. The model needs a finite threshold."""
    if model.threshold is None or not math.isfinite(model.threshold):
        raise ExportError(f"cannot write export {out_dir}: its decision threshold is {model.threshold}, expected "
                          f"a finite number")
    check_new_directory(out_dir)
    document = {'format': FORMAT, 'version': VERSION, 'model': model.spec,
                'decision': {'threshold': float(model.threshold), 'score_kind': SCORE_KIND},
                'metadata': model.metadata}
    with atomic_directory(out_dir) as tmp:
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
        save_file(tensors, os.path.join(tmp, WEIGHTS_FILE), metadata={'format': FORMAT})
        os.chmod(os.path.join(tmp, WEIGHTS_FILE), umask_mode())  # safetensors writes it private (0600)
        if model.score_norm is not None:
            document['score_norm'] = write_cohort(model.score_norm, tmp)
        with open(os.path.join(tmp, CONFIG_FILE), 'w', encoding='utf-8') as handle:
            json.dump(document, handle, indent=1, default=plain_json)
    return out_dir


def _read_document(path: str) -> dict:
    """The parsed export.json of directory `path`, checked; an ExportError naming what is wrong."""
    if not os.path.isdir(path):
        raise ExportError(f"{path} is not a directory; expected {EXPECTED}")
    config_path = os.path.join(path, CONFIG_FILE)
    if not os.path.isfile(config_path):
        raise ExportError(f"{path} is not an export: no {CONFIG_FILE}; expected {EXPECTED}")
    document = read_document(config_path, FORMAT, VERSION, 'an export description', f'; expected {EXPECTED}')
    threshold = document.get('decision', {}).get('threshold')
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
        raise ExportError(f"{config_path}: expected a numeric decision.threshold, got {threshold!r}")
    check_spec(document.get('model'), config_path)
    return document


def load_exported(path: str, device: str | torch.device = 'cpu') -> ExportedModel:
    """Load an export directory into an ExportedModel on `device` (eval mode)."""
    document = _read_document(path)
    weights_path = os.path.join(path, WEIGHTS_FILE)
    if not os.path.isfile(weights_path):
        raise ExportError(f"{path} is not a complete export: no {WEIGHTS_FILE}; expected {EXPECTED}")
    state = read_safetensors(weights_path, load_file)
    norm = read_cohort(document, path, document['model']['embed_size'], os.path.join(path, CONFIG_FILE))
    model = ExportedModel(document['model'], float(document['decision']['threshold']), document.get('metadata', {}),
                          norm)
    model.load_weights(state, weights_path)
    return model.to(device)


def export_model(core: nn.Module, out_dir: str, threshold: float, metadata: dict, seg_size: int,
                 num_seg: int, score_norm: ScoreNorm | None = None) -> str:
    """Export the student + back-end of `core` (a JointKDFT) with its decision threshold, and its AS-Norm cohort
    when given; return `out_dir`.

    Called at the end of training with the final evaluation's EER threshold of the full_tta scores (and the cohort
    and AS-Norm threshold when the run normalised).
    """
    check_new_directory(out_dir)
    model = ExportedModel(describe_model(core, seg_size, num_seg), threshold, metadata, score_norm)
    model.load_weights(exported_state(core.state_dict()), 'export_model')
    return save_export(model, out_dir)


def model_from_checkpoint(checkpoint_path: str) -> ExportedModel:
    """The ExportedModel of a training checkpoint holding checkpoint['export'] (threshold still None)."""
    try:
        ckpt = checkpoint.load(checkpoint_path)
    except (FileNotFoundError, RuntimeError) as error:
        raise ExportError(str(error)) from error
    if not isinstance(ckpt, dict) or 'export' not in ckpt or 'model' not in ckpt:
        raise ExportError(f"checkpoint {checkpoint_path} has no 'model' and 'export' entries; expected a checkpoint "
                          f"written by a trainer that stores checkpoint['export'] = describe_model(core, ...)")
    state = ckpt.get('state', {})
    metadata = {'source_checkpoint': os.path.abspath(checkpoint_path),
                **{k: state[k] for k in ('epoch', 'best_epoch', 'best_eer') if k in state}}
    model = ExportedModel(check_spec(ckpt['export'], f'checkpoint {checkpoint_path}'), None, metadata)
    model.load_weights(exported_state(ckpt['model']), f'checkpoint {checkpoint_path}')
    return model


def export_from_checkpoint(checkpoint_path: str, out_dir: str, threshold: float) -> str:
    """Export the student + back-end of a training checkpoint with the given decision threshold; return `out_dir`."""
    check_new_directory(out_dir)
    model = model_from_checkpoint(checkpoint_path)
    model.threshold = threshold
    return save_export(model, out_dir)
