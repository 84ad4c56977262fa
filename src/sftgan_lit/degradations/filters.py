"""Filtering on the device: per-sample kernels (``filter2d``), unsharp masking (``usm_sharp``) and the resizes
of the degradation model.

``filter2d`` is BasicSR's ``filter2D`` (a grouped convolution, reflected borders, one kernel per image or one
for all); the border is reflected as far as the kernel needs, so a kernel wider than a small image (a 21-tap
kernel on a 7-pixel image after a strong downscale) still reflects, where a single ``F.pad`` would fail.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: the interpolation modes of the degradation model's resizes (``F.interpolate``'s names)
RESIZE_MODES = ("area", "bilinear", "bicubic")


def _mirror(n: int, pad: int, device) -> torch.Tensor:
    """Source indices of ``pad`` samples each side of a length-``n`` axis, mirrored about the edge samples and
    mirrored again beyond the other end (period ``2 (n - 1)``), as ``numpy.pad(mode="reflect")``."""
    i = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(i)
    m = i.remainder(2 * (n - 1))
    return torch.where(m < n, m, 2 * (n - 1) - m)


def reflect_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """``x`` ``(N, C, H, W)`` with ``pad`` pixels reflected (mirrored about the edge pixel) on every side,
    reflecting again where ``pad`` exceeds the image (a 21-tap kernel on a 7-pixel image): ``F.pad(mode=
    "reflect")`` where it fits, ``numpy.pad(mode="reflect")`` everywhere."""
    h, w = x.shape[-2:]
    if pad < h and pad < w:
        return F.pad(x, (pad, pad, pad, pad), mode="reflect")
    rows, cols = _mirror(h, pad, x.device), _mirror(w, pad, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


def filter2d(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Correlate each image with its kernel, borders reflected (BasicSR's ``filter2D``).

    Args:
        image: ``(N, C, H, W)`` float.
        kernel: ``(K, K)`` or ``(1, K, K)`` (one for all) or ``(N, K, K)`` (one per image), K odd.

    Returns:
        ``(N, C, H, W)``, the same dtype as ``image``.
    """
    k = kernel.shape[-1]
    if k % 2 == 0 or kernel.shape[-2] != k:
        raise ValueError(f"filter2d: kernel must be square and odd, got {tuple(kernel.shape)}")
    n, c, h, w = image.shape
    kernel = kernel.to(image.dtype).reshape(-1, 1, k, k)
    padded = reflect_pad(image, k // 2)
    if kernel.shape[0] == 1:
        return F.conv2d(padded.reshape(n * c, 1, *padded.shape[-2:]), kernel).reshape(n, c, h, w)
    if kernel.shape[0] != n:
        raise ValueError(f"filter2d: {kernel.shape[0]} kernels for {n} images")
    weight = kernel.repeat_interleave(c, dim=0)  # image i's channels all take kernel i
    return F.conv2d(padded.reshape(1, n * c, *padded.shape[-2:]), weight, groups=n * c).reshape(n, c, h, w)


def filter_separable(image: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """``filter2d`` with the kernel ``outer(taps, taps)``, as two 1-D passes (``K`` instead of ``K^2`` products
    per pixel: a 51-tap Gaussian on a 256x256 crop is 25x cheaper). ``taps``: ``(K,)``, K odd."""
    k = taps.shape[-1]
    if k % 2 == 0:
        raise ValueError(f"filter_separable: an odd number of taps, got {k}")
    n, c, h, w = image.shape
    t = taps.to(device=image.device, dtype=image.dtype)
    x = reflect_pad(image, k // 2).reshape(n * c, 1, h + 2 * (k // 2), w + 2 * (k // 2))
    x = F.conv2d(x, t.reshape(1, 1, k, 1))
    return F.conv2d(x, t.reshape(1, 1, 1, k)).reshape(n, c, h, w)


def gaussian_kernel_1d(size: int, sigma: float = 0.0) -> torch.Tensor:
    """OpenCV's ``getGaussianKernel``: ``size`` taps, normalised; ``sigma <= 0`` takes OpenCV's default
    ``0.3 ((size - 1) / 2 - 1) + 0.8``. Returns float64 ``(size,)``."""
    if sigma <= 0:
        sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def usm_sharp(image: torch.Tensor, weight: float = 0.5, radius: int = 50, threshold: float = 10.0) -> torch.Tensor:
    """Unsharp masking as Real-ESRGAN sharpens its ground truth (BasicSR's ``USMSharp``): the residual
    ``I - B`` over a Gaussian blur ``B`` (``radius`` taps, made odd; OpenCV's default sigma) is added at
    ``weight`` where it exceeds ``threshold`` (8-bit levels), under a blurred version of that mask.

    Args:
        image: ``(N, C, H, W)`` in [0, 1].

    Returns:
        ``(N, C, H, W)``; the sharpened values are clamped to [0, 1] before the mask blends them in.
    """
    size = radius + 1 if radius % 2 == 0 else radius
    g = gaussian_kernel_1d(size)
    blur = filter_separable(image, g)
    residual = image - blur
    mask = (residual.abs() * 255 > threshold).to(image.dtype)
    soft = filter_separable(mask, g)
    sharp = (image + weight * residual).clamp(0, 1)
    return soft * sharp + (1 - soft) * image


def resize(image: torch.Tensor, size: tuple[int, int] | None, mode: str, scale: float | None = None) -> torch.Tensor:
    """``F.interpolate`` as the degradation model calls it: to ``size``, or by ``scale`` (the factor itself
    sets the sampling positions, as ``F.interpolate(scale_factor=)`` does), ``mode`` one of ``RESIZE_MODES``;
    ``align_corners=False`` and no antialiasing, as Real-ESRGAN resizes."""
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode {mode!r} is not one of {', '.join(RESIZE_MODES)}")
    if size is None:
        h, w = image.shape[-2:]
        if math.floor(h * scale) < 1 or math.floor(w * scale) < 1:  # would be empty: the smallest image there is
            size = (max(1, math.floor(h * scale)), max(1, math.floor(w * scale)))
    extra = {} if mode == "area" else {"align_corners": False}
    if size is not None:
        return F.interpolate(image, size=size, mode=mode, **extra)
    return F.interpolate(image, scale_factor=scale, mode=mode, **extra)
