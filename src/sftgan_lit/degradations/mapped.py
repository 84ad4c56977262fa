"""``degradation=mapped``: a degradation whose strength is known per pixel, for priors that carry it.

SRMD's model (Zhang et al., CVPR 2018), with JPEG: the HR blurred by an isotropic Gaussian, MATLAB-bicubic
downscaled, Gaussian noise added, JPEG-compressed, rounded to 8 bits. Each sample draws its blur, its noise
(constant, or varying across the image along a ramp in a random direction, so that a noise map can vary
inside one image) and its JPEG quality; ``maps`` gives them back per pixel in the units of the continuous
prior channels (``priors.channels``: ``blur_sigma`` in LR pixels, ``noise_sigma`` in 8-bit levels,
``jpeg_quality``), which is what a prior stack like ``prior=[labels,degradation]`` is trained on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..config import merged, require
from .base import KEY, Degradation
from .bicubic import bicubic_lr
from .filters import filter2d
from .jpeg import jpeg
from .kernels import bivariate_gaussian, pulse


@dataclass
class MappedSchema:
    """``degradation=mapped`` (``data.degradation``): each strength's probability and range."""

    kind: str = "mapped"
    blur_prob: float = 0.5
    blur_range: list[float] = field(default_factory=lambda: [0.1, 1.0])  # blur_sigma, LR pixels (with 0: its range)
    noise_prob: float = 0.8
    noise_range: list[float] = field(default_factory=lambda: [0.0, 50.0])  # noise_sigma, 8-bit levels: its whole range
    varying_prob: float = 0.3  # the noise ramps between two drawn levels across the image
    jpeg_prob: float = 0.5
    jpeg_range: list[float] = field(default_factory=lambda: [30.0, 95.0])  # JPEG quality
    pool_size: int = 0


def _check(cfg: MappedSchema) -> None:
    for name in ("blur_prob", "noise_prob", "varying_prob", "jpeg_prob"):
        value = getattr(cfg, name)
        require(isinstance(value, int | float) and 0 <= value <= 1, f"{KEY}.{name}", value, "a probability in [0, 1]")
    for name, low, high, what in (
        ("blur_range", 0.0, 1.0, "0 <= low <= high <= 1 (LR pixels: the blur_sigma channel's range)"),
        ("noise_range", 0.0, 50.0, "0 <= low <= high <= 50 (8-bit levels: the noise_sigma channel's range)"),
        ("jpeg_range", 1.0, 100.0, "1 <= low <= high <= 100 (JPEG quality)"),
    ):
        v = list(getattr(cfg, name))
        ok = (
            len(v) == 2
            and all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in v)
            and low <= v[0] <= v[1] <= high
        )
        require(ok, f"{KEY}.{name}", v, f"[low, high] with {what}")
    require(isinstance(cfg.pool_size, int) and cfg.pool_size >= 0, f"{KEY}.pool_size", cfg.pool_size, "an integer >= 0")


