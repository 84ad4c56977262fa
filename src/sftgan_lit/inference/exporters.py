"""``sftgan-export``'s formats as one table: each format's file suffix, how it is written from the one-input
pipeline, and how the written file is checked against the eager model at a size it was not traced at.
Adding a format is one entry of ``EXPORTERS``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..pipeline import SFTGANPipeline, export_pipeline, load_pipeline
from .export import (
    check_export,
    check_image_to_image_onnx,
    check_pipeline_onnx,
    export_onnx,
    export_pipeline_onnx,
    export_torchscript,
)


@dataclass(frozen=True)
class Exporter:
    """One format: ``suffix`` of its file, ``write(pipeline, path, opset) -> path`` and ``check(pipeline, path)
    -> (max |export - eager|, a note)``; ``fp16``: checked against the fp16 tolerance; ``modules``: the
    optional packages it needs (``extras``)."""

    suffix: str
    write: Callable[[SFTGANPipeline, Path, int], Path]
    check: Callable[[SFTGANPipeline, Path], tuple[float, str]]
    fp16: bool = False
    modules: tuple[str, ...] = ()


def _reloaded(pipeline: SFTGANPipeline, path: Path) -> tuple[float, str]:
    """Largest |reloaded - original| on a random (2, 3, 19, 33) LR."""
    x = torch.rand(2, 3, 19, 33, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return float((load_pipeline(path)(x) - pipeline(x)).abs().max()), "reloaded"


def _write_file(pipeline: SFTGANPipeline, path: Path, opset: int) -> Path:
    export_pipeline(pipeline, path)
    return path


def _onnx_writer(fp16: bool):
    return lambda pipeline, path, opset: export_pipeline_onnx(pipeline, path, fp16=fp16, opset=opset)


def _onnx_check(pipeline: SFTGANPipeline, path: Path) -> tuple[float, str]:
    rules = check_image_to_image_onnx(path)
    note = f"chaiNNer rules pass: {rules['input_dtype']}, x{rules['scale']}, opset {rules['opset']}"
    return check_pipeline_onnx(pipeline, path), note


def _generator_check(pipeline: SFTGANPipeline, path: Path) -> tuple[float, str]:
    return check_export(pipeline.generator, path), "two inputs (lr, prior)"


ONNX_MODULES = ("onnx", "onnxscript", "onnxruntime")

EXPORTERS: dict[str, Exporter] = {
    # the pipeline (prior + generator), no pickle
    "safetensors": Exporter(".safetensors", _write_file, _reloaded),
    # the same as a torch.save file
    "pth": Exporter(".pth", _write_file, _reloaded),
    # the pipeline, one input, fp32 / float16
    "onnx": Exporter(".onnx", _onnx_writer(False), _onnx_check, modules=ONNX_MODULES),
    "onnx-fp16": Exporter("_fp16.onnx", _onnx_writer(True), _onnx_check, fp16=True, modules=ONNX_MODULES),
    # the two-input generator (lr, prior)
    "torchscript": Exporter(
        "_generator.ts", lambda p, path, opset: export_torchscript(p.generator, path), _generator_check
    ),
    "generator-onnx": Exporter(
        "_generator.onnx",
        lambda p, path, opset: export_onnx(p.generator, path, opset),
        _generator_check,
        modules=ONNX_MODULES,
    ),
}
