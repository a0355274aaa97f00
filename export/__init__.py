"""Export of a trained OS-KDFT2 speaker model (student + back-end, no teacher) and its use from commands or Python.

An export is a directory: export.json (model description, decision threshold, metadata) + model.safetensors, and
optionally model.onnx + model.onnx.json (the same model for onnxruntime, see export/onnx_export.py), and
cohort.safetensors when the run normalised its scores with AS-Norm (export/cohort.py).
"""
from export.api import Embedding, SpeakerModel, load_speaker_model
from export.model import ExportedModel
from export.model import ExportError
from models.description import describe_model
from export.onnx_export import export_onnx, write_onnx
from export.onnx_runtime import OnnxModel, load_onnx
from export.store import export_from_checkpoint, export_model, load_exported

__all__ = ['Embedding', 'ExportError', 'ExportedModel', 'OnnxModel', 'SpeakerModel', 'describe_model',
           'export_onnx', 'export_from_checkpoint', 'export_model', 'load_exported', 'load_onnx',
           'load_speaker_model', 'write_onnx']
