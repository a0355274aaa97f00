"""The AS-Norm cohort an export carries: the run's cohort (trainer.evaluate.ScoreCohort) in cohort.safetensors and
its description (file, top-N, speakers, the decision threshold on AS-Norm scores) in the export's JSON.

An export without the section scores raw cosines only, exactly as before. A file named by the section is read
relative to the folder of the JSON that names it (export.json, or model.onnx.json for an ONNX export).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
from safetensors.numpy import load_file, save_file

from export.model import SCORE_KIND, ExportError, read_safetensors
from trainer.evaluate import NORMALISED, ScoreCohort
from utils.score_norm import MIN_TOP_N

COHORT_FILE = 'cohort.safetensors'
METHOD = 'asnorm'
TENSORS = ('full', 'tta')  # [S, E] float32 each: the unit mean directions per cohort speaker


@dataclass(frozen=True)
class ScoreNorm:
    """AS-Norm with `cohort`; `threshold` decides same / different speaker on the normalised SCORE_KIND scores."""
    cohort: ScoreCohort
    threshold: float


def score_norm_of(cohort: ScoreCohort | None, metrics: dict[str, dict[str, float]]) -> ScoreNorm | None:
    """The ScoreNorm of a final evaluation (None without a cohort): its cohort, thresholded at the EER point of the
    normalised SCORE_KIND scores of one trial list's `metrics`."""
    if cohort is None:
        return None
    return ScoreNorm(cohort, float(metrics[SCORE_KIND + NORMALISED]['threshold']))


def write_cohort(norm: ScoreNorm, folder: str, name: str = COHORT_FILE) -> dict:
    """Write the cohort to folder/name; return the JSON section that describes it."""
    if not math.isfinite(norm.threshold):
        raise ExportError(f"cannot write the AS-Norm cohort {os.path.join(folder, name)}: its threshold is "
                          f"{norm.threshold}, expected a finite number")
    path = os.path.join(folder, name)
    save_file({'full': np.ascontiguousarray(norm.cohort.full, dtype=np.float32),
               'tta': np.ascontiguousarray(norm.cohort.tta, dtype=np.float32)}, path, metadata={'method': METHOD})
    return section(norm, name)


def section(norm: ScoreNorm, file: str) -> dict:
    """The JSON section naming the cohort file `file` (relative to the JSON's folder)."""
    return {'method': METHOD, 'file': file, 'top_n': norm.cohort.top_n, 'speakers': norm.cohort.speakers,
            'threshold': float(norm.threshold), 'score_kind': SCORE_KIND + NORMALISED}


def _field(document: dict, key: str, kind: type | tuple[type, ...], where: str):
    value = document.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ExportError(f"{where}: expected score_norm.{key} of type "
                          f"{getattr(kind, '__name__', None) or ' or '.join(k.__name__ for k in kind)}, got {value!r}")
    return value


def read_cohort(document: dict, folder: str, embed_size: int, where: str) -> ScoreNorm | None:
    """The ScoreNorm a JSON document's 'score_norm' section describes (None when it has none); every field, the
    file and the shapes are checked, an ExportError naming `where` (the JSON) otherwise."""
    if 'score_norm' not in document:
        return None
    described = document['score_norm']
    if not isinstance(described, dict) or described.get('method') != METHOD:
        raise ExportError(f"{where}: score_norm must be a section with \"method\": \"{METHOD}\", got {described!r}")
    file = _field(described, 'file', str, where)
    top_n = _field(described, 'top_n', int, where)
    speakers = _field(described, 'speakers', int, where)
    threshold = float(_field(described, 'threshold', (int, float), where))
    if top_n < MIN_TOP_N or speakers < MIN_TOP_N:
        raise ExportError(f"{where}: score_norm.top_n and .speakers must be at least {MIN_TOP_N}, got {top_n} and "
                          f"{speakers}")
    path = os.path.join(folder, file)
    if not os.path.isfile(path):
        raise ExportError(f"{where} names the AS-Norm cohort {path}, which does not exist")
    tensors = read_safetensors(path, load_file)
    expected = (speakers, embed_size)
    for name in TENSORS:
        if name not in tensors or tensors[name].shape != expected or tensors[name].dtype != np.float32:
            got = None if name not in tensors else f'{tensors[name].dtype} {tensors[name].shape}'
            raise ExportError(f"{path}: expected tensor {name!r} float32 of shape {expected} ({where}), got {got}")
    return ScoreNorm(ScoreCohort(tensors['full'], tensors['tta'], top_n), threshold)
