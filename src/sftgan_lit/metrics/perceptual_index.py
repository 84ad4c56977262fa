"""The Perceptual Index of the PIRM 2018 challenge: ``PI = ((10 - Ma) + NIQE) / 2``, lower is better.

Ma et al.'s score (a learned no-reference regressor of three random forests on DCT, wavelet and PCA
statistics) is not reimplemented here: it runs through pyiqa's ``nrqm`` with the model file the user has
(``ma_model=PATH``). Without both, PI is omitted by name; NIQE is reported on its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch


def perceptual_index(ma: torch.Tensor, niqe: torch.Tensor) -> torch.Tensor:
    """PIRM's PI from Ma's score (0-10, higher better) and NIQE (lower better): ``((10 - ma) + niqe) / 2``."""
    return ((10 - ma) + niqe) / 2


class MaScorer:
    """Ma et al.'s score per image, ``(N, 3, H, W)`` RGB in [0, 1] -> ``(N,)``, from a callable doing the work."""

    def __init__(self, score: Callable[[torch.Tensor], torch.Tensor], source: str) -> None:
        self.score, self.source = score, source

    def __call__(self, img: torch.Tensor, crop_border: int = 0) -> torch.Tensor:
        if crop_border:
            img = img[..., crop_border:-crop_border, crop_border:-crop_border]
        return torch.as_tensor(self.score(img.float())).double().flatten()

    @classmethod
    def from_file(cls, given: str | os.PathLike | None) -> tuple[MaScorer | None, str]:
        """pyiqa's NRQM with the model file ``given``, or ``(None, why)``: never a download."""
        if not given:
            return None, "PI omitted: no Ma et al. model given (ma_model=PATH to pyiqa's NRQM model, pyiqa installed)"
        path = Path(given).expanduser()
        if not path.is_file():
            return None, f"PI omitted: ma_model={given}: file not found"
        try:
            import pyiqa
        except ImportError:
            return None, f"PI omitted: ma_model={given} needs pyiqa to run it (pip install pyiqa)"
        metric = pyiqa.create_metric("nrqm", pretrained_model_path=str(path), device="cpu")
        return cls(lambda x: metric(x), f"Ma et al. (pyiqa NRQM, {path})"), f"PI with Ma et al. from {path}"
