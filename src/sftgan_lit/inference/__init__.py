"""Use a trained generator: priors for inference (and their edits), tiled super-resolution, the
segmenter on large images, predict/eval over files, and TorchScript/ONNX export."""

from .evaluate import Variant, evaluate, evaluate_files, parse_variants
from .export import check_export, export_onnx, export_torchscript
from .predict import PredictReport, find_inputs, predict, predict_files, resolve_checkpoint
from .priors import (
    CoarseLogitsPrior, DenseProbs, EditedPrior, LabelPriorMap, PriorMap, UniformPriorMap, parse_remap,
    read_class_mask,
)
from .segment import segment
from .tiling import receptive_field, super_resolve, super_resolve_many

__all__ = [
    "CoarseLogitsPrior", "DenseProbs", "EditedPrior", "LabelPriorMap", "PredictReport", "PriorMap",
    "UniformPriorMap", "Variant", "check_export", "evaluate", "evaluate_files", "export_onnx",
    "export_torchscript", "find_inputs", "parse_remap", "parse_variants", "predict", "predict_files",
    "read_class_mask", "receptive_field", "resolve_checkpoint", "segment", "super_resolve",
    "super_resolve_many",
]  # fmt: skip
