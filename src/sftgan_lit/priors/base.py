"""What a categorical prior is: its classes and colours, and the two questions every prior answers.

- **The batch question** (training, preparation): ``for_sample`` gives a training crop's probabilities
  from what the data holds (its label map, its stored probabilities); ``on_device`` fills them per
  batch on the device when they are computed there (online segmenters); ``from_lr`` gives a whole
  image's probabilities from its LR alone (what ``sftgan-prepare`` caches).
- **The image question** (inference): ``image_map`` gives the prior of a whole image as a ``PriorMap``
  that hands out any window of it (tiled inference never holds a 4000x3000x8 float map), with the
  paper's prior edits applied on top.

A prior is chosen by ``prior=NAME`` (``conf/prior/NAME.yaml`` instantiates one of these classes) and
everything downstream reads the class count, names and colours from it. A new prior is a config file
plus, if its probabilities come from somewhere new, a small subclass overriding ``for_sample`` /
``on_device`` / ``from_lr`` / ``_image_map``; no caller asks which subclass it has.

Probabilities are ``(N, C, H, W)`` (or ``(C, H, W)``) float tensors at HR resolution whose rows (the C
values of each pixel) sum to 1. A prior may stack continuous channels after its classes (``continuous``:
``channels.Channel``, e.g. a noise level); the generator then reads ``(N, C + K, H, W)``, the K channels
normalised to [0, 1]. Training takes them from a degradation that knows them per pixel (the datamodule
stacks them), inference from ``image_map``'s ``maps``, the estimator or their defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..categories import OUTDOOR_CLASSES, OUTDOOR_COLORS, VOID_LABEL
from ..tensors import check_image
from .channels import Channel, from_record, parse_channels, stack_problem
from .edits import PriorEdits
from .maps import ChannelMap, DenseProbs, PriorMap, StackedPriorMap, UniformPriorMap
from .validation import PriorError, validate_probs

__all__ = ["VOID_LABEL", "Prior", "PriorError", "SegmentOptions", "UniformPrior", "validate_probs"]


@dataclass(frozen=True)
class SegmentOptions:
    """How a segmenter prior runs at inference time (``predict.yaml``'s ``segment_*`` keys).

    ``max_pixels``: largest upsampled image (``16 * h * w``) segmented in one pass, None = always whole;
    ``tile`` / ``overlap``: LR pixels of the blended tiles above it.
    """

    max_pixels: int | None = 4_000_000
    tile: int = 256
    overlap: int = 64
    precision: str = "fp32"
    device: str = "cpu"
    # runs a torch segmenter on another engine (``inference.engines.SegmenterRunner``); None: torch
    engine: Callable | None = None


class Prior:
    """Base class: class names, colours, and the batch and image questions (module docstring).

    The base class is the prior that carries no information: every class equally likely everywhere.
    """

    #: whether ``for_sample`` needs the data's label maps (checked when a dataset is built)
    needs_labels: bool = False

    def __init__(
        self,
        name: str,
        num_classes: int = len(OUTDOOR_CLASSES),
        class_names: Sequence[str] = OUTDOOR_CLASSES,
        colors: Sequence[Sequence[int]] = OUTDOOR_COLORS,
        continuous: Sequence | None = None,
        estimator: str | None = None,
    ) -> None:
        # The defaults are the paper's 8 outdoor classes (conf/classes/outdoor.yaml); every other class set
        # is given explicitly, and the three must agree.
        class_names = tuple(str(c) for c in class_names)
        colors = tuple(tuple(int(v) for v in c) for c in colors)
        if len(class_names) != num_classes or len(colors) != num_classes:
            raise PriorError(
                f"prior {name!r}: num_classes={num_classes} but {len(class_names)} class_names and {len(colors)} colors "
                "are configured; make the three agree in conf/prior/"
            )
        if any(len(c) != 3 or not all(0 <= v <= 255 for v in c) for c in colors):
            raise PriorError(f"prior {name!r}: colors must be RGB triples in 0-255, got {colors}")
        self.name = name
        self.num_classes = num_classes
        self.class_names = class_names
        self.colors = colors
        #: the continuous channels stacked after the classes (``channels``; ``prior.continuous``)
        self.continuous: tuple[Channel, ...] = parse_channels(continuous)
        #: a ``DegradationEstimator`` export that fills the continuous channels nothing else gives (inference)
        self.estimator = str(estimator) if estimator else None
        if self.estimator and not self.continuous:
            raise PriorError(f"prior.estimator={estimator}: prior={name} has no continuous channels to estimate")
        self._estimator = None

    def generator_problem(self, generator) -> str | None:
        """How ``generator`` (a ``ConditionedGenerator``; its ``record`` when loaded from a file) does not fit
        this prior's stack (class count, continuous channels by name and range), or None."""
        if not generator.uses_prior:
            return None
        cfg = generator.config
        if cfg.num_classes != self.num_classes:
            return f"it is conditioned on {cfg.num_classes} classes but prior={self.name} has {self.num_classes}"
        record = getattr(generator, "record", None)
        if record is not None and "continuous" in record:
            problem = stack_problem(self.continuous, from_record(record["continuous"]))
            if problem:
                return problem
        if cfg.num_continuous != len(self.continuous):
            return (
                f"it reads {cfg.num_continuous} continuous prior channels but prior={self.name} has "
                f"{len(self.continuous)} ({', '.join(c.name for c in self.continuous) or 'none'})"
            )
        return None

    def continuous_maps(self, maps: dict[str, torch.Tensor]) -> torch.Tensor:
        """Each continuous channel's values ``(N, H, W)`` in its unit (``maps`` by channel name) -> the part of the
        generator's prior after the classes, ``(N, K, H, W)``, normalised to [0, 1] in the configured order."""
        missing = [c.name for c in self.continuous if c.name not in maps]
        if missing:
            raise PriorError(f"prior={self.name}: no values for the continuous channel(s) {', '.join(missing)}")
        return torch.stack([c.normalise(maps[c.name]) for c in self.continuous], dim=1)

    # ------------------------------------------------------------------ what the data layer stores
    @property
    def cached_probs(self) -> bool:
        """True when ``sftgan-prepare`` computes this prior's probabilities once (``from_lr``) and stores them."""
        return False

    @property
    def store_key(self) -> str:
        """Names the prepared store of this prior's cached probabilities."""
        return self.name

    def store_identity(self) -> dict:
        """What the cached probabilities depend on besides the images (recorded in the store's header)."""
        return {}

    @property
    def online(self) -> bool:
        """True when the prior is computed on the device per batch (``on_device``), not per sample."""
        return False

    def check_ready(self) -> None:
        """Fail now, naming the config key, if the prior cannot work (e.g. missing weights); subclasses that
        override it call this too (the estimator's file)."""
        if self.estimator:
            self.estimator_model()

    def estimator_model(self):
        """The ``prior.estimator`` network (loaded once) with its channels checked against the prior's: a
        ``PriorError`` naming ``prior.estimator`` when the file is missing, not an estimator or predicts others."""
        if self._estimator is None:
            from ..models import load_estimator
            from ..state_dict import CheckpointError

            path = Path(self.estimator)
            if not path.is_file():
                raise PriorError(
                    f"prior.estimator={self.estimator}: file not found (train one: experiment=degradation_estimator)"
                )
            try:
                net, channels = load_estimator(path)
            except CheckpointError as err:
                raise PriorError(f"prior.estimator={self.estimator}: {err}") from None
            problem = stack_problem(self.continuous, from_record(channels))
            if problem:
                raise PriorError(f"prior.estimator={self.estimator}: {problem.replace('model', 'estimator')}")
            self._estimator = net
        return self._estimator

    def use_estimator(self, net, source: str) -> None:
        """Fill the continuous channels from ``net`` (a loaded ``DegradationEstimator`` predicting this prior's
        channels, e.g. a pipeline file's) instead of a ``prior.estimator`` file; ``source`` names it in logs."""
        if not self.continuous:
            raise PriorError(f"prior={self.name}: an estimator was given but the prior has no continuous channels")
        self.estimator, self._estimator = source, net.eval()

    @torch.no_grad()
    def estimate(self, lr: torch.Tensor, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """The continuous channels of LR ``(1, 3, h, w)`` in [0, 1] as the estimator reads them: ``{name: (h, w)}``
        at the LR size, in each channel's unit."""
        net = self.estimator_model().to(device)
        y = net(lr.to(device, torch.float32))[0].cpu()
        return {c.name: c.physical(y[i]).clamp(c.low, c.high) for i, c in enumerate(self.continuous)}

    # ------------------------------------------------------------------ the batch question
    def uniform(self, size: tuple[int, int]) -> torch.Tensor:
        return torch.full((self.num_classes, *size), 1.0 / self.num_classes)

    def for_sample(
        self, labels: torch.Tensor | None, probs: torch.Tensor | None, size: tuple[int, int], lr_given: bool = False
    ) -> torch.Tensor | None:
        """The prior of one training/validation crop, ``(C, H, W)``, or None when ``on_device`` computes it.

        ``labels``: the crop's label map ``(H, W)`` uint8 (255 = void) when the data has labels;
        ``probs``: the crop's stored probabilities ``(C, H, W)`` when the store holds them;
        ``lr_given``: the sample's LR is given (benchmark sets), so a prior computed from the LR on the
        device may be deferred even when it is normally cached.
        """
        return self.uniform(size)

    def on_device(self, batch: dict) -> dict:
        """Fill ``batch['prior']`` on the batch's device (online priors); the default leaves the batch alone."""
        return batch

    def from_lr(self, lr: torch.Tensor) -> torch.Tensor:
        """LR RGB ``(N, 3, h, w)`` in [0, 1] -> probabilities ``(N, C, s*h, s*w)`` from the LR alone, for
        the priors that can (``cached_probs``); the others say what they need instead."""
        raise PriorError(f"prior={self.name} does not compute probabilities from an LR image ({type(self).__name__})")

    # ------------------------------------------------------------------ the image question
    def image_map(
        self,
        lr: torch.Tensor,
        scale: int,
        labels: np.ndarray | None = None,
        probs: torch.Tensor | None = None,
        edits: PriorEdits | None = None,
        segment: SegmentOptions = SegmentOptions(),
        maps: dict[str, float | torch.Tensor] | None = None,
        maps_source: str = "continuous map",
    ) -> tuple[PriorMap, str]:
        """The prior of one image with LR ``(1, 3, h, w)`` in [0, 1], as a ``PriorMap``, and how it was made.

        ``labels``: the image's label map ``(s*h, s*w)`` uint8 when one is known; ``probs``: a given
        probability map ``(C, s*h, s*w)`` (a prior file), which replaces the prior's own source;
        ``edits``: the paper's prior editing, applied on top (to the classes);
        ``maps``: the continuous channels' values by name, each a number or a map ``(h, w)`` / ``(s*h, s*w)`` in
        the channel's unit; a channel not given comes from ``prior.estimator`` when set, else takes its
        ``default``; ``maps_source`` names them in errors.
        """
        check_image(lr, "lr")
        if probs is not None:
            validate_probs(probs, self.num_classes, (lr.shape[-2] * scale, lr.shape[-1] * scale), "prior file")
            pm, how = DenseProbs(probs, scale), "prior file"
        else:
            pm, how = self._image_map(lr, scale, labels, segment)
        if edits is not None and edits.active:
            pm, what = edits.apply(pm), edits.describe()
            how += f", edited: {what}"
        if self.continuous:
            maps = dict(maps or {})
            unknown = sorted(set(maps) - {c.name for c in self.continuous})
            if unknown:
                raise PriorError(
                    f"{maps_source}: {', '.join(unknown)} is not a channel of prior={self.name} "
                    f"(its channels: {', '.join(c.name for c in self.continuous)})"
                )
            estimated = {}
            if self.estimator and any(c.name not in maps for c in self.continuous):
                estimated = self.estimate(lr, segment.device)
            given = {c.name: maps.get(c.name, estimated.get(c.name, c.default)) for c in self.continuous}
            pm = StackedPriorMap(
                pm, [ChannelMap(c, given[c.name], pm.lr_size, pm.scale, maps_source) for c in self.continuous]
            )
            show = lambda n, v: (
                ("estimated" if n not in maps else "map") if isinstance(v, torch.Tensor) else format(v, "g")
            )
            how += "; " + ", ".join(f"{n}={show(n, v)}" for n, v in given.items())
        return pm, how

    def _image_map(
        self, lr: torch.Tensor, scale: int, labels: np.ndarray | None, segment: SegmentOptions
    ) -> tuple[PriorMap, str]:
        return UniformPriorMap(self.num_classes, tuple(lr.shape[-2:]), scale), "uniform prior (no information)"

    def describe(self) -> str:
        extra = f"; continuous: {', '.join(c.describe() for c in self.continuous)}" if self.continuous else ""
        return f"{self.name} ({type(self).__name__}, {self.num_classes} classes: {', '.join(self.class_names)}{extra})"


class UniformPrior(Prior):
    """No information: every class equally likely everywhere (``prior=uniform`` / ``prior=none``)."""
