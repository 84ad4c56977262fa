"""PSNR and SSIM on the Y channel with the SR literature's conventions, plus torchmetrics wrappers.

Conventions (as in BasicSR and the papers' MATLAB scripts): images are rounded to 8 bits first, the
luma is MATLAB's ``rgb2ycbcr`` Y (BT.601, 16-235 range), ``crop_border`` pixels (the SR scale) are
removed on every side, PSNR uses a peak of 255, SSIM is the original Wang et al. SSIM (11x11
Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03, valid positions only) on 0-255 values.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics import Metric

# MATLAB rgb2ycbcr for RGB in [0, 1]: Y = 16 + 65.481 R + 128.553 G + 24.966 B (0-255 scale)
_Y_WEIGHTS = (65.481, 128.553, 24.966)


def _check(sr: torch.Tensor, hr: torch.Tensor) -> None:
    if sr.shape != hr.shape or sr.dim() != 4 or sr.shape[1] != 3:
        raise ValueError(
            f"expected two RGB batches (N, 3, H, W) of the same shape, got {tuple(sr.shape)} and {tuple(hr.shape)}"
        )


def rgb_to_y(img: torch.Tensor) -> torch.Tensor:
    """RGB (N, 3, H, W) in [0, 1] -> Y (N, 1, H, W) on the 0-255 scale (16-235), float64."""
    w = torch.tensor(_Y_WEIGHTS, dtype=torch.float64, device=img.device).view(1, 3, 1, 1)
    return (img.double() * w).sum(dim=1, keepdim=True) + 16.0


def y_8bit(img: torch.Tensor, crop_border: int = 0) -> torch.Tensor:
    """RGB (N, 3, H, W) in [0, 1] -> Y (N, 1, H, W) of the image rounded to 8 bits, 0-255 scale, float64, with
    ``crop_border`` pixels removed on every side: what every Y figure of the package is computed on."""
    quantised = (img.detach().clamp(0, 1) * 255.0).round() / 255.0  # what a saved PNG would hold
    y = rgb_to_y(quantised)
    if crop_border:
        y = y[..., crop_border:-crop_border, crop_border:-crop_border]
    return y


def psnr_y(sr: torch.Tensor, hr: torch.Tensor, crop_border: int = 4) -> torch.Tensor:
    """Per-image PSNR (dB) on the BT.601 luma of the 8-bit-rounded images, the SR literature's protocol.

    Args:
        sr: the super-resolved images, ``(N, 3, H, W)`` RGB in [0, 1].
        hr: the reference images, the same shape and range.
        crop_border: pixels cropped from each side before measuring (the scale, by convention).

    Returns:
        ``(N,)`` float64 PSNR in dB; ``inf`` for identical images.
    """
    _check(sr, hr)
    mse = (y_8bit(sr, crop_border) - y_8bit(hr, crop_border)).pow(2).flatten(1).mean(1)
    return 10.0 * torch.log10(255.0**2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


def ssim_y(sr: torch.Tensor, hr: torch.Tensor, crop_border: int = 4) -> torch.Tensor:
    """Per-image SSIM on the 8-bit BT.601 luma (0-255), the original formulation (11x11 Gaussian window,
    sigma 1.5, valid pixels only).

    Args:
        sr: the super-resolved images, ``(N, 3, H, W)`` RGB in [0, 1].
        hr: the reference images, the same shape and range.
        crop_border: pixels cropped from each side before measuring; at least 11x11 must remain.

    Returns:
        ``(N,)`` float64 SSIM in [-1, 1].
    """
    _check(sr, hr)
    x, y = y_8bit(sr, crop_border), y_8bit(hr, crop_border)
    if min(x.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs at least 11x11 pixels after cropping {crop_border}, got {tuple(x.shape[-2:])}")
    win = _gaussian_window(device=x.device)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_x, mu_y = F.conv2d(x, win), F.conv2d(y, win)
    sxx = F.conv2d(x * x, win) - mu_x**2
    syy = F.conv2d(y * y, win) - mu_y**2
    sxy = F.conv2d(x * y, win) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return ssim_map.flatten(1).mean(1)


class _MeanPerImage(Metric):
    """Mean of a per-image score, overall and per category; sums and counts reduce correctly under DDP."""

    full_state_update = False
    higher_is_better = True

    def __init__(self, crop_border: int = 4, num_classes: int = 8, **kwargs) -> None:
        super().__init__(**kwargs)
        self.crop_border = crop_border
        self.num_classes = num_classes
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("class_total", default=torch.zeros(num_classes, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("class_count", default=torch.zeros(num_classes, dtype=torch.float64), dist_reduce_fx="sum")

    def score(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def update(self, sr: torch.Tensor, hr: torch.Tensor, category: torch.Tensor | None = None) -> None:
        values = self.score(sr, hr).to(self.total.device)
        # identical images give inf PSNR; cap at 100 dB so one perfect image does not swamp the mean
        values = values.clamp(max=100.0)
        self.total += values.sum()
        self.count += values.numel()
        if category is not None:
            cat = category.to(self.class_total.device).long()
            self.class_total.index_add_(0, cat, values)
            self.class_count.index_add_(0, cat, torch.ones_like(values))

    def mean(self) -> torch.Tensor:
        """The mean over the states as they are (``compute`` syncs them first under DDP)."""
        return self.total / self.count.clamp_min(1)

    def compute(self) -> torch.Tensor:
        return self.mean()

    def compute_per_class(self) -> torch.Tensor:
        """(num_classes,) mean per category; NaN where a category had no image."""
        return torch.where(self.class_count > 0, self.class_total / self.class_count.clamp_min(1), float("nan"))


class PSNRY(_MeanPerImage):
    """Mean ``psnr_y`` over images (and per category), DDP-correct."""

    def score(self, sr, hr):
        return psnr_y(sr, hr, self.crop_border)


class SSIMY(_MeanPerImage):
    """Mean ``ssim_y`` over images (and per category), DDP-correct."""

    def score(self, sr, hr):
        return ssim_y(sr, hr, self.crop_border)
