"""``sftgan-export``: the generator as TorchScript and ONNX, with dynamic batch, height and width.

Both take ``lr`` (N, 3, h, w) in [0, 1] and, for conditioned generators, ``prior`` (N, C, 4h, 4w), and
return ``sr`` (N, 3, 4h, 4w), unclamped, like the eager model. ``check_export`` runs an export on
inputs of a size other than the one it was traced at and reports the largest difference.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

from ..models import SFTGenerator

log = logging.getLogger(__name__)


def example_inputs(
    generator: SFTGenerator, h: int = 24, w: int = 20, batch: int = 1, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """A random LR image and a random (softmax) prior of matching size."""
    gen = torch.Generator().manual_seed(seed)
    cfg = generator.config
    lr = torch.rand(batch, cfg.in_channels, h, w, generator=gen)
    if not generator.uses_prior:
        return (lr,)
    prior = torch.softmax(3 * torch.randn(batch, cfg.num_classes, h * cfg.scale, w * cfg.scale, generator=gen), dim=1)
    return lr, prior


def _plain(generator: SFTGenerator) -> SFTGenerator:
    # Exports get contiguous (NCHW) weights: layout conversions inside forward would be traced as constants.
    g = SFTGenerator(**generator.config_dict())
    g.load_state_dict({k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()})
    return g.eval()


def export_torchscript(generator: SFTGenerator, path: str | Path) -> Path:
    """Trace the generator (shape checks are Python and are not traced) and save it; sizes stay dynamic."""
    g = _plain(generator)
    with torch.no_grad(), warnings.catch_warnings():
        # The input checks in forward are Python branches on shapes: not traced, by design.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # torch 2.14 marks torch.jit deprecated; TorchScript stays for C++/mobile consumers (libtorch)
        warnings.filterwarnings("ignore", r"`torch\.jit\.", FutureWarning)
        traced = torch.jit.trace(g, example_inputs(g), check_trace=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    traced.save(str(path))
    return path


def export_onnx(generator: SFTGenerator, path: str | Path, opset: int = 18) -> Path:
    """Export to ONNX (torch.export-based exporter) with dynamic N, h, w; the prior is ``scale`` x the LR size."""
    g = _plain(generator)
    inputs = example_inputs(g)
    n, h, w = torch.export.Dim("batch"), torch.export.Dim("h", min=2), torch.export.Dim("w", min=2)
    s = g.scale
    shapes = [{0: n, 2: h, 3: w}] + ([{0: n, 2: s * h, 3: s * w}] if g.uses_prior else [])
    names = ["lr", "prior"][: len(inputs)]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # lr and prior share the batch Dim; the exporter says it keeps one name for both, which is the intent
        warnings.filterwarnings("ignore", r".*The axis name: batch will not be used", UserWarning)
        torch.onnx.export(
            g,
            inputs,
            str(path),
            input_names=names,
            output_names=["sr"],
            dynamic_shapes=tuple(shapes),
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
    return path


def check_export(generator: SFTGenerator, path: str | Path, h: int = 19, w: int = 33, batch: int = 2) -> float:
    """Largest |export - eager| on a random input of a size the export was not traced at."""
    g = _plain(generator)
    inputs = example_inputs(g, h, w, batch, seed=1)
    with torch.no_grad():
        ref = g(*inputs)
    path = Path(path)
    if path.suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        out = torch.from_numpy(session.run(None, {k: v.numpy() for k, v in zip(names, inputs)})[0])
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", r"`torch\.jit\.", FutureWarning)
            module = torch.jit.load(str(path))
        with torch.no_grad():
            out = module(*inputs)
    if out.shape != ref.shape:
        raise RuntimeError(f"{path}: output shape {tuple(out.shape)} differs from the eager model's {tuple(ref.shape)}")
    return float((out - ref).abs().max())
