"""What the ComfyUI nodes (``comfyui_sftgan/``) do, without ComfyUI: load, build a prior, upscale.

ComfyUI passes images as ``IMAGE`` tensors ``(B, H, W, C)`` float in [0, 1] and masks as ``MASK``
``(B, H, W)`` float in [0, 1]. ``upscale`` does what ``predict.py`` does for each image of the batch:
the prior from the **whole** image (the segmenter sees all of it, as in training), the edits on top,
then the generator alone in tiles whose overlap is its receptive field, so the stitched output equals a
whole-image pass. ComfyUI's stock "Upscale Image (using Model)" instead runs the whole model (segmenter
included) on 512-px tiles with a 32-px overlap: each tile gets its own prior and the seams are inside the
SFT-Net's receptive field.

The host's hooks come in as arguments (``device``, ``precision``, ``progress``), so these functions run
and are tested without ComfyUI; the node pack passes ComfyUI's model management and progress bar.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from ..pipeline import SFTGANPipeline, load_pipeline
from ..priors import PriorEdits, PriorError, SegmentOptions, class_mask_from_image
from ..priors.edits import fit_mask
from ..state_dict import CheckpointError
from ..tensors import TensorValueError, check_image, range_problem
from .predict import mix
from .tiling import super_resolve_many

NOISE_CHANNEL = "noise_sigma"  # the channel the nodes' noise inputs set (priors.channels)
KEEP = 255  # a class-mask value that keeps the prior underneath


class NodeInputError(ValueError):
    """A node input that cannot be used: the message names the input and the fix (ComfyUI shows it)."""


def check_images(images: torch.Tensor, name: str = "image") -> torch.Tensor:
    """An ``IMAGE`` ``(B, H, W, 3)`` float in [0, 1], checked -> the same batch as ``(B, 3, H, W)`` float32."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[-1] != 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise NodeInputError(f"{name}: expected an IMAGE (B, H, W, 3) RGB, got {shape}")
    if min(images.shape[:3]) < 1:
        raise NodeInputError(f"{name}: empty image batch {tuple(images.shape)}")
    try:
        check_image(images, name)
    except TensorValueError as err:
        raise NodeInputError(str(err)) from None
    return images.detach().float().movedim(-1, 1).contiguous()


def check_mask(mask: torch.Tensor, batch: int, name: str = "mask") -> np.ndarray:
    """A ``MASK`` ``(B, H, W)`` or ``(H, W)`` float in [0, 1], batch 1 (every image) or ``batch`` -> float32 numpy."""
    if not isinstance(mask, torch.Tensor) or mask.dim() not in (2, 3):
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise NodeInputError(f"{name}: expected a MASK (B, H, W), got {shape}")
    mask = mask[None] if mask.dim() == 2 else mask
    if mask.shape[0] not in (1, batch):
        raise NodeInputError(f"{name}: {mask.shape[0]} masks for {batch} images; give one, or one per image")
    m = mask.detach().float()
    problem = range_problem(m, 0.0, 1.0, "[0, 1]")
    if problem:
        raise NodeInputError(f"{name}: {problem}")
    return m.cpu().numpy()


def load_model(
    path: str | os.PathLike, segmenter: str | os.PathLike | None = None, estimator: str | os.PathLike | None = None
) -> SFTGANPipeline:
    """A pipeline file, or a generator file with an optional segmenter (and estimator) file, as one pipeline.

    Args:
        path: a pipeline export (``sftgan-export``) or a generator (the released ``SFTGAN_noBN_OST_bg.pth``, an export).
        segmenter: for a generator file, its prior's segmenter; None: the uniform prior.
        estimator: for a generator file with continuous channels, a ``DegradationEstimator`` export.

    Returns:
        The ``SFTGANPipeline``, eval mode, on the CPU.
    """
    try:
        return load_pipeline(path, segmenter=segmenter, estimator=estimator)
    except ValueError as err:  # a pipeline file with a segmenter given too
        raise NodeInputError(f"{os.path.basename(path)}: {err}") from None
    except CheckpointError as err:
        raise NodeInputError(str(err)) from None


