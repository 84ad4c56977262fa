"""``degradation=bicubic``: the paper's LR, MATLAB's ``imresize(hr, 1/scale)`` of a clean HR."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..imresize import imresize
from .base import Degradation


@dataclass
class BicubicSchema:
    """``degradation=bicubic`` (``data.degradation``): no keys but the kind."""

    kind: str = "bicubic"


def bicubic_lr(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """MATLAB-bicubic ``imresize(hr, 1/scale)`` clamped to [0, 1]: ``(..., 3, H, W)`` -> ``(..., 3, H/s, W/s)``."""
    return imresize(hr, 1.0 / scale).clamp_(0.0, 1.0)


class Bicubic(Degradation):
    """MATLAB bicubic with antialiasing (``imresize``), made in the workers (cheap, no randomness)."""

    name = "bicubic"
    schema = BicubicSchema
    lr_is_bicubic = True

    def __init__(self, scale: int, kind: str = "bicubic") -> None:
        super().__init__(scale)

    def worker_lr(self, hr: torch.Tensor) -> torch.Tensor:
        return bicubic_lr(hr, self.scale)

    def __call__(self, hr: torch.Tensor, params: dict, training: bool) -> tuple[torch.Tensor, None]:
        return bicubic_lr(hr, self.scale), None
