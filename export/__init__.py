"""Export of a trained OS-KDFT2 speaker model (student + back-end, no teacher) and its command-line use.

An export is a directory: export.json (model description, decision threshold, metadata) + model.safetensors.
"""
from export.model import ExportedModel
from export.model import ExportError
from models.description import describe_model
from export.store import export_from_checkpoint, export_model, load_exported

__all__ = ['ExportError', 'ExportedModel', 'describe_model', 'export_from_checkpoint', 'export_model',
           'load_exported']
