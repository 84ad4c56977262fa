"""Reading and writing networks as checkpoint files: generators (the released files, this package's
exports, Lightning checkpoints) and prior segmenters, as ``.pth`` or ``.safetensors``, with the record of
what each file holds; everything strict and pickle-free (``state_dict``). Which network a file holds is
the registry's business (``registry.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from ..state_dict import (
    CheckpointError,
    cpu_state,
    listing,
    load_checkpoint_file,
    load_strict,
    save_atomic,
    save_safetensors,
    unwrap_state_dict,
)
from .conditioned import ConditionedGenerator
from .estimator import DegradationEstimator
from .registry import ARCHITECTURE, ARCHITECTURES, SEGMENTER_ARCHS, architecture_of, infer_generator, variant_of
from .segmenter import OutdoorSceneSeg

# Key under which this package's exports store the generator's constructor arguments.
CONFIG_KEY = "sftgan_lit_config"
# Key of the facts an export records beside its tensors (the safetensors header holds the same): what it is,
# its classes and colours, the package version, the training run's key facts.
RECORD_KEY = "sftgan_lit_record"
# Attribute names of the generator inside SFTGANModule's Lightning checkpoints, EMA first.
LIGHTNING_GENERATOR_PREFIXES = ("ema.module.", "generator_ema.", "generator.")


def generator_from_state_dict(
    sd: Mapping[str, torch.Tensor],
    config: Mapping | None = None,
    source: str = "checkpoint",
    architecture: str = ARCHITECTURE,
) -> ConditionedGenerator:
    """A generator built from ``config`` (the constructor arguments of ``architecture``, a name in
    ``ARCHITECTURES``), or inferred from ``sd`` when ``config`` is None, with ``sd`` loaded strictly; a
    recorded ``config`` that does not fit the tensors is named as such."""
    if config is None:
        generator, sd = infer_generator(sd, source)
        load_strict(generator, sd, source)
        return generator
    config = dict(config)
    if not config.get("extra", True):
        del config["extra"]  # an empty placeholder that earlier exports carry
    if architecture not in ARCHITECTURES:
        raise CheckpointError(f"{source}: records architecture {architecture!r}, not one of {', '.join(ARCHITECTURES)}")
    try:
        generator = ARCHITECTURES[architecture].network(**config)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{source}: the recorded {architecture} config is not valid ({err})") from err
    try:
        load_strict(generator, sd, source)
    except CheckpointError as err:
        sizes = ", ".join(f"{k}={getattr(generator.config, k)}" for k in generator.config.SIZES)
        raise CheckpointError(
            f"{source}: the recorded architecture ({architecture}: {sizes}, scale={generator.config.scale}, "
            f"num_classes={generator.config.num_classes}, conditioning={generator.config.conditioning}) "
            f"does not fit its tensors: {err}"
        ) from err
    return generator


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sftgan_lit")
    except PackageNotFoundError:
        return "unknown"


def check_class_names(names, count: int, source: str) -> None:
    """Recorded class names must be one per class of the network (``count``)."""
    if names is not None and (not isinstance(names, list | tuple) or len(names) != count):
        raise CheckpointError(
            f"{source}: the recorded class names {names} do not fit the network, which has {count} classes"
        )


def network_facts(generator: ConditionedGenerator) -> dict:
    """What a record states about the computation: architecture, variant, scale, channels, classes and
    conditioning (written by ``generator_record``, checked on load by ``check_record``)."""
    cfg = generator.config
    arch = architecture_of(generator).name
    return {
        "architecture": arch,
        "variant": variant_of(generator.config_dict(), arch),
        "scale": cfg.scale,
        "input_channels": cfg.in_channels,
        "output_channels": cfg.out_channels,
        "num_classes": cfg.num_classes,
        "num_continuous": cfg.num_continuous,
        "conditioning": str(cfg.conditioning),
    }


def generator_record(
    generator: ConditionedGenerator,
    class_names: Iterable[str] | None = None,
    colors: Iterable | None = None,
    training=None,
    continuous: Iterable[Mapping] | None = None,
) -> dict:
    """What a generator export records about itself (``RECORD_KEY``; the safetensors header). ``continuous``:
    the prior's continuous channels (``priors.Channel.record()``), one per ``num_continuous``."""
    cfg = generator.config
    record = {
        "kind": "generator",
        **network_facts(generator),
        "class_names": [str(c) for c in class_names] if class_names is not None else None,
        "colors": [[int(v) for v in c] for c in colors] if colors is not None else None,
        "continuous": [dict(c) for c in continuous or ()],
        "package_version": package_version(),
        "training": dict(training or {}),
    }
    if cfg.num_classes:
        check_class_names(record["class_names"], cfg.num_classes, "export_generator")
    check_continuous(record["continuous"], cfg.num_continuous, "export_generator")
    return record


