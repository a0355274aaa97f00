"""ONNX export of a speaker model: raw 16 kHz audio [batch, samples] → speaker embedding [batch, E], batch and
length dynamic, checked against onnxruntime before it is written, with a JSON beside it saying how to use it.

Exporter: torch.onnx.export(dynamo=True). torch.export traces the model with a symbolic batch and length, so every
size that follows from the input (CNN frames, the positional convolution, attention) stays symbolic in the graph, and
a Python branch on a size fails the export instead of being frozen into a constant (the TorchScript tracer's failure
mode). transformers' SDPA attention becomes plain ONNX ops. An ExportedModel is always in eval mode, so dropout,
LayerDrop and SpecAugment are not in the graph.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
from typing import Iterator

import numpy as np
import onnxruntime
import torch
from torch import nn

from data.audio import SAMPLE_RATE
from export.cohort import COHORT_FILE, section, write_cohort
from export.model import SCORE_KIND, ExportedModel, ExportError
from export.onnx_runtime import (INPUT_NAME, ONNX_FILE, ONNX_FORMAT, ONNX_VERSION, OUTPUT_NAME, onnx_session,
                                 sidecar_path)
from export.store import load_exported, plain_json
from utils.atomic import atomic_write_bytes

OPSET = 20  # the exporter's default in torch 2.14; onnxruntime runs it from 1.17 on
PARITY_TOLERANCE = 1e-4  # max abs difference of unit-normalised embeddings, onnxruntime vs PyTorch
PARITY_INPUTS = ((1, SAMPLE_RATE), (2, 3 * SAMPLE_RATE + 123))  # (batch, samples) compared at every export
SCORE_RECIPE = ('score = (cos(full_a, full_b) + mean over all i, j of cos(seg_a_i, seg_b_j)) / 2, where full is the '
                'embedding of the whole utterance and seg_i those of num_seg windows of seg_size samples starting at '
                'round(linspace(0, n - seg_size, num_seg)) (audio shorter than seg_size repeated cyclically to '
                'seg_size first); same speaker when score >= threshold')
QUIET_LOGGERS = ('torch.onnx', 'onnxscript')  # the exporter's and its graph optimiser's informational warnings


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Keep the exporter's notes (torchvision operators it skips, constants it does not fold) off the console."""
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def onnx_bytes(module: nn.Module, min_samples: int) -> bytes:
    """The serialised ONNX graph of `module` (on the CPU): wav [batch, samples >= min_samples] → output [batch, ...]."""
    example = 0.1 * torch.randn(2, max(SAMPLE_RATE, 2 * min_samples),
                                generator=torch.Generator().manual_seed(0))  # [2, S]
    dims = {0: torch.export.Dim('batch'), 1: torch.export.Dim('samples', min=min_samples)}
    module.eval()
    try:
        with _quiet_exporter():
            program = torch.onnx.export(module, (example,), dynamo=True, input_names=[INPUT_NAME],
                                        output_names=[OUTPUT_NAME], dynamic_shapes=(dims,), opset_version=OPSET,
                                        optimize=True, verbose=False, external_data=False)
    except torch.onnx.errors.OnnxExporterError as error:
        raise ExportError(f"ONNX export of {type(module).__name__} failed: {error}") from error
    return program.model_proto.SerializeToString()


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def parity_error(model: ExportedModel, session: onnxruntime.InferenceSession,
                 inputs: tuple[tuple[int, int], ...] = PARITY_INPUTS) -> float:
    """Max abs difference of unit-normalised embeddings, onnxruntime vs PyTorch, on seeded noise of each
    (batch, samples) in `inputs`."""
    generator = torch.Generator().manual_seed(1)
    worst = 0.0
    for batch, samples in inputs:
        wav = 0.1 * torch.randn(batch, samples, generator=generator)  # [B, S]
        expected = model.embed(wav).numpy()  # [B, E]
        got = session.run([OUTPUT_NAME], {INPUT_NAME: wav.numpy()})[0]  # [B, E]
        worst = max(worst, float(np.abs(_unit(got) - _unit(expected)).max()))
    return worst


def _check_new_file(path: str) -> None:
    """An ExportError naming `path` when it exists: an ONNX export never overwrites anything."""
    if os.path.exists(path):
        raise ExportError(f"{path} already exists and is never overwritten; choose a new --out")


