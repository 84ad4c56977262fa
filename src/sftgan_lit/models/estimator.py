"""``DegradationEstimator``: the continuous prior channels (a noise level, a blur, a JPEG quality) read from the LR.

A blind SR user does not know how an LR was degraded. This small fully convolutional network predicts, per LR
pixel, each continuous channel normalised to [0, 1] (``priors.Channel.normalise``), from the LR alone; trained
on the LRs a degradation makes with their known maps (``experiment=degradation_estimator``), it fills the
channels a prior stack conditions on at inference (``prior.estimator=PATH``).

Its reach grows with depth: each of ``num_blocks`` residual blocks adds 2 LR pixels of radius; a noise level is a
local statistic (a 7x7 window estimates it well) and a JPEG quality a blocky one (8x8), so the default sees
about 21x21 LR pixels, then averages its prediction over ``smooth`` LR pixels (a box filter) because a degradation
varies slowly across an image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import require_int


@dataclass
class EstimatorConfig:
    """The constructor arguments (recorded in its export)."""

    num_continuous: int = 3
    num_features: int = 32
    num_blocks: int = 4
    smooth: int = 9  # LR pixels of the box filter over the prediction (odd; 1: none)

    def check(self) -> None:
        for name in ("num_continuous", "num_features", "num_blocks", "smooth"):
            require_int(f"model.estimator.{name}", getattr(self, name), 1)


class _Block(nn.Module):
    def __init__(self, nf: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf, nf, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.1))


class DegradationEstimator(nn.Module):
    """LR ``(N, 3, h, w)`` RGB in [0, 1] -> continuous channels ``(N, K, h, w)`` in [0, 1] (normalised).

    Args:
        num_continuous: K, the channels it predicts (the prior's ``continuous``, in order).
        num_features / num_blocks: width and depth.
        smooth: odd box-filter size (LR pixels) over the prediction; 1: none.
    """

    def __init__(self, num_continuous: int = 3, num_features: int = 32, num_blocks: int = 4, smooth: int = 9) -> None:
        super().__init__()
        self.config = EstimatorConfig(num_continuous, num_features, num_blocks, smooth)
        self.config.check()
        #: the channels it predicts, as its file records them (``load_estimator`` sets them)
        self.channels: list[dict] = []
        if smooth % 2 == 0:
            raise ValueError(f"model.estimator.smooth={smooth}: must be odd")
        nf = num_features
        # the LR's local high frequencies carry the noise: the input is the LR and its residual from a 3x3 mean
        self.head = nn.Conv2d(6, nf, 3, 1, 1)
        self.body = nn.Sequential(*[_Block(nf) for _ in range(num_blocks)])
        self.last = nn.Conv2d(nf, num_continuous, 3, 1, 1)
        # in the tensors too, so that a state dict alone rebuilds the network (spandrel reads only tensors)
        self.register_buffer("smooth_size", torch.tensor(smooth, dtype=torch.int64))

    def config_dict(self) -> dict:
        return asdict(self.config)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        x = lr * 2 - 1
        detail = x - F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, 1)
        y = self.last(F.leaky_relu(self.body(F.leaky_relu(self.head(torch.cat([x, detail * 8], 1)), 0.1)), 0.1))
        k = self.config.smooth
        if k > 1:
            y = F.avg_pool2d(F.pad(y, (k // 2,) * 4, mode="replicate"), k, 1)
        return torch.sigmoid(y)


def infer_estimator(sd) -> DegradationEstimator:
    """A ``DegradationEstimator`` rebuilt from its tensors alone (``smooth_size`` records the box filter), loaded."""
    blocks = len([k for k in sd if k.startswith("body.") and k.endswith(".conv1.weight")])
    net = DegradationEstimator(
        num_continuous=sd["last.weight"].shape[0],
        num_features=sd["head.weight"].shape[0],
        num_blocks=blocks,
        smooth=int(sd["smooth_size"]),
    )
    net.load_state_dict(sd, strict=True)
    return net.eval()