def check_continuous(channels, count: int, source: str) -> None:
    """Recorded continuous channels (a list of ``{name, unit, low, high, default}``) must be one per continuous
    input of the network (``count``); files from before continuous channels record none and have none."""
    channels = list(channels or ())
    ok = all(isinstance(c, Mapping) and {"name", "low", "high", "default"} <= set(c) for c in channels)
    if not ok or len(channels) != count:
        raise CheckpointError(
            f"{source}: the recorded continuous channels {channels} do not fit the network, which has {count}"
        )


def write_export(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike, entries: Mapping) -> None:
    """An export file: ``.safetensors`` (``entries`` as JSON in its header) or a ``torch.save`` dict
    (``{"params": tensors, **entries}``), atomically; both read back the same through ``load_checkpoint_file``."""
    if str(path).lower().endswith(".safetensors"):
        save_safetensors(tensors, path, entries)
    else:
        save_atomic({"params": dict(tensors), **entries}, path)


def load_generator(
    path: str | os.PathLike, prefer_ema: bool = True, channels_last: bool = True
) -> ConditionedGenerator:
    """Load any SFTGAN generator checkpoint, in eval mode.

    Accepts the released ``SFTGAN_noBN_OST_bg.pth`` (PyTorch) and ``SFTGAN_torch.pth`` (Torch7-converted)
    files, exports of this package, Lightning checkpoints of ``SFTGANModule`` (EMA weights when present
    and ``prefer_ema``), and ``{'state_dict'|'params'|'params_ema': ...}`` wrappers. The variant is
    detected from the keys. ``g(lr, prior)`` then returns exactly what the original network returns
    (up to float rounding). ``channels_last`` stores the weights NHWC, the fast layout for convolutions
    on CPUs and for mixed precision on GPUs; inputs are converted to match inside ``forward``.

    Args:
        path: a ``.pth``, ``.ckpt`` or ``.safetensors`` file (read with ``weights_only=True``: a file
            carrying code is refused and its code never runs).
        prefer_ema: in a Lightning checkpoint, take the EMA generator when there is one.
        channels_last: return the model in the channels_last memory format.

    Returns:
        The ``SFTGenerator`` in eval mode, its ``record`` holding what the file says about it (classes,
        colours, training facts). Keys or shapes that do not fit raise one ``CheckpointError`` listing them.
    """
    obj = load_checkpoint_file(path)
    prefixes = LIGHTNING_GENERATOR_PREFIXES if prefer_ema else LIGHTNING_GENERATOR_PREFIXES[::-1]
    sd = unwrap_state_dict(obj, prefixes, source=str(path))
    config = obj.get(CONFIG_KEY)
    if config is not None and not isinstance(config, Mapping):
        raise CheckpointError(f"{path}: '{CONFIG_KEY}' must be a dict of constructor arguments")
    record = read_record(obj, str(path))
    generator = generator_from_state_dict(sd, config, str(path), record.get("architecture", ARCHITECTURE))
    check_record(record, generator, str(path))
    if generator.config.num_classes:
        check_class_names(record.get("class_names"), generator.config.num_classes, str(path))
    if record or generator.config.num_continuous:
        check_continuous(record.get("continuous"), generator.config.num_continuous, str(path))
    generator.record = record
    if channels_last:
        generator = generator.to(memory_format=torch.channels_last)
    return generator.eval()


