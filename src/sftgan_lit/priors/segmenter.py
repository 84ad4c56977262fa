"""``prior=ade_outdoor`` and other segmenter-based priors: probabilities from a network run on the LR image.

As in the paper, the segmenter sees the bicubic-upsampled LR (``OutdoorSceneSeg`` does the MATLAB
bicubic x4 itself), so its probabilities are at HR resolution. ``mode=cached``: ``sftgan-prepare``
runs it once per image and stores the probabilities; ``mode=online``: it runs frozen on the device
inside each batch transfer, from the batch's LR.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from .base import Prior, PriorError


class SegmenterPrior(Prior):
    """Probabilities from a segmentation network with the ``OutdoorSceneSeg`` interface (LR in, probs out).

    Args:
        weights: path to the segmenter checkpoint (``segmentation_OST_bic.pth`` for ``ade_outdoor``).
        mode: ``"cached"`` (computed by ``sftgan-prepare``) or ``"online"`` (per batch on the device).
        arch: constructor arguments of ``OutdoorSceneSeg`` when the checkpoint is not the released size.
        batch_size: images per segmenter call in ``sftgan-prepare``.
        weights_key: the config key that sets ``weights``, quoted in errors.
    """

    source: ClassVar[str] = "segmenter"

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
        self._model: nn.Module | None = None

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
        import hashlib

        path = self.check_weights()
        stat = path.stat()
        ident = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
        if getattr(self, "_digest", (None, ""))[0] != ident:  # the released file is 200 MB: hash it once
            digest = hashlib.sha256()
            with path.open("rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            self._digest = (ident, digest.hexdigest()[:12])
        return f"{self.name}-{self._digest[1]}"

    def check_weights(self) -> Path:
        """The weights file, or a ``FileNotFoundError`` naming the config key to set."""
        if not self.weights:
            wanted = ("segmentation_OST_bic.pth (the released file cannot be downloaded here)" if self.name == "ade_outdoor"
                      else "segmenter.pth (written by train.py experiment=segmenter)")  # fmt: skip
            raise FileNotFoundError(
                f"prior={self.name} needs the segmenter weights: set {self.weights_key}=/path/to/{wanted}, "
                "or use prior=labels / prior=none"
            )
        path = Path(self.weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{self.weights_key}={self.weights}: file not found; set it to the segmenter checkpoint")
        return path

    def model(self, device: torch.device | str = "cpu") -> nn.Module:
        """The frozen segmenter on ``device`` (loaded on first use)."""
        if self._model is None:
            from ..checkpoints import read_segmenter

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
        self.model("cpu" if self._model is None else next(self._model.parameters()).device)

    @torch.no_grad()
    def from_lr(self, lr: torch.Tensor) -> torch.Tensor:
        """LR RGB ``(N, 3, h, w)`` in [0, 1] -> probabilities ``(N, C, 4h, 4w)`` (float32)."""
        model = self.model(lr.device)
        return model(lr.float()).float()

    def for_sample(self, labels, probs, size):
        if self.online:
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

    def __getstate__(self) -> dict:
        # Workers get the config, not a copy of a 200 MB network they never use (online runs on the device).
        state = self.__dict__.copy()
        state["_model"] = None
        return state
