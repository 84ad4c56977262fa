"""What runs where: the device, the checkpoint (``latest`` = the newest export under ``outputs/``), and a
generator loaded for a given prior."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..config import ConfigError
from ..models import ConditionedGenerator, load_generator
from ..priors import Prior, PriorError, SegmentOptions
from ..state_dict import CheckpointError

# What train.py's modules export, newest first wins for checkpoint=latest.
EXPORT_NAMES = ("generator.pth", "generator.safetensors")

log = logging.getLogger(__name__)


def pick_device(spec: str) -> torch.device:
    """``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N``; an unavailable CUDA device is an error."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"device={spec}: not a device (auto, cpu, cuda, cuda:N, ...)") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={spec}: CUDA is not available on this machine; use device=cpu or device=auto")
    return device


def resolve_checkpoint(spec: str | None, search_roots=("outputs", "multirun")) -> Path:
    """``checkpoint``: a path, or ``latest``: the newest ``generator.pth`` (or ``.safetensors``) exported by a ``train.py`` run (a folder
    with Hydra's ``.hydra/``) under ``outputs/`` or ``multirun/``."""
    if not spec:
        raise FileNotFoundError(
            "checkpoint is not set: give checkpoint=/path/to/generator.pth (or a Lightning .ckpt, or SFTGAN_noBN_OST_bg.pth)"
        )
    if spec == "latest":
        # train.py's runs only (their folder holds Hydra's .hydra/): not make ablation / make pipeline exports
        found = [
            p
            for root in search_roots
            for name in EXPORT_NAMES
            for p in Path(root).glob(f"**/{name}")
            if (p.parent / ".hydra").is_dir()
        ]
        if not found:
            raise FileNotFoundError(
                f"checkpoint=latest: no generator.pth under {', '.join(search_roots)}/ in {Path.cwd()}; run python train.py "
                "first or give checkpoint=/path/to/a/checkpoint"
            )
        return max(found, key=lambda p: p.stat().st_mtime)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint={spec}: file not found")
    return path


def load_for_prior(
    ckpt: Path, prior: Prior, device: torch.device, channels_last: bool = True, key: str = "checkpoint"
) -> ConditionedGenerator:
    """The generator of ``ckpt`` on ``device``, checked to be conditioned on as many classes as ``prior`` has."""
    try:
        generator = load_generator(ckpt, channels_last=channels_last).to(device)
    except CheckpointError as err:
        raise CheckpointError(f"{key}: {err}") from err
    problem = prior.generator_problem(generator)
    if problem:
        raise PriorError(f"checkpoint {ckpt}: {problem}; choose the prior the model was trained with")
    return generator


def choose_engine(options, device: torch.device):
    """Resolve ``options.engine`` / ``options.precision`` (``engines.choose``), write the resolved precision back
    into ``options`` and log the choice and why."""
    from .engines import choose

    choice = choose(options.engine, options.precision, device)
    options.precision = choice.precision
    log.info("engine=%s precision=%s (%s)", choice.engine, choice.precision, choice.why)
    return choice


def segmenter_engine(choice):
    """``SegmentOptions.engine`` for an engine choice: the segmenter on an ONNX engine (one exported graph per
    segmenter), or None for torch."""
    from .engines import SegmenterRunner

    if choice is None or choice.engine == "torch":
        return None
    runners: dict[int, SegmenterRunner] = {}

    def engine(segmenter, kind=choice.engine):
        if id(segmenter) not in runners:
            runners[id(segmenter)] = SegmenterRunner(segmenter, kind, precision=choice.precision)
        return runners[id(segmenter)]

    return engine


def segment_options(cfg, device: torch.device, choice=None) -> SegmentOptions:
    """The ``segment_*`` keys of a predict/eval config, with the chosen engine and precision."""
    precision = choice.precision if choice is not None else cfg.precision
    return SegmentOptions(
        cfg.segment_max_pixels, cfg.segment_tile, cfg.segment_overlap, precision, str(device), segmenter_engine(choice)
    )


def generator_runner(choice, generator: ConditionedGenerator, compile: bool = False, compile_mode: str = "default"):
    """``engines.GeneratorRunner`` for an ONNX engine, ``engines.CompiledRunner`` for torch with ``compile``, None
    for plain torch (``tiling`` runs the module itself). ``compile`` on another engine is a ``ConfigError``."""
    from .engines import CompiledRunner, GeneratorRunner

    if compile:
        if choice is not None and choice.engine != "torch":
            raise ConfigError(
                f"compile=true runs torch.compile on the torch engine; set engine=torch (not {choice.engine})"
            )
        return CompiledRunner(generator, choice.precision if choice is not None else "fp32", compile_mode)
    if choice is None or choice.engine == "torch":
        return None
    return GeneratorRunner(generator, choice.engine, precision=choice.precision)