def check_record(record: Mapping, generator: ConditionedGenerator, source: str) -> None:
    """Every fact a file's record states about the computation (architecture, variant, scale, channels, classes,
    conditioning) equals what the network built from its config and tensors does; a ``CheckpointError``
    naming each disagreement otherwise (an edited or damaged header would load another network silently)."""
    actual = network_facts(generator)
    differ = [f"{k}: record {record[k]!r}, network {v!r}" for k, v in actual.items() if k in record and record[k] != v]
    if differ:
        raise CheckpointError(
            f"{source}: its record and the network its config and tensors build disagree ({'; '.join(differ)}); "
            "the file was edited or damaged: export it again"
        )


def read_record(obj: Mapping, source: str) -> dict:
    """The ``RECORD_KEY`` facts of a loaded file (``{}`` for files without); its architecture a registered one."""
    record = obj.get(RECORD_KEY) or {}
    if not isinstance(record, Mapping):
        raise CheckpointError(f"{source}: '{RECORD_KEY}' must be a dict")
    if record.get("architecture", ARCHITECTURE) not in ARCHITECTURES:
        raise CheckpointError(
            f"{source}: records architecture {record['architecture']!r}, not one of {', '.join(ARCHITECTURES)}"
        )
    return dict(record)


def export_generator(
    generator: ConditionedGenerator,
    path: str | os.PathLike,
    class_names: Iterable[str] | None = None,
    colors: Iterable | None = None,
    training: Mapping | None = None,
    continuous: Iterable[Mapping] | None = None,
) -> None:
    """Save the generator alone, in the original key layout, with its constructor arguments and record
    (``generator_record``), atomically: ``.safetensors`` (no pickle) or a ``torch.save`` file.

    Args:
        generator: the network to save.
        path: the file; ``.safetensors`` writes the record into its header.
        class_names: one name per prior class (recorded; checked against the network).
        colors: one ``[r, g, b]`` (0-255) per class, for overlays and masks.
        training: facts of the run that trained it (steps, loss weights, prior).
        continuous: the prior's continuous channels (``Channel.record()``), one per ``num_continuous``.
    """
    entries = {
        CONFIG_KEY: generator.config_dict(),
        RECORD_KEY: generator_record(generator, class_names, colors, training, continuous),
    }
    write_export(cpu_state(generator), path, entries)


SEGMENTER_KEY = "sftgan_lit_segmenter"


def _dotted(cls: type) -> str:
    return next(name for name, c in SEGMENTER_ARCHS.items() if c is cls)


def export_segmenter(
    segmenter: nn.Module, path: str | os.PathLike, class_names: Iterable[str], colors: Iterable
) -> None:
    """Save a trained prior segmenter with its architecture, constructor arguments, class names and
    colours, so a prior config needs only the path (``prior=learned prior.weights=PATH``)."""
    write_export(cpu_state(segmenter), path, {SEGMENTER_KEY: segmenter_record(segmenter, class_names, colors)})


def segmenter_record(segmenter: nn.Module, class_names: Iterable[str], colors: Iterable) -> dict:
    """A segmenter's architecture (by allow-listed dotted name), constructor arguments, classes and colours."""
    spec = {
        "target": _dotted(type(segmenter)),
        "kwargs": dict(segmenter.config_dict()),
        "class_names": [str(c) for c in class_names],
        "colors": [[int(v) for v in c] for c in colors],
    }
    check_class_names(spec["class_names"], segmenter.num_classes, "export_segmenter")
    return spec


def segmenter_spec(path: str | os.PathLike, obj: Mapping) -> dict | None:
    """The architecture/classes record of checkpoint ``obj`` (loaded from ``path``) written by
    ``export_segmenter``; None for the released file."""
    spec = obj.get(SEGMENTER_KEY)
    if spec is not None and not (
        isinstance(spec, Mapping) and spec.get("target") in SEGMENTER_ARCHS and isinstance(spec.get("kwargs"), Mapping)
    ):
        raise CheckpointError(
            f"{path}: '{SEGMENTER_KEY}' must name one of {sorted(SEGMENTER_ARCHS)} with a dict of kwargs"
        )
    return dict(spec) if spec is not None else None


def load_segmenter(path: str | os.PathLike, **arch) -> nn.Module:
    """Load a prior segmenter strictly, in eval mode.

    Args:
        path: the released ``segmentation_OST_bic.pth``, an ``OutdoorSceneSeg`` state dict, or a file written
            by ``export_segmenter`` (which records its architecture, classes and colours).
        **arch: ``OutdoorSceneSeg`` arguments (``layers``, ``base_width``) for a state dict of another size.

    Returns:
        The segmenter: ``seg(lr)`` maps ``(N, 3, h, w)`` RGB in [0, 1] to ``(N, C, scale*h, scale*w)`` class
        probabilities.
    """
    return read_segmenter(path, **arch)[0]


