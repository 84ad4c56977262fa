"""The interface every prior segmenter has (``OutdoorSceneSeg``, ``LRASPPSegmenter``), as a ``typing.Protocol``.

Priors, ``sftgan-prepare``, online priors and tiled inference use a segmenter only through this; a new
architecture that has these members works everywhere without a caller asking which one it is.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Segmenter(Protocol):
    """LR RGB in [0, 1] ``(N, 3, h, w)`` in, class probabilities at ``scale`` x the LR size out.

    The network sees the MATLAB-bicubic upsampled LR, as the SFTGAN prior does. ``coarse_logits`` gives
    the logits at stride ``coarse_stride`` of the (padded) upsampled grid; ``decode_coarse`` turns any
    window of them into probabilities, needing ``coarse_margin`` cells of context on each side to equal
    the whole-image decoding there (what tiled inference relies on).
    """

    num_classes: int
    scale: int
    coarse_stride: int
    coarse_margin: int

    def __call__(self, lr: torch.Tensor) -> torch.Tensor: ...

    def logits(self, lr: torch.Tensor) -> torch.Tensor: ...

    def coarse_logits(self, lr: torch.Tensor) -> torch.Tensor: ...

    def decode_coarse(self, logits: torch.Tensor) -> torch.Tensor: ...

    def config_dict(self) -> dict: ...
