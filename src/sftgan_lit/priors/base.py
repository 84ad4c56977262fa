"""What a categorical prior is: its classes, its colours, and how it turns data into probabilities.

A prior is chosen by ``prior=NAME`` (``conf/prior/NAME.yaml`` instantiates one of these classes) and
everything downstream reads the class count, names and colours from it. A new prior (another
segmenter, another class set) is a config file plus, if its probabilities come from somewhere new, a
small subclass overriding ``for_sample`` and/or ``on_device``.

Probabilities are ``(N, C, H, W)`` (or ``(C, H, W)``) float tensors at HR resolution whose rows
(the C values of each pixel) sum to 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch

from ..categories import OUTDOOR_CLASSES, OUTDOOR_COLORS

VOID_LABEL = 255


class PriorError(ValueError):
    """A prior (stored, computed or configured) that cannot be used; the message says which and why."""


def validate_probs(
    probs: torch.Tensor,
    num_classes: int,
    size: tuple[int, int] | None = None,
    source: str = "prior",
    atol: float = 1e-3,
) -> None:
    """Check a probability map ``(C, H, W)`` or ``(N, C, H, W)``: class count, size, finite, in [0, 1], rows sum to 1."""
    if probs.dim() not in (3, 4):
        raise PriorError(f"{source}: expected (C, H, W) or (N, C, H, W) probabilities, got shape {tuple(probs.shape)}")
    c = probs.shape[-3]
    if c != num_classes:
        raise PriorError(f"{source}: {c} classes, but the configured prior has {num_classes}")
    if size is not None and tuple(probs.shape[-2:]) != tuple(size):
        raise PriorError(f"{source}: prior size {tuple(probs.shape[-2:])} does not match the image size {tuple(size)}")
    p = probs.float()
    if not torch.isfinite(p).all():
        raise PriorError(f"{source}: {int((~torch.isfinite(p)).sum())} non-finite values")
    if p.min() < -atol or p.max() > 1 + atol:
        raise PriorError(f"{source}: values outside [0, 1] (min {p.min():.4g}, max {p.max():.4g})")
    err = (p.sum(dim=-3) - 1).abs().max()
    if err > atol:
        raise PriorError(f"{source}: class probabilities do not sum to 1 (worst pixel off by {err:.4g}, tolerance {atol})")


class Prior:
    """Base class: class names, colours and how a sample's prior is produced.

    ``source`` says where probabilities come from: ``"labels"`` (label maps), ``"uniform"`` (no
    information), ``"segmenter"`` (a network run on the LR image, cached by ``sftgan-prepare`` or
    computed on the device per batch).
    """

    source: ClassVar[str] = "uniform"

    def __init__(
        self,
        name: str,
        num_classes: int = len(OUTDOOR_CLASSES),
        class_names: Sequence[str] = OUTDOOR_CLASSES,
        colors: Sequence[Sequence[int]] = OUTDOOR_COLORS,
    ) -> None:
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

    # What sftgan-prepare must store for this prior: "probs" means it computes probabilities once.
    @property
    def cached_probs(self) -> bool:
        return False

    @property
    def store_key(self) -> str:
        """Names the prepared store of this prior's cached probabilities (see ``SegmenterPrior``)."""
        return self.name

    @property
    def informative(self) -> bool:
        """False for priors that carry no information (uniform / none)."""
        return self.source != "uniform"

    @property
    def online(self) -> bool:
        """True when the prior is computed on the device per batch (``on_device``), not per sample."""
        return False

    def check_ready(self) -> None:
        """Fail now, naming the config key, if the prior cannot work (e.g. missing weights); default: nothing to check."""

    def uniform(self, size: tuple[int, int]) -> torch.Tensor:
        return torch.full((self.num_classes, *size), 1.0 / self.num_classes)

    def for_sample(self, labels: torch.Tensor | None, probs: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor | None:
        """The prior of one training/validation crop, ``(C, H, W)``, or None when computed later on the device.

        ``labels``: the crop's label map ``(H, W)`` uint8 (255 = void) when the data has labels;
        ``probs``: the crop's stored probabilities ``(C, H, W)`` when the store holds them.
        """
        return self.uniform(size)

    def on_device(self, batch: dict) -> dict:
        """Fill ``batch['prior']`` on the batch's device (online priors); the default leaves the batch alone."""
        return batch

    def describe(self) -> str:
        return f"{self.name} ({self.source}, {self.num_classes} classes: {', '.join(self.class_names)})"


class UniformPrior(Prior):
    """No information: every class equally likely everywhere (``prior=uniform`` / ``prior=none``)."""

    source: ClassVar[str] = "uniform"
