"""``prior=ade_outdoor`` and other segmenter-based priors: probabilities from a network run on the LR image.

As in the paper, the segmenter sees the bicubic-upsampled LR (``OutdoorSceneSeg`` does the MATLAB
bicubic x4 itself), so its probabilities are at HR resolution. ``mode=cached``: ``sftgan-prepare``
runs it once per image and stores the probabilities; ``mode=online``: it runs frozen on the device
inside each batch transfer, from the batch's LR.

For a whole photo (the image question) the segmenter runs on the whole image, or in blended tiles when
the upsampled photo is larger than ``SegmentOptions.max_pixels``: a 1000x750 LR photo is a 4000x3000
input to a ResNet-101, about 12 GB of activations in float32. The tiles' stride-8 logits are blended
with linear ramps in the overlaps. Unlike the generator's tiles this is an approximation (the
segmenter's receptive field is hundreds of pixels); the log says which way was used.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..models.checkpoints import read_segmenter
from ..models.protocols import Segmenter
from ..precision import autocast
from ..tensors import check_image
from .base import Prior, SegmentOptions
from .maps import CoarseLogitsPrior, PriorMap
from .validation import PriorError


class SegmenterPrior(Prior):
    """Probabilities from a segmentation network with the ``OutdoorSceneSeg`` interface (LR in, probs out).

    Args:
        weights: path to the segmenter checkpoint (``segmentation_OST_bic.pth`` for ``ade_outdoor``).
        mode: ``"cached"`` (computed by ``sftgan-prepare``) or ``"online"`` (per batch on the device).
        arch: constructor arguments of ``OutdoorSceneSeg`` when the checkpoint is not the released size.
        weights_key: the config key that sets ``weights``, quoted in errors.
        **kwargs: ``Prior``'s arguments (class names and colours: ``conf/classes/``).
    """

    def __init__(
        self,
        name: str = "ade_outdoor",
        weights: str | None = None,
        mode: str = "cached",
        arch: dict | None = None,
        weights_key: str = "prior.weights",
        **kwargs,
    ) -> None:
        super().__init__(name, **kwargs)
        if mode not in ("cached", "online"):
            raise PriorError(f"prior.mode must be 'cached' or 'online', got {mode!r}")
        self.weights = weights
        self.mode = mode
        self.arch = dict(arch or {})
        self.weights_key = weights_key
        self._model: Segmenter | None = None
        self._digest: tuple = (None, "")  # (file identity, digest): the weights file is hashed once

    @classmethod
    def of_model(cls, model: Segmenter, name: str, **kwargs) -> SegmenterPrior:
        """A prior running an already loaded segmenter (a pipeline file's) at inference; ``kwargs``: ``Prior``'s."""
        prior = cls(name, weights=None, **kwargs)
        if model.num_classes != prior.num_classes:
            raise PriorError(
                f"prior={name}: the segmenter predicts {model.num_classes} classes, not {prior.num_classes}"
            )
        prior._model = model.requires_grad_(False).eval()
        return prior

    @property
    def cached_probs(self) -> bool:
        return self.mode == "cached"

    @property
    def online(self) -> bool:
        return self.mode == "online"

    @property
    def store_key(self) -> str:
        # Probabilities belong to these weights: a retrained segmenter under the same prior name must
        # not reuse an older store, so the key carries a digest of the weights file.
        path = self.check_weights()
        stat = path.stat()
        ident = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if self._digest[0] != ident:  # the released file is 200 MB: hash it once
            digest = hashlib.sha256()
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            self._digest = (ident, digest.hexdigest()[:12])
        return f"{self.name}-{self._digest[1]}"

    def check_weights(self) -> Path:
        """The weights file, or a ``FileNotFoundError`` naming the config key to set."""
        if not self.weights:
            wanted = (
                "segmentation_OST_bic.pth (the released file cannot be downloaded here)"
                if self.name == "ade_outdoor"
                else "segmenter.pth (written by train.py experiment=segmenter)"
            )
            raise FileNotFoundError(
                f"prior={self.name} needs the segmenter weights: set {self.weights_key}=/path/to/{wanted}, "
                "or use prior=labels / prior=none"
            )
        path = Path(self.weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"{self.weights_key}={self.weights}: file not found; set it to the segmenter checkpoint"
            )
        return path

    def store_identity(self) -> dict:
        path = self.check_weights()
        return {"prior_weights": {"name": path.name, "bytes": path.stat().st_size}}

    def model(self, device: torch.device | str = "cpu") -> Segmenter:
        """The frozen segmenter on ``device`` (loaded on first use)."""
        if self._model is None:
            model, spec = read_segmenter(self.check_weights(), **self.arch)
            names = spec.get("class_names") if spec else None
            if names and model.num_classes == self.num_classes and tuple(names) != self.class_names:
                raise PriorError(
                    f"{self.weights_key}={self.weights}: the segmenter was trained on classes ({', '.join(names)}) but "
                    f"prior={self.name} declares ({', '.join(self.class_names)}); use the prior config it was trained with"
                )
            if model.num_classes != self.num_classes:
                raise PriorError(
                    f"{self.weights_key}={self.weights}: the segmenter predicts {model.num_classes} classes but "
                    f"prior={self.name} declares {self.num_classes} ({', '.join(self.class_names)}); use the prior config "
                    "that matches the checkpoint"
                )
            model.requires_grad_(False)
            self._model = model.eval()
        if next(self._model.parameters()).device != torch.device(device):
            self._model = self._model.to(device)
        return self._model

    def check_ready(self) -> None:
        super().check_ready()
        self.model("cpu" if self._model is None else next(self._model.parameters()).device)

    @torch.no_grad()
    def from_lr(self, lr: torch.Tensor) -> torch.Tensor:
        """LR RGB ``(N, 3, h, w)`` in [0, 1] -> probabilities ``(N, C, 4h, 4w)`` (float32)."""
        model = self.model(lr.device)
        return model(lr.float()).float()

    def for_sample(self, labels, probs, size, lr_given=False):
        if self.online or (lr_given and probs is None):
            return None
        if probs is None:
            raise PriorError(
                f"prior={self.name} (mode=cached) reads probabilities from a store made by sftgan-prepare with this prior, "
                "but the data has none; run sftgan-prepare with prior="
                f"{self.name}, or set prior.mode=online"
            )
        return probs

    def on_device(self, batch: dict) -> dict:
        # online mode, or a set whose prior could not be cached (given-LR benchmark sets)
        if self.online or "prior" not in batch:
            batch["prior"] = self.from_lr(batch["lr"])
        return batch

    def _image_map(self, lr: torch.Tensor, scale: int, labels, segment: SegmentOptions) -> tuple[PriorMap, str]:
        model = self.model(segment.device)
        if model.scale != scale:
            raise PriorError(
                f"{self.weights_key}={self.weights}: the segmenter works at x{model.scale}, the generator at x{scale}"
            )
        return segment_image(segment.engine(model) if segment.engine else model, lr, segment)

    def __getstate__(self) -> dict:
        # Workers get the config, not a copy of a 200 MB network they never use (online runs on the device).
        state = self.__dict__.copy()
        state["_model"] = None
        return state


def _ramp(n: int, overlap: int, at_start: bool, at_end: bool) -> torch.Tensor:
    """Blend weights along one axis of a tile: rising over ``overlap`` cells unless at the image border."""
    wt = torch.ones(n)
    if overlap > 0:
        ramp = (torch.arange(overlap, dtype=torch.float32) + 1) / (overlap + 1)
        k = min(overlap, n)
        if not at_start:
            wt[:k] = torch.minimum(wt[:k], ramp[:k])
        if not at_end:
            wt[n - k :] = torch.minimum(wt[n - k :], ramp[:k].flip(0))
    return wt


@torch.no_grad()
def segment_image(
    segmenter: Segmenter, lr: torch.Tensor, options: SegmentOptions = SegmentOptions()
) -> tuple[CoarseLogitsPrior, str]:
    """The prior of one LR image ``(1, 3, h, w)`` in [0, 1] as a ``CoarseLogitsPrior`` and how it was computed.

    ``options.max_pixels``: largest upsampled image (``16 * h * w``) segmented in one pass; None = always
    whole. ``options.tile``/``overlap``: LR pixels of the blended tiles (rounded to the logit grid).
    """
    max_pixels, tile, overlap, precision = options.max_pixels, options.tile, options.overlap, options.precision
    lr = lr[None] if lr.dim() == 3 else lr
    check_image(lr, "lr (the image to segment)")  # once here: the tiles below call coarse_logits directly
    _, _, h, w = lr.shape
    scale = segmenter.scale
    k = segmenter.coarse_stride
    device = next(segmenter.parameters()).device
    # LR pixels per logit cell (2 for x4 and stride 8); tile starts on that grid keep every tile's logits aligned.
    cell = k // scale
    if max_pixels is None or h * w * scale * scale <= max_pixels:
        with autocast(device, precision):
            logits = segmenter.coarse_logits(lr.to(device)).float().cpu()
        how = f"segmenter on the whole image ({scale * w}x{scale * h} upsampled)"
        return CoarseLogitsPrior(logits, segmenter, (h, w), scale), how
    tile = max(cell, tile - tile % cell)
    overlap = overlap - overlap % cell
    rows, cols = -(-h * scale // k), -(-w * scale // k)
    acc = torch.zeros(1, segmenter.num_classes, rows, cols)
    norm = torch.zeros(1, 1, rows, cols)
    n = 0
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            a, b = max(0, y0 - overlap), min(h, y0 + tile + overlap)
            c, d = max(0, x0 - overlap), min(w, x0 + tile + overlap)
            with autocast(device, precision):
                logits = segmenter.coarse_logits(lr[:, :, a:b, c:d].to(device)).float().cpu()
            ra, ca = a // cell, c // cell
            nr, nc = min(logits.shape[-2], rows - ra), min(logits.shape[-1], cols - ca)
            logits = logits[..., :nr, :nc]
            ov = overlap // cell
            wt = _ramp(nr, ov, a == 0, b == h)[:, None] * _ramp(nc, ov, c == 0, d == w)[None, :]
            acc[..., ra : ra + nr, ca : ca + nc] += logits * wt
            norm[..., ra : ra + nr, ca : ca + nc] += wt
            n += 1
    how = (
        f"segmenter in {n} blended tiles of {tile} LR px (+{overlap} overlap): the whole "
        f"{scale * w}x{scale * h} upsampled image is over segment_max_pixels={max_pixels}"
    )
    return CoarseLogitsPrior(acc / norm, segmenter, (h, w), scale), how