def noise_field(a: torch.Tensor, b: torch.Tensor, theta: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Per-pixel noise levels ``(N, h, w)``: ``a + (b - a) * t``, ``t`` in [0, 1] rising linearly across the
    image in direction ``theta`` (radians; ``a == b``: constant). ``a``, ``b``, ``theta``: ``(N,)``."""
    h, w = size
    ys = (torch.arange(h, dtype=torch.float32, device=a.device) + 0.5) / h * 2 - 1
    xs = (torch.arange(w, dtype=torch.float32, device=a.device) + 0.5) / w * 2 - 1
    c, s = torch.cos(theta).reshape(-1, 1, 1), torch.sin(theta).reshape(-1, 1, 1)
    t = ((xs.reshape(1, 1, w) * c + ys.reshape(1, h, 1) * s) / math.sqrt(2) + 1) / 2
    return a.reshape(-1, 1, 1) + (b - a).reshape(-1, 1, 1) * t


class Mapped(Degradation):
    """Blur, bicubic downscale, noise, JPEG, with each sample's strengths known per pixel (module docstring)."""

    name = "mapped"
    schema = MappedSchema
    #: the continuous prior channels ``maps`` gives
    channels = ("blur_sigma", "noise_sigma", "jpeg_quality")

    def __init__(self, scale: int, kind: str = "mapped", **values) -> None:
        super().__init__(scale)
        cfg = merged(MappedSchema(), values, KEY)
        _check(cfg)
        self.cfg = cfg
        self.pool_size = int(cfg.pool_size)
        # one kernel size for every sample (the batch is filtered at once): 3 sigma of the largest blur, in HR px
        self.kernel_size = 2 * math.ceil(3 * cfg.blur_range[1] * scale) + 1

    def draw(self, rng: np.random.Generator) -> dict:
        """One sample's strengths (tensors, so that a batch collates to ``(N,)`` values and ``(N, K, K)`` kernels)."""
        c = self.cfg
        blur = float(rng.uniform(*c.blur_range)) if rng.uniform() < c.blur_prob else 0.0
        if blur > 0:
            kernel = bivariate_gaussian(self.kernel_size, blur * self.scale, blur * self.scale, 0.0)
        else:
            kernel = pulse(self.kernel_size)
        noisy = rng.uniform() < c.noise_prob
        a = float(rng.uniform(*c.noise_range)) if noisy else 0.0
        b = float(rng.uniform(*c.noise_range)) if noisy and rng.uniform() < c.varying_prob else a
        compress = rng.uniform() < c.jpeg_prob
        quality = float(rng.uniform(*c.jpeg_range)) if compress else 100.0
        f = lambda v: torch.tensor(v, dtype=torch.float32)
        return {
            "kernel": torch.from_numpy(kernel.astype(np.float32)),
            "blur_sigma": f(blur),
            "noise_a": f(a),
            "noise_b": f(b),
            "theta": f(rng.uniform(-math.pi, math.pi)),
            "jpeg": torch.tensor(compress),
            "jpeg_quality": f(quality),
            "seed": torch.tensor(int(rng.integers(2**62)), dtype=torch.int64),
        }

    def __call__(self, hr: torch.Tensor, params: dict, training: bool) -> tuple[torch.Tensor, None]:
        """LR ``(N, 3, H/s, W/s)`` on the 8-bit grid from HR ``(N, 3, H, W)`` in [0, 1] and ``draw``'s
        parameters, collated."""
        s = self.scale
        x = bicubic_lr(filter2d(hr, params["kernel"].to(hr.device)), s)
        sigma = noise_field(
            params["noise_a"].to(hr.device),
            params["noise_b"].to(hr.device),
            params["theta"].to(hr.device),
            x.shape[-2:],
        )
        noise = torch.stack(
            [
                torch.randn(
                    x.shape[1:], generator=torch.Generator(device=hr.device).manual_seed(int(seed)), device=hr.device
                )
                for seed in params["seed"].tolist()
            ]
        )
        x = (x + noise.to(x.dtype) * (sigma.unsqueeze(1) / 255.0).to(x.dtype)).clamp(0, 1)
        compress = params["jpeg"].to(torch.bool).cpu()
        if compress.any():
            idx = torch.nonzero(compress).flatten().tolist()
            x[idx] = jpeg(x[idx], params["jpeg_quality"][compress].to(x.device))
        return (x * 255).round() / 255, None

    def maps(self, params: dict, lr_size: tuple[int, int]) -> dict[str, torch.Tensor]:
        """Each sample's strengths per pixel at HR size, ``{channel: (N, s*h, s*w)}`` in the channel's unit: the
        noise level of each LR pixel repeated over its ``s x s`` HR pixels, blur and quality constant."""
        s = self.scale
        h, w = lr_size
        sigma = noise_field(params["noise_a"], params["noise_b"], params["theta"], (h, w))
        sigma = sigma.repeat_interleave(s, 1).repeat_interleave(s, 2)
        const = lambda v: v.float().reshape(-1, 1, 1).expand(-1, s * h, s * w)
        return {
            "noise_sigma": sigma,
            "blur_sigma": const(params["blur_sigma"]),
            "jpeg_quality": const(params["jpeg_quality"]),
        }

    def describe(self) -> str:
        c = self.cfg
        return (
            f"{self.name} (blur {c.blur_range} LR px p={c.blur_prob}, noise {c.noise_range} levels p={c.noise_prob} "
            f"varying p={c.varying_prob}, JPEG {c.jpeg_range} p={c.jpeg_prob})"
        )