def cohort_section(model: ExportedModel, out_path: str, source: str | None) -> tuple[dict | None, str | None]:
    """The description's score_norm section for a model with an AS-Norm cohort, and the cohort file written for it
    (None when none is). The section names the source export's cohort.safetensors relative to the ONNX file's
    folder; a model not loaded from an export directory gets its cohort written beside the ONNX file."""
    if model.score_norm is None:
        return None, None
    folder = os.path.dirname(os.path.abspath(out_path))
    if source is not None and os.path.isfile(os.path.join(source, COHORT_FILE)):
        return section(model.score_norm, os.path.relpath(os.path.join(source, COHORT_FILE), folder)), None
    name = os.path.basename(out_path) + '.cohort.safetensors'
    _check_new_file(os.path.join(folder, name))
    return write_cohort(model.score_norm, folder, name), os.path.join(folder, name)


def write_onnx(model: ExportedModel, out_path: str, source: str | None = None) -> dict:
    """Write `model` (on the CPU) as ONNX to `out_path` and its description to `out_path`.json; return the description.

    Nothing is written unless onnxruntime reproduces PyTorch's embeddings to PARITY_TOLERANCE. `source` is the export
    directory the model was loaded from (recorded in the description). A model with an AS-Norm cohort keeps it: the
    description's score_norm section names the cohort file (cohort_section).
    """
    if model.threshold is None:
        raise ExportError(f"cannot write {out_path}: the model has no decision threshold yet")
    for path in (out_path, sidecar_path(out_path)):
        _check_new_file(path)
    data = onnx_bytes(model, model.min_samples)
    worst = parity_error(model, onnx_session(data, out_path))
    if worst > PARITY_TOLERANCE:
        raise ExportError(f"{out_path} not written: onnxruntime's embeddings differ from PyTorch's by {worst:.2e} "
                          f"(max abs, unit-normalised), above {PARITY_TOLERANCE:g}")
    document = {
        'format': ONNX_FORMAT, 'version': ONNX_VERSION, 'model_file': os.path.basename(out_path),
        'sample_rate': SAMPLE_RATE, 'embed_size': model.embed_size, 'threshold': float(model.threshold),
        'input': {'name': INPUT_NAME, 'shape': ['batch', 'samples'], 'dtype': 'float32',
                  'min_samples': model.min_samples,
                  'audio': f'mono, {SAMPLE_RATE} Hz, floats in [-1, 1] as soundfile reads them; average the '
                           f'channels and resample other rates first'},
        'output': {'name': OUTPUT_NAME, 'shape': ['batch', model.embed_size], 'dtype': 'float32',
                   'use': 'L2-normalise, then cosine similarity'},
        'scoring': {'score_kind': SCORE_KIND, 'seg_size': model.seg_size, 'num_seg': model.num_seg,
                    'recipe': SCORE_RECIPE},
        'exporter': {'torch': torch.__version__, 'onnxruntime': onnxruntime.__version__, 'opset': OPSET,
                     'method': 'torch.onnx.export(dynamo=True), eval mode',
                     'parity_max_abs': worst, 'parity_inputs': [list(shape) for shape in PARITY_INPUTS]},
        'source': {'export': None if source is None else os.path.abspath(source), 'metadata': model.metadata},
    }
    norm, written = cohort_section(model, out_path, source)
    if norm is not None:
        document['score_norm'] = norm
    text = json.dumps(document, indent=1, default=plain_json).encode('utf-8')
    try:
        atomic_write_bytes(out_path, data)
        try:
            atomic_write_bytes(sidecar_path(out_path), text)
        except BaseException:
            os.unlink(out_path)
            raise
    except BaseException:
        if written is not None:
            os.unlink(written)
        raise
    return document


def export_onnx(export_dir: str, out_path: str | None = None) -> dict:
    """Write the export in `export_dir` as ONNX to `out_path` (default `export_dir`/model.onnx) with its JSON beside
    it; return the JSON's content. The end-of-training hook (argument export_onnx) calls it on the new export."""
    model = load_exported(export_dir)
    return write_onnx(model, out_path or os.path.join(export_dir, ONNX_FILE), export_dir)
