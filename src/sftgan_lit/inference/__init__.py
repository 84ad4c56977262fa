"""Use a trained generator: inputs, tiled super-resolution, predict/eval over files, reports, export."""

from .evaluate import Variant, evaluate, evaluate_files, parse_variants
from .export import check_export, export_onnx, export_torchscript
from .inputs import INPUT_ERRORS, InputImage, InputReader, companion, find_inputs, read_mask_image
from .predict import PredictReport, predict, predict_files
from .runtime import load_for_prior, pick_device, resolve_checkpoint
from .tiling import receptive_field, super_resolve, super_resolve_many

__all__ = [
    "INPUT_ERRORS",
    "InputImage",
    "InputReader",
    "PredictReport",
    "Variant",
    "check_export",
    "companion",
    "evaluate",
    "evaluate_files",
    "export_onnx",
    "export_torchscript",
    "find_inputs",
    "load_for_prior",
    "parse_variants",
    "pick_device",
    "predict",
    "predict_files",
    "read_mask_image",
    "receptive_field",
    "resolve_checkpoint",
    "super_resolve",
    "super_resolve_many",
]
