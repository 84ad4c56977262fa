"""Inference engines: which runtime and precision run the segmenter and the generator, chosen for the machine.

``engine=torch|onnxruntime|openvino|auto`` and ``precision=fp32|bf16|fp16|auto`` (predict, eval, the
pipeline benchmark). ``choose`` resolves ``auto`` from what the machine executes natively and what is
installed, and says why:

- ``precision=auto``: bf16 where the device runs it natively (CPUs with AMX-BF16 or AVX512-BF16, CUDA
  devices with bf16 support), else fp32. On CPUs without native bf16, bf16 is emulated and many times
  slower, so it is never chosen there.
- ``engine=auto``: on a CPU, OpenVINO when installed (fp32, or bf16 on AMX/AVX512-BF16 CPUs, where it
  was 6.2x faster than torch fp32 end to end on the project's Xeon), else torch for bf16 (autocast +
  channels_last), else onnxruntime for fp32 when installed, else torch; on a GPU, torch (measured in
  ``benchmarks/bench_engines.py`` and the README).

The ONNX engines run graphs exported from the same networks (``export.py``): the two-input generator,
and the segmenter up to its stride-8 logits, cached under ``<cache>/engines/<sha256 of the weights>``
so a checkpoint is exported once. Their outputs match torch fp32 within the tolerances the tests check
at odd sizes.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..config import ConfigError
from ..extras import installed as module_installed
from ..extras import missing as missing_extra
from ..extras import require as require_extra

log = logging.getLogger(__name__)

ENGINES = ("torch", "onnxruntime", "openvino")
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def _cpuinfo(field: str) -> str | None:
    """The first ``field`` line of ``/proc/cpuinfo`` (None where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags() -> set[str]:
    """The CPU's feature flags (empty where they cannot be read)."""
    return set((_cpuinfo("flags") or "").split())


def cpu_name() -> str:
    """The CPU's model name, for the benchmarks' figures."""
    import platform

    return _cpuinfo("model name") or platform.processor() or "unknown CPU"


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` executes bf16 arithmetic natively."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(cpu_flags() & set(NATIVE_BF16_FLAGS))


def installed(engine: str) -> bool:
    """Whether ``engine``'s package is there (torch always is)."""
    return engine == "torch" or module_installed(engine)


@dataclass(frozen=True)
class EngineChoice:
    engine: str
    precision: str
    why: str


def choose(engine: str, precision: str, device: torch.device) -> EngineChoice:
    """Resolve ``auto`` (module docstring) and check the combination; a ``ConfigError`` names what cannot run."""
    reasons = []
    if precision == "auto" and engine == "onnxruntime":
        precision = "fp32"
        reasons.append("precision=fp32: engine=onnxruntime runs fp32 graphs")
    if precision == "auto":
        precision = "bf16" if native_bf16(device) else "fp32"
        reasons.append(
            f"precision={precision}: "
            + (
                f"{device.type} runs bf16 natively"
                + (f" ({', '.join(sorted(cpu_flags() & set(NATIVE_BF16_FLAGS)))})" if device.type == "cpu" else "")
                if precision == "bf16"
                else f"no native bf16 on this {device.type}"
            )
        )
    if engine == "auto":
        if device.type != "cpu" or precision == "fp16":
            engine = "torch"
            reasons.append("engine=torch: autocast + channels_last is the fast path on GPUs and for fp16")
        elif installed("openvino"):
            engine = "openvino"
            reasons.append(f"engine=openvino: the fastest CPU engine measured, runs {precision}")
        elif precision == "bf16":
            engine = "torch"
            reasons.append("engine=torch: autocast bf16 + channels_last (OpenVINO is not installed)")
        else:
            engine = next(e for e in ("onnxruntime", "torch") if installed(e))
            reasons.append(f"engine={engine}: the fastest installed fp32 CPU engine")
    if engine not in ENGINES:
        raise ConfigError(f"engine={engine}: must be one of {', '.join(ENGINES)}, auto")
    if not installed(engine):
        raise missing_extra(engine, f"engine={engine}", "engines")
    runs = {"onnxruntime": ("fp32",), "openvino": ("fp32", "bf16")}.get(engine)
    if runs is not None and (precision not in runs or device.type != "cpu"):
        raise ConfigError(
            f"engine={engine} runs {' or '.join(runs)} on the CPU; got precision={precision} on {device}: "
            "use engine=torch for that"
        )
    return EngineChoice(engine, precision, "; ".join(reasons) or "as configured")


def _digest(module: nn.Module, tag: str) -> str:
    h = hashlib.sha256(tag.encode())
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:24]


class _Session:
    """One exported graph run by onnxruntime (fp32) or OpenVINO (fp32 or bf16) on the CPU, fed and returning
    torch tensors."""

    def __init__(self, engine: str, path: Path, precision: str = "fp32") -> None:
        self.engine = engine
        if engine == "onnxruntime":
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self.names = [i.name for i in self.session.get_inputs()]
        else:
            import openvino as ov

            core = ov.Core()
            # explicit: OpenVINO would otherwise pick bf16 by itself on AMX CPUs; the precision is precision='s choice
            hint = {"fp32": "f32", "bf16": "bf16"}[precision]
            self.compiled = core.compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": hint})

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        arrays = [np.ascontiguousarray(x.detach().float().cpu().numpy()) for x in inputs]
        if self.engine == "onnxruntime":
            out = self.session.run(None, dict(zip(self.names, arrays)))[0]
        else:
            out = self.compiled(arrays)[self.compiled.output(0)]
        return torch.from_numpy(np.asarray(out))


def cache_dir() -> Path:
    from ..data.demo import default_cache_dir

    return default_cache_dir() / "engines"


def _cached_session(
    kind: str, module: nn.Module, tag: str, export, engine: str, folder: Path | None, precision: str
) -> _Session:
    """A session on ``<folder>/<kind>-<hash of the weights and tag>.onnx``, made with ``export(module, path)`` on
    first use (once per checkpoint)."""
    path = (folder or cache_dir()) / f"{kind}-{_digest(module, tag)}.onnx"
    if not path.is_file():
        # the graph comes from torch's ONNX exporter, which needs onnx and onnxscript
        for name in ("onnx", "onnxscript"):
            require_extra(name, f"engine={engine}", "engines")
        log.info("exporting the %s for engine=%s to %s (once per checkpoint)", kind, engine, path)
        export(module, path)
    return _Session(engine, path, precision)


class GeneratorRunner:
    """``runner(lr, prior) -> sr`` for tiles (what ``tiling.super_resolve_many`` calls) on an ONNX engine."""

    def __init__(self, generator, engine: str, folder: Path | None = None, precision: str = "fp32") -> None:
        from .export import export_onnx

        tag = str(generator.config_dict())
        self.session = _cached_session("generator", generator, tag, export_onnx, engine, folder, precision)
        self.uses_prior = generator.uses_prior

    def __call__(self, lr: torch.Tensor, prior: torch.Tensor | None) -> torch.Tensor:
        return self.session(lr, prior) if self.uses_prior else self.session(lr)


class CompiledRunner:
    """``runner(lr, prior) -> sr`` for tiles: the torch generator under ``torch.compile`` (``compile=true``), each
    window whole (no strips of the upsampling layers: the compiled graph is the whole network). Shapes: compiled
    for the first window shape, then once with dynamic height and width (torch's automatic dynamic shapes), so
    edge tiles and other images reuse it."""

    backend = "inductor"

    def __init__(self, generator, precision: str = "fp32", mode: str = "default") -> None:
        import torch

        from ..precision import autocast

        self.fn = torch.compile(generator, mode=mode, backend=self.backend)
        self.uses_prior = generator.uses_prior
        self.device, self.precision, self._autocast = next(generator.parameters()).device, precision, autocast

    def __call__(self, lr, prior):
        import torch

        with torch.no_grad(), self._autocast(self.device, self.precision):
            return self.fn(lr, prior if self.uses_prior else None)


class SegmenterRunner(nn.Module):
    """A segmenter whose ``coarse_logits`` (the network) runs on an ONNX engine; decoding stays in torch."""

    def __init__(self, segmenter: nn.Module, engine: str, folder: Path | None = None, precision: str = "fp32") -> None:
        super().__init__()
        self.segmenter = segmenter
        self.scale, self.num_classes = segmenter.scale, segmenter.num_classes
        self.coarse_stride, self.coarse_margin = segmenter.coarse_stride, segmenter.coarse_margin
        from .export import export_coarse_logits

        tag = type(segmenter).__name__
        self.session = _cached_session("segmenter", segmenter, tag, export_coarse_logits, engine, folder, precision)

    def coarse_logits(self, lr: torch.Tensor) -> torch.Tensor:
        return self.session(lr)

    def decode_coarse(self, logits: torch.Tensor) -> torch.Tensor:
        return self.segmenter.decode_coarse(logits)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        h, w = lr.shape[-2] * self.scale, lr.shape[-1] * self.scale
        return self.decode_coarse(self.coarse_logits(lr))[..., :h, :w]
