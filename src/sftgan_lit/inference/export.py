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

from ..models import ConditionedGenerator

log = logging.getLogger(__name__)


def example_inputs(
    generator: ConditionedGenerator, h: int = 24, w: int = 20, batch: int = 1, seed: int = 0
) -> tuple[torch.Tensor, ...]:
    """A random LR image and a random prior of matching size (softmax classes, then continuous channels in [0, 1])."""
    gen = torch.Generator().manual_seed(seed)
    cfg = generator.config
    lr = torch.rand(batch, cfg.in_channels, h, w, generator=gen)
    if not generator.uses_prior:
        return (lr,)
    size = (h * cfg.scale, w * cfg.scale)
    prior = torch.softmax(3 * torch.randn(batch, cfg.num_classes, *size, generator=gen), dim=1)
    if cfg.num_continuous:  # normalised continuous channels follow the classes
        prior = torch.cat([prior, torch.rand(batch, cfg.num_continuous, *size, generator=gen)], dim=1)
    return lr, prior


def _plain(generator: ConditionedGenerator) -> ConditionedGenerator:
    # Exports get contiguous (NCHW) weights: layout conversions inside forward would be traced as constants.
    g = type(generator)(**generator.config_dict())
    g.load_state_dict({k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()})
    return g.eval()


def export_torchscript(generator: ConditionedGenerator, path: str | Path) -> Path:
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


def export_onnx(generator: ConditionedGenerator, path: str | Path, opset: int = 18) -> Path:
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


def check_export(generator: ConditionedGenerator, path: str | Path, h: int = 19, w: int = 33, batch: int = 2) -> float:
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


# --------------------------------------------------------------------------- one-input pipeline (ecosystem)
# chaiNNer and current onnxruntime both load opset 18 (chaiNNer's own PyTorch->ONNX export uses 14; its
# loader reads any opset the installed onnxruntime runs).
PIPELINE_OPSET = 18


def export_pipeline_onnx(pipeline, path: str | Path, fp16: bool = False, opset: int = PIPELINE_OPSET) -> Path:
    """The pipeline as ONNX with one input ``input`` (N, 3, h, w) and one output ``output`` (N, 3, s*h, s*w),
    dynamic batch, height and width (h, w >= 2); ``fp16``: weights, input and output in float16."""
    import copy

    from ..pipeline import SFTGANPipeline

    p: SFTGANPipeline = copy.deepcopy(pipeline).cpu().eval()
    p.generator = _plain(p.generator)
    p = p.half() if fp16 else p.float()
    return export_one_input(p, path, "input", "output", torch.float16 if fp16 else torch.float32, opset)


def export_coarse_logits(segmenter: torch.nn.Module, path: str | Path, opset: int = PIPELINE_OPSET) -> Path:
    """A segmenter up to its stride-8 logits (``coarse_logits``) as ONNX: input ``lr``, output ``logits``."""
    import copy

    class CoarseLogits(torch.nn.Module):
        def __init__(self, segmenter: torch.nn.Module) -> None:
            super().__init__()
            self.segmenter = segmenter

        def forward(self, lr: torch.Tensor) -> torch.Tensor:
            return self.segmenter.coarse_logits(lr)

    plain = copy.deepcopy(segmenter).cpu().float().to(memory_format=torch.contiguous_format)  # NCHW, as _plain
    module = CoarseLogits(plain.eval()).eval()
    return export_one_input(module, path, "lr", "logits", torch.float32, opset)


