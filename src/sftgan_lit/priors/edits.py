"""The paper's prior editing: one class for the whole image, regions painted to classes, classes remapped.

``PriorEdits`` is checked against a prior's classes once (before any image is read) and applied on
top of any ``PriorMap`` per window (``EditedPrior``), so an edited prior tiles like any other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image

from ..categories import VOID_COLOR, VOID_LABEL
from .maps import PriorMap
from .validation import PriorError


def parse_remap(spec, class_names: Sequence[str]) -> dict[int, int]:
    """A class remap -> ``{source index: target index}``.

    ``spec``: a mapping ``{sky: water, grass: plant}`` (Hydra: ``prior_remap={sky:water,grass:plant}``),
    or a string / list of ``source->target`` or ``source:target`` items separated by commas.
    """
    if not spec:
        return {}
    if isinstance(spec, Mapping):
        pairs = [(str(k).strip(), str(v).strip()) for k, v in spec.items()]
    else:
        items = [t for part in ([spec] if isinstance(spec, str) else spec) for t in str(part).split(",") if t.strip()]
        pairs = []
        for item in items:
            sep = "->" if "->" in item else ":" if ":" in item else None
            if sep is None:
                raise PriorError(
                    f"prior_remap entry {item!r}: write it as source:target (or 'source->target'), e.g. sky:water"
                )
            pairs.append(tuple(t.strip() for t in item.split(sep, 1)))
    mapping: dict[int, int] = {}
    for src, dst in pairs:
        for name in (src, dst):
            if name not in class_names:
                raise PriorError(
                    f"prior_remap: unknown class {name!r}; the prior's classes are {', '.join(class_names)}"
                )
        mapping[class_names.index(src)] = class_names.index(dst)
    return mapping


# A colour mask's pixel takes the nearest class colour when no channel is farther than this from it (the
# anti-aliasing of a brush edge, JPEG-like rounding); farther from every class colour it is refused.
COLOR_TOLERANCE = 32
ALPHA_PAINTED = 128  # a pixel at least half opaque is painted, as the app's brush reads it


def class_mask_from_image(
    image: np.ndarray, class_names: Sequence[str], colors: Sequence[Sequence[int]], source: str = "prior_mask"
) -> np.ndarray:
    """A decoded edit mask -> class index per pixel, 255 = keep the prior (uint8 ``(H, W)``).

    ``image`` (``inference.inputs.read_mask_image`` decodes a file by its mode into one of these):

    - ``(H, W)`` integer class indices, 255 = keep; another value is refused;
    - ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA painted in the prior's class colours: a pixel less than half
      opaque, or white (the void colour), keeps the prior; any other takes the nearest class colour when
      every channel is within ``COLOR_TOLERANCE`` of it, and is refused otherwise, naming the file, how
      many pixels, one such colour and its nearest class.
    """
    if image.ndim == 2:
        mask = image.astype(np.int64)
        bad = np.unique(mask[(mask >= len(class_names)) & (mask != VOID_LABEL)])
        if bad.size:
            raise PriorError(
                f"{source}: mask values {bad[:8].tolist()} are neither a class index < {len(class_names)} nor 255 (keep)"
            )
        return mask.astype(np.uint8)
    rgb = image[..., :3].astype(np.int32)
    painted = image[..., 3] >= ALPHA_PAINTED if image.shape[-1] == 4 else np.ones(rgb.shape[:2], bool)
    painted &= ~(rgb == np.asarray(VOID_COLOR)).all(-1)
    mask = np.full(rgb.shape[:2], VOID_LABEL, np.uint8)
    if not painted.any():
        return mask
    px = rgb[painted]
    palette = np.asarray(colors, np.int32)
    gap = np.abs(px[:, None, :] - palette[None]).max(-1)  # largest channel difference to each class colour
    nearest = gap.argmin(-1)
    far = gap[np.arange(len(px)), nearest] > COLOR_TOLERANCE
    if far.any():
        i = int(np.flatnonzero(far)[0])
        colour = ", ".join(str(int(v)) for v in px[i])
        raise PriorError(
            f"{source}: {int(far.sum())} painted pixels are no class colour (e.g. rgb({colour}), nearest "
            f"{class_names[nearest[i]]} rgb({', '.join(str(int(v)) for v in palette[nearest[i]])}), "
            f"{int(gap[i, nearest[i]])} levels off; within {COLOR_TOLERANCE} counts); paint with the class colours, "
            "and white or transparent where the prior is kept"
        )
    mask[painted] = nearest
    return mask


def fit_mask(mask: np.ndarray, hr_size: tuple[int, int], source: str = "prior_mask") -> np.ndarray:
    """A class mask at the LR or the output size -> the output size ``hr_size`` (nearest enlargement)."""
    H, W = hr_size
    if mask.shape == (H, W):
        return mask
    s = H // mask.shape[0] if mask.shape[0] else 0
    if s < 1 or mask.shape[0] * s != H or mask.shape[1] * s != W:
        raise PriorError(
            f"{source}: mask is {mask.shape[1]}x{mask.shape[0]}; it must be the LR or the output size ({W}x{H})"
        )
    return np.array(Image.fromarray(mask).resize((W, H), Image.NEAREST))  # writable: torch takes it as is


@dataclass
class PriorEdits:
    """Edits by class index: ``override`` (the whole image one class), ``mask`` (class index per pixel at
    the LR or output size, 255 = keep), ``remap`` ({source: target}). ``labels`` names them in logs."""

    override: int | None = None
    mask: np.ndarray | None = None
    remap: dict[int, int] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    @classmethod
    def by_name(
        cls,
        class_names: Sequence[str],
        colors: Sequence[Sequence[int]],
        override: str | None = None,
        mask_image: np.ndarray | None = None,
        remap=None,
        mask_source: str = "prior_mask",
    ) -> PriorEdits:
        """Edits given by class names (a CLI's words); an unknown class fails here, naming the prior's classes."""
        if override is not None and override not in class_names:
            raise PriorError(f"prior_override={override}: not a class of this prior ({', '.join(class_names)})")
        mask = class_mask_from_image(mask_image, class_names, colors, mask_source) if mask_image is not None else None
        labels = {"override": str(override)} if override is not None else {}
        labels |= {"mask": mask_source} if mask is not None else {}
        labels |= {"remap": str(remap)} if remap else {}
        return cls(
            None if override is None else list(class_names).index(override),
            mask,
            parse_remap(remap, class_names),
            labels,
        )

    @property
    def active(self) -> bool:
        return self.override is not None or self.mask is not None or bool(self.remap)

    def describe(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.labels.items())

    def apply(self, base: PriorMap) -> PriorMap:
        mask = (
            fit_mask(self.mask, base.hr_size, self.labels.get("mask", "prior_mask")) if self.mask is not None else None
        )
        return EditedPrior(base, self.override, mask, self.remap)


class EditedPrior(PriorMap):
    """The paper's prior editing on top of another map, applied per window.

    Args:
        base: the prior being edited.
        override: a class index: the whole image becomes that class.
        mask: class index per HR pixel (uint8 ``(H, W)``, 255 = keep ``base``): regions painted to classes.
        remap: ``{source: target}``: each source class's probability moves to its target.
    """

    def __init__(
        self,
        base: PriorMap,
        override: int | None = None,
        mask: np.ndarray | None = None,
        remap: dict[int, int] | None = None,
    ) -> None:
        super().__init__(base.num_classes, base.lr_size, base.scale)
        self.base = base
        self.override = override
        self.mask = torch.as_tensor(mask) if mask is not None else None
        self.remap = dict(remap or {})

    def crop(self, y0, y1, x0, x1):
        # every edit below builds a new tensor: the base's crop (possibly a view of its map) is never written
        probs = self.base.crop(y0, y1, x0, x1)
        c = self.num_classes
        if self.remap:
            moved = probs.clone()
            for src in self.remap:
                moved[:, src] = 0
            for src, dst in self.remap.items():
                moved[:, dst] += probs[:, src]
            probs = moved
        if self.override is not None:
            probs = torch.zeros_like(probs)
            probs[:, self.override] = 1.0
        if self.mask is not None:
            s = self.scale
            m = self.mask[s * y0 : s * y1, s * x0 : s * x1].long()
            painted = m != VOID_LABEL
            onehot = torch.nn.functional.one_hot(torch.where(painted, m, 0), c).permute(2, 0, 1)[None].float()
            probs = torch.where(painted[None, None], onehot, probs)
        return probs