def read_segmenter(path: str | os.PathLike, **arch) -> tuple[nn.Module, dict | None]:
    """Load a prior segmenter strictly, eval mode, and the record ``export_segmenter`` wrote (or None).

    A file written by ``export_segmenter`` carries its architecture and is rebuilt from it (``arch``
    must then be empty). Otherwise it is ``segmentation_OST_bic.pth`` or a compatible
    ``OutdoorSceneSeg`` state dict: ``arch`` gives constructor arguments (``layers``, ``base_width``)
    for non-released sizes and the class count is read from the checkpoint.
    """
    obj = load_checkpoint_file(path)
    spec = segmenter_spec(path, obj)
    if spec is not None:
        if arch:
            raise CheckpointError(f"{path} records its architecture ({spec['target']}); remove prior.arch={arch}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["kwargs"].items()}
        try:
            segmenter = SEGMENTER_ARCHS[spec["target"]](**kwargs)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{path}: the recorded {spec['target']} arguments are not valid ({err})") from err
        check_class_names(spec.get("class_names"), segmenter.num_classes, str(path))
        try:
            load_strict(segmenter, unwrap_state_dict(obj, ("segmenter.",), source=str(path)), source=str(path))
        except CheckpointError as err:
            raise CheckpointError(
                f"{path}: the recorded architecture ({spec['target']}, {spec['kwargs']}) does not fit its tensors: {err}"
            ) from err
        return segmenter.eval(), spec
    sd = unwrap_state_dict(obj, prefixes=("segmenter.", "model."), source=str(path))
    if "deconv.weight" not in sd:
        raise CheckpointError(
            f"{path}: neither a segmenter exported by this package nor an OutdoorSceneSeg state dict "
            f"(no 'deconv.weight', which holds the class count; first keys: {listing(list(sd), 6)})"
        )
    num_classes = sd["deconv.weight"].shape[0]
    arch = {k: tuple(v) if isinstance(v, list) else v for k, v in arch.items()}
    segmenter = OutdoorSceneSeg(num_classes=num_classes, **arch)
    load_strict(segmenter, sd, source=str(path))
    return segmenter.eval(), None


ESTIMATOR_KEY = "sftgan_lit_estimator"


def export_estimator(estimator: DegradationEstimator, path: str | os.PathLike, continuous: Iterable[Mapping]) -> None:
    """Save a trained ``DegradationEstimator`` with its constructor arguments and the continuous channels it
    predicts (``priors.Channel.record()``, in order), atomically (``.safetensors`` or ``torch.save``)."""
    channels = [dict(c) for c in continuous]
    check_continuous(channels, estimator.config.num_continuous, "export_estimator")
    record = {"config": estimator.config_dict(), "continuous": channels, "package_version": package_version()}
    write_export(cpu_state(estimator), path, {ESTIMATOR_KEY: record})


def load_estimator(path: str | os.PathLike) -> tuple[DegradationEstimator, list[dict]]:
    """A ``DegradationEstimator`` written by ``export_estimator``, strictly, in eval mode, and the channels it
    predicts (records ``{name, unit, low, high, default}``). Any other file is a ``CheckpointError`` naming it."""
    obj = load_checkpoint_file(path)
    record = obj.get(ESTIMATOR_KEY)
    if not isinstance(record, Mapping) or not isinstance(record.get("config"), Mapping):
        raise CheckpointError(
            f"{path}: not a degradation estimator exported by this package (no '{ESTIMATOR_KEY}' record); "
            "train one with experiment=degradation_estimator"
        )
    try:
        estimator = DegradationEstimator(**record["config"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: the recorded estimator config is not valid ({err})") from err
    check_continuous(record.get("continuous"), estimator.config.num_continuous, str(path))
    load_strict(estimator, unwrap_state_dict(obj, ("estimator.",), source=str(path)), source=str(path))
    estimator.channels = [dict(c) for c in record["continuous"]]
    return estimator.eval(), estimator.channels