@dataclass(frozen=True)
class ComfyPrior:
    """What the ``SFTGAN prior`` node makes: where the class probabilities come from and the edits on top.

    ``source``: ``model`` (the loaded file's own: its segmenter or the uniform prior), ``uniform`` (no
    information). ``layers``: class masks ``(B, H, W)`` uint8 (class index, ``KEEP`` = the prior below), at the
    LR or the output size, batch 1 or the image batch; later layers paint over earlier ones.
    ``override`` / ``remap``: class names (the paper's editing), applied after the file's own edits.
    """

    source: str = "model"
    layers: tuple[np.ndarray, ...] = ()
    override: str | None = None
    remap: str | None = None
    sources: tuple[str, ...] = field(default=())  # names of the layers, for messages

    def edits(self, model: SFTGANPipeline, index: int, hr_size: tuple[int, int]) -> PriorEdits:
        """Image ``index``'s edits: the file's recorded ones, then this prior's (class names checked)."""
        base = model.prior_edits()
        names = model.class_names
        try:
            mine = PriorEdits.by_name(names, model.colors, self.override or None, None, self.remap or None)
        except (PriorError, ValueError) as err:
            message = str(err).replace("prior_override", "override").replace("prior_remap", "remap")
            raise NodeInputError(message) from None
        remap = {**base.remap, **mine.remap}
        override = mine.override if mine.override is not None else base.override
        mask = None
        for layer, source in zip(self.layers, self.sources):
            plane = layer[index if layer.shape[0] > 1 else 0]
            try:
                plane = fit_mask(plane, hr_size, source)
            except PriorError as err:
                raise NodeInputError(str(err)) from None
            mask = plane.copy() if mask is None else np.where(plane != KEEP, plane, mask)
        labels = {**base.labels, **mine.labels, **({"mask": " + ".join(self.sources)} if self.layers else {})}
        return PriorEdits(override, mask, remap, labels)


def class_of(model: SFTGANPipeline, name: str, what: str) -> int:
    """The index of class ``name`` of the model's prior, or a ``NodeInputError`` listing the classes."""
    if name not in model.class_names:
        raise NodeInputError(f"{what}={name!r}: not a class of this model ({', '.join(model.class_names)})")
    return model.class_names.index(name)


def make_prior(
    model: SFTGANPipeline,
    source: str = "model",
    base: ComfyPrior | None = None,
    mask: torch.Tensor | None = None,
    mask_class: str | None = None,
    painted: torch.Tensor | None = None,
    override: str | None = None,
    remap: str | None = None,
) -> ComfyPrior:
    """The ``SFTGAN prior`` node: a prior source and edits, on top of ``base`` when given.

    Args:
        model: the loaded pipeline (its classes and colours).
        source: ``model`` (its segmenter, or the uniform prior) or ``uniform``; ignored when ``base`` is given.
        base: an earlier prior to add edits to.
        mask: a ``MASK`` ``(B, H, W)`` in [0, 1] at the LR or output size: where it is >= 0.5 the prior is ``mask_class``.
        mask_class: the class the mask paints.
        painted: an ``IMAGE`` ``(B, H, W, 3)`` painted in the class colours (white: keep), at the LR or output size.
        override: a class for the whole image; remap: ``"source:target,..."`` class names.

    Returns:
        A ``ComfyPrior``.
    """
    if not model.generator.uses_prior:
        raise NodeInputError("this model takes no prior (conditioning=none): connect it to SFTGAN upscale directly")
    if source not in ("model", "uniform"):
        raise NodeInputError(f"source={source!r}: use model or uniform")
    prior = base or ComfyPrior(source)
    layers, sources = list(prior.layers), list(prior.sources)
    if mask is not None:
        if not mask_class:
            raise NodeInputError(
                f"mask given without mask_class: name the class it paints ({', '.join(model.class_names)})"
            )
        index = class_of(model, mask_class, "mask_class")
        m = check_mask(mask, mask.shape[0] if mask.dim() == 3 else 1)
        layers.append(np.where(m >= 0.5, index, KEEP).astype(np.uint8))
        sources.append(f"mask ({mask_class})")
    elif mask_class:
        raise NodeInputError(f"mask_class={mask_class} given without a mask")
    if painted is not None:
        rgb = check_images(painted, "painted").movedim(1, -1).numpy()
        planes = []
        for i, img in enumerate(rgb):
            try:
                planes.append(
                    class_mask_from_image(
                        np.round(img * 255).astype(np.uint8), model.class_names, model.colors, f"painted[{i}]"
                    )
                )
            except PriorError as err:
                raise NodeInputError(str(err)) from None
        layers.append(np.stack(planes))
        sources.append("painted image")
    if override:
        class_of(model, override, "override")
    return replace(
        prior,
        layers=tuple(layers),
        sources=tuple(sources),
        override=override or prior.override,
        remap=remap or prior.remap,
    )


def _channel_maps(
    model: SFTGANPipeline, noise_level: float | None, noise_map: np.ndarray | None, index: int
) -> dict[str, float | torch.Tensor]:
    """The continuous channels' values for image ``index``: node inputs, then the file's fixed values."""
    maps: dict[str, float | torch.Tensor] = dict(model.continuous)
    if noise_level is None and noise_map is None:
        return maps
    channel = next((c for c in model.channels if c.name == NOISE_CHANNEL), None)
    if channel is None:
        what = "noise_level" if noise_level is not None else "noise_map"
        raise NodeInputError(
            f"{what}: this model reads no {NOISE_CHANNEL} channel (its channels: "
            f"{', '.join(c.name for c in model.channels) or 'none'}); leave it unset"
        )
    if noise_map is not None:
        plane = torch.from_numpy(noise_map[index if noise_map.shape[0] > 1 else 0])
        maps[NOISE_CHANNEL] = channel.low + plane * (channel.high - channel.low)
    else:
        problem = channel.problem(torch.tensor([float(noise_level)]))
        if problem:
            raise NodeInputError(f"noise_level={noise_level:g}: {problem}")
        maps[NOISE_CHANNEL] = float(noise_level)
    return maps