def export_one_input(
    module: torch.nn.Module, path: str | Path, input_name: str, output_name: str, dtype: torch.dtype, opset: int
) -> Path:
    """``module`` (one image input ``(N, 3, h, w)``) as a self-contained ONNX file with dynamic batch, height and
    width (>= 2), written atomically."""
    from ..files import atomic_write_bytes

    # traced at a size that is no multiple of 2, 4 or 16: a size-dependent pad then stays general in the graph
    x = torch.rand(1, 3, 17, 13, dtype=dtype)
    n, h, w = torch.export.Dim("batch"), torch.export.Dim("height", min=2), torch.export.Dim("width", min=2)
    with torch.no_grad():
        program = torch.onnx.export(
            module,
            (x,),
            None,
            input_names=[input_name],
            output_names=[output_name],
            dynamic_shapes=({0: n, 2: h, 3: w},),
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
    model = program.model_proto
    # The exporter annotates intermediate tensors with symbolic sizes; through a stride-2 network after a
    # pad to a multiple of 16 (LR-ASPP) two different sizes end up with one name, and onnxruntime then
    # reuses a buffer of the wrong size. Without the annotations the runtime infers the sizes itself.
    del model.graph.value_info[:]
    atomic_write_bytes(path, model.SerializeToString())
    return Path(path)


def check_image_to_image_onnx(path: str | Path, sizes: tuple[tuple[int, int], ...] = ((16, 16), (24, 20))) -> dict:
    """Apply chaiNNer's rules for an ONNX super-resolution model and return what chaiNNer would read.

    One graph input and one output, both float tensors (fp32 or fp16) of rank 4 in BCHW layout with a
    fixed channel count of at most 4, dynamic (or fixed) batch, height and width; the scale is read from
    trial runs (onnxruntime) at ``sizes``, and must be one integer for both axes at every size. Raises
    ``ValueError`` naming the rule broken. Returns ``{input_channels, output_channels, scale, dtype, opset}``.
    """
    import numpy as np
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1 or len(model.graph.output) != 1:
        raise ValueError(
            f"{path}: chaiNNer needs one input and one output, got {len(inputs)} and {len(model.graph.output)}"
        )
    info = {}
    for role, value in (("input", inputs[0]), ("output", model.graph.output[0])):
        if not value.type.HasField("tensor_type"):
            raise ValueError(f"{path}: the {role} is not a tensor")
        tensor = value.type.tensor_type
        if tensor.elem_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16):
            raise ValueError(f"{path}: the {role} is {onnx.TensorProto.DataType.Name(tensor.elem_type)}, not fp32/fp16")
        dims = [d.dim_param if d.HasField("dim_param") else d.dim_value for d in tensor.shape.dim]
        if len(dims) != 4:
            raise ValueError(f"{path}: the {role} has rank {len(dims)}; chaiNNer needs (N, C, H, W)")
        if not (isinstance(dims[1], int) and 1 <= dims[1] <= 4):
            raise ValueError(f"{path}: the {role}'s channel dim {dims[1]!r} must be a fixed 1-4 (BCHW)")
        info[f"{role}_channels"] = dims[1]
        info[f"{role}_dtype"] = "fp16" if tensor.elem_type == onnx.TensorProto.FLOAT16 else "fp32"
    info["opset"] = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), -1)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    dtype = np.float16 if info["input_dtype"] == "fp16" else np.float32
    scales = set()
    for h, w in sizes:
        out = session.run(
            None, {inputs[0].name: np.random.default_rng(0).random((1, info["input_channels"], h, w)).astype(dtype)}
        )[0]
        if out.ndim != 4 or out.shape[1] != info["output_channels"] or out.shape[2] % h or out.shape[3] % w:
            raise ValueError(f"{path}: a {w}x{h} input gave output {out.shape}, not an integer up-scale")
        scales |= {out.shape[2] // h, out.shape[3] // w}
    if len(scales) != 1:
        raise ValueError(f"{path}: the trial runs give different scales {sorted(scales)}")
    info["scale"] = scales.pop()
    return info


def check_pipeline_onnx(pipeline, path: str | Path, h: int = 19, w: int = 33, batch: int = 2) -> float:
    """Largest |ONNX - eager fp32 pipeline| on a random input of a size the export was not traced at."""
    import numpy as np
    import onnxruntime as ort

    x = torch.rand(batch, 3, h, w, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = pipeline.float().eval()(x)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    dtype = np.float16 if session.get_inputs()[0].type == "tensor(float16)" else np.float32
    out = session.run(None, {"input": x.numpy().astype(dtype)})[0].astype(np.float32)
    if out.shape != tuple(ref.shape):
        raise RuntimeError(f"{path}: output shape {out.shape} differs from the eager pipeline's {tuple(ref.shape)}")
    return float(np.abs(out - ref.numpy()).max())
