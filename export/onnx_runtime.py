"""An ONNX export run by onnxruntime's CPU provider, used exactly like the PyTorch ExportedModel: embed(wav [B, S])
→ [B, E] with the same TTA segments and decision threshold, all read from the JSON written beside model.onnx."""
from __future__ import annotations

import os

import numpy as np
import onnxruntime
import torch
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, InvalidGraph, InvalidProtobuf, \
    NoSuchFile

from data.audio import SAMPLE_RATE
from export.cohort import read_cohort
from export.model import SCORE_KIND, ExportError, read_document

ONNX_FILE = 'model.onnx'  # its name inside an export directory
ONNX_FORMAT = 'os-kdft2-onnx-speaker-model'  # marker of the JSON beside it
ONNX_VERSION = 1
INPUT_NAME = 'audio'  # [batch, samples] float32, 16 kHz
OUTPUT_NAME = 'speaker_embedding'  # [batch, E]; not 'embedding', which clashes with WavLM's nn.Embedding node
PROVIDERS = ['CPUExecutionProvider']
ORT_ERRORS = (Fail, InvalidArgument, InvalidGraph, InvalidProtobuf, NoSuchFile)

# key path in the JSON → accepted types; every one is checked when an ONNX export is loaded
FIELDS = {
    ('sample_rate',): int, ('embed_size',): int, ('threshold',): (int, float),
    ('input', 'name'): str, ('input', 'min_samples'): int, ('output', 'name'): str,
    ('scoring', 'score_kind'): str, ('scoring', 'seg_size'): int, ('scoring', 'num_seg'): int,
}


def sidecar_path(onnx_path: str) -> str:
    """The JSON describing an ONNX file: its name + '.json' (model.onnx → model.onnx.json)."""
    return onnx_path + '.json'


def onnx_file_of(path: str) -> str:
    """The ONNX file of `path`: a .onnx file itself, or model.onnx inside an export directory."""
    if path.endswith('.onnx'):
        if not os.path.isfile(path):
            raise ExportError(f"ONNX file not found: {path}")
        return path
    if not os.path.isdir(path):
        raise ExportError(f"{path} is not a directory; expected an export directory holding {ONNX_FILE} and "
                          f"{ONNX_FILE}.json, or a .onnx file")
    onnx_path = os.path.join(path, ONNX_FILE)
    if not os.path.isfile(onnx_path):
        raise ExportError(f"{path} has no {ONNX_FILE}; write it with `python -m export onnx --model {path}`")
    return onnx_path


def _field(document: dict, keys: tuple[str, ...], kind: type | tuple[type, ...], where: str):
    """document[k1][k2]... when present and of type `kind`; else an ExportError naming the key and the file."""
    value = document
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ExportError(f"{where}: expected {'.'.join(keys)} of type "
                          f"{getattr(kind, '__name__', None) or ' or '.join(k.__name__ for k in kind)}, got {value!r}")
    return value


def read_description(onnx_path: str) -> dict:
    """The checked JSON beside `onnx_path`; an ExportError naming what is missing or wrong."""
    where = sidecar_path(onnx_path)
    if not os.path.isfile(where):
        raise ExportError(f"{onnx_path} has no description {where} (written beside it by `python -m export onnx`)")
    document = read_document(where, ONNX_FORMAT, ONNX_VERSION, 'an ONNX export description')
    for keys, kind in FIELDS.items():
        _field(document, keys, kind, where)
    if document['sample_rate'] != SAMPLE_RATE or document['scoring']['score_kind'] != SCORE_KIND:
        raise ExportError(f"{where}: expected sample_rate {SAMPLE_RATE} and scoring.score_kind {SCORE_KIND!r}, got "
                          f"{document['sample_rate']} and {document['scoring']['score_kind']!r}")
    return document


def onnx_session(model: str | bytes, where: str, threads: int = 0) -> onnxruntime.InferenceSession:
    """An onnxruntime CPU session of an ONNX file or serialised graph; `threads` intra-op threads (0 = its default)."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only
    try:
        return onnxruntime.InferenceSession(model, options, providers=PROVIDERS)
    except ORT_ERRORS as error:
        raise ExportError(f"{where} could not be loaded by onnxruntime {onnxruntime.__version__}: {error}") from error


class OnnxModel:
    """An ONNX export with its description: embed(wav [B, S]) → [B, E] through onnxruntime, on the CPU."""

    def __init__(self, onnx_path: str, threads: int = 0):
        self.path = onnx_path
        self.description = read_description(onnx_path)
        self.session = onnx_session(onnx_path, onnx_path, threads)
        self.input_name = self.description['input']['name']
        self.output_name = self.description['output']['name']
        inputs = [node.name for node in self.session.get_inputs()]
        outputs = [node.name for node in self.session.get_outputs()]
        if inputs != [self.input_name] or self.output_name not in outputs:
            raise ExportError(f"{onnx_path}: graph inputs {inputs} and outputs {outputs}, its description promises "
                              f"input {self.input_name!r} and output {self.output_name!r}")
        self.threshold = float(self.description['threshold'])
        self.score_norm = read_cohort(self.description, os.path.dirname(os.path.abspath(onnx_path)),
                                      self.description['embed_size'], sidecar_path(onnx_path))

    @property
    def seg_size(self) -> int:
        """TTA segment length in samples, as the training's evaluation used."""
        return self.description['scoring']['seg_size']

    @property
    def num_seg(self) -> int:
        """TTA segments per utterance."""
        return self.description['scoring']['num_seg']

    @property
    def embed_size(self) -> int:
        """Speaker embedding size E."""
        return self.description['embed_size']

    @property
    def min_samples(self) -> int:
        """Shortest input the graph was exported for."""
        return self.description['input']['min_samples']

    def embed(self, wav: torch.Tensor) -> torch.Tensor:
        """wav [B, S] float 16 kHz → speaker embeddings [B, E] (on wav's device; computed on the CPU)."""
        if wav.dim() != 2:
            raise ValueError(f"OnnxModel.embed: expected wav of shape [B, samples], got {tuple(wav.shape)}")
        if wav.shape[1] < self.min_samples:
            raise ExportError(f"{self.path}: input of {wav.shape[1]} samples, shorter than the {self.min_samples} "
                              f"({1000 * self.min_samples / SAMPLE_RATE:g} ms) the model accepts")
        audio = np.ascontiguousarray(wav.detach().cpu().numpy(), dtype=np.float32)  # [B, S]
        out = self.session.run([self.output_name], {self.input_name: audio})[0]  # [B, E]
        return torch.from_numpy(out).to(wav.device)


def load_onnx(path: str, threads: int = 0) -> OnnxModel:
    """Load an ONNX export: an export directory holding model.onnx (+ its JSON), or a .onnx file with its JSON."""
    return OnnxModel(onnx_file_of(path), threads)