@torch.no_grad()
def upscale(
    model: SFTGANPipeline,
    images: torch.Tensor,
    prior: ComfyPrior | None = None,
    noise_level: float | None = None,
    noise_map: torch.Tensor | None = None,
    tile: int | None = 256,
    precision: str = "fp32",
    device: torch.device | str = "cpu",
    progress: Callable[[int, int], None] | None = None,
    fidelity: SFTGANPipeline | None = None,
    strength: float = 1.0,
    segment: SegmentOptions = SegmentOptions(),
) -> torch.Tensor:
    """The ``SFTGAN upscale`` node: ``predict.py``'s path on a ComfyUI batch.

    Args:
        model: the loaded pipeline.
        images: ``IMAGE`` ``(B, H, W, 3)`` float RGB in [0, 1] (the LR).
        prior: the ``SFTGAN prior`` node's output; None: the file's own prior.
        noise_level: the noise channel's value (8-bit levels) for every pixel; None: the file's / estimator's / default.
        noise_map: a ``MASK`` ``(B, H, W)`` at the LR or output size: black = no noise, white = the channel's top.
        tile: generator tiles in LR pixels (None or 0: the whole image); the overlap is the receptive field.
        precision: ``fp32``, ``bf16`` or ``fp16`` (autocast).
        device: where the networks run; they are moved back to the CPU afterwards.
        progress: ``progress(done, total)`` per batch of tiles (ComfyUI's progress bar and interrupt).
        fidelity: a second pipeline (the fidelity end); with ``strength`` < 1 the output is
            ``fidelity + strength * (model - fidelity)``, as ``predict.py strength=``.
        strength: in [0, 1].
        segment: how the segmenter runs on large images (``predict.yaml``'s ``segment_*``).

    Returns:
        ``IMAGE`` ``(B, scale*H, scale*W, 3)`` float32 in [0, 1] on the CPU.
    """
    lr = check_images(images)
    b = lr.shape[0]
    noise = check_mask(noise_map, b, "noise_map") if noise_map is not None else None
    if noise_level is not None and noise is not None:
        raise NodeInputError("noise_level and noise_map are both given; connect one")
    if not (isinstance(strength, int | float) and 0 <= strength <= 1):
        raise NodeInputError(f"strength={strength}: a number in [0, 1] (0: the fidelity model, 1: this model)")
    if strength < 1 and fidelity is None:
        raise NodeInputError(f"strength={strength:g} needs a fidelity_model to blend with")
    tile = tile or None
    device = torch.device(device)
    ends = [model] if fidelity is None or strength == 1 else [model, fidelity]
    if len(ends) == 2 and (fidelity.scale != model.scale):
        raise NodeInputError(f"fidelity_model is x{fidelity.scale}, the model x{model.scale}")
    outs = []
    for end in ends:
        end.to(device)
        try:
            outs.append(_upscale_one(end, lr, prior, noise_level, noise, tile, precision, device, progress, segment))
        finally:
            end.to("cpu")
    if len(outs) == 2:
        outs = [[mix(low, high, np.full(low.shape[:2], float(strength), np.float32)) for high, low in zip(*outs)]]
    return torch.from_numpy(np.stack(outs[0])).clamp(0, 1)


def _upscale_one(model, lr, prior, noise_level, noise, tile, precision, device, progress, segment) -> list[np.ndarray]:
    prior = prior or ComfyPrior()
    base = model.as_prior(uniform=prior.source == "uniform")
    segment = replace(segment, device=str(device), precision=precision)
    s = model.scale
    jobs = []
    for i in range(lr.shape[0]):
        x = lr[i : i + 1]
        if not model.generator.uses_prior:
            jobs.append((x, None))
            continue
        h, w = x.shape[-2:]
        edits = prior.edits(model, i, (s * h, s * w))
        maps = _channel_maps(model, noise_level, noise, i)
        try:
            pm, _ = base.image_map(x, s, edits=edits, segment=segment, maps=maps, maps_source="noise input")
        except PriorError as err:
            raise NodeInputError(str(err)) from None
        jobs.append((x, pm))
    return super_resolve_many(model.generator, jobs, tile, precision=precision, as_float=True, progress=progress)


def describe(model: SFTGANPipeline) -> str:
    """One line for the loader node's log: scale, backbone, prior, classes, channels."""
    channels = ", ".join(c.describe() for c in model.channels) or "none"
    return (
        f"SFTGAN x{model.scale}, prior: {model.prior_type}, classes: {', '.join(model.class_names) or 'none'}, "
        f"continuous channels: {channels}"
    )
