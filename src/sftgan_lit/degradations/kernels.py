"""Blur kernels of the real-world degradation model, named and parameterised as BasicSR's
``basicsr/data/degradations.py`` (v1.4.2) names them, the field's reference (Real-ESRGAN draws its kernels
with these functions).

Every kernel is a normalised ``(kernel_size, kernel_size)`` float64 numpy array (it sums to 1), centred on
the middle sample; ``x`` runs along columns and ``y`` along rows, as BasicSR's ``mesh_grid``. The workers
draw them (``draw_kernel``) from a sample's own generator, so a sample's kernel depends on its draw only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: the kernel families ``draw_kernel`` picks from (Real-ESRGAN's ``kernel_list`` names)
KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")


def mesh_grid(kernel_size: int) -> np.ndarray:
    """Sample offsets of a ``kernel_size`` kernel: ``(K, K, 2)`` with ``[..., 0] = x`` (column) and
    ``[..., 1] = y`` (row), both ``-(K // 2) .. K // 2``."""
    ax = np.arange(-(kernel_size // 2), kernel_size // 2 + 1, dtype=np.float64)
    xx, yy = np.meshgrid(ax, ax)
    return np.stack([xx, yy], axis=-1)


def sigma_matrix2(sig_x: float, sig_y: float, theta: float) -> np.ndarray:
    """The covariance ``U diag(sig_x^2, sig_y^2) U^T`` of a Gaussian whose x axis is turned by ``theta`` radians."""
    d = np.diag([sig_x**2, sig_y**2])
    u = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    return u @ d @ u.T


def _quadratic(kernel_size: int, sig_x: float, sig_y: float, theta: float, isotropic: bool) -> np.ndarray:
    """``v^T Sigma^-1 v`` at every sample ``v`` of the grid (``isotropic``: ``Sigma = sig_x^2 I``)."""
    _check_size(kernel_size)
    sigma = np.diag([sig_x**2, sig_x**2]) if isotropic else sigma_matrix2(sig_x, sig_y, theta)
    grid = mesh_grid(kernel_size)
    return np.sum((grid @ np.linalg.inv(sigma)) * grid, axis=-1)


def _check_size(kernel_size: int) -> None:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size={kernel_size}: must be an odd number >= 1")


def _normalised(kernel: np.ndarray) -> np.ndarray:
    return kernel / np.sum(kernel)


def bivariate_gaussian(
    kernel_size: int, sig_x: float, sig_y: float, theta: float, isotropic: bool = True
) -> np.ndarray:
    """A bivariate Gaussian kernel ``exp(-v^T Sigma^-1 v / 2)``, normalised.

    Args:
        kernel_size: odd side length.
        sig_x, sig_y: standard deviations (pixels) along the kernel's own axes; ``isotropic`` uses ``sig_x``
            for both and ignores ``sig_y`` and ``theta``.
        theta: rotation of the x axis, radians.

    Returns:
        ``(kernel_size, kernel_size)`` float64, summing to 1.
    """
    return _normalised(np.exp(-0.5 * _quadratic(kernel_size, sig_x, sig_y, theta, isotropic)))


def bivariate_generalized_gaussian(
    kernel_size: int, sig_x: float, sig_y: float, theta: float, beta: float, isotropic: bool = True
) -> np.ndarray:
    """A generalised Gaussian ``exp(-(v^T Sigma^-1 v)^beta / 2)``, normalised (``beta = 1``: the Gaussian;
    larger ``beta``: a flatter top and a sharper fall).

    Args:
        kernel_size, sig_x, sig_y, theta, isotropic: as ``bivariate_gaussian``.
        beta: shape, > 0.

    Returns:
        ``(kernel_size, kernel_size)`` float64, summing to 1.
    """
    q = _quadratic(kernel_size, sig_x, sig_y, theta, isotropic)
    return _normalised(np.exp(-0.5 * np.power(q, beta)))


def bivariate_plateau(
    kernel_size: int, sig_x: float, sig_y: float, theta: float, beta: float, isotropic: bool = True
) -> np.ndarray:
    """A plateau-shaped kernel ``1 / ((v^T Sigma^-1 v)^beta + 1)``, normalised.

    Args:
        kernel_size, sig_x, sig_y, theta, isotropic: as ``bivariate_gaussian``.
        beta: shape, > 0 (larger: a wider plateau).

    Returns:
        ``(kernel_size, kernel_size)`` float64, summing to 1.
    """
    q = _quadratic(kernel_size, sig_x, sig_y, theta, isotropic)
    return _normalised(np.reciprocal(np.power(q, beta) + 1.0))


def circular_lowpass_kernel(cutoff: float, kernel_size: int, pad_to: int = 0) -> np.ndarray:
    """The 2-D sinc: the ideal circular low-pass filter's impulse response ``cutoff J1(cutoff r) / (2 pi r)``
    (its value at ``r = 0`` is the limit ``cutoff^2 / (4 pi)``), cut to ``kernel_size`` and normalised.

    Args:
        cutoff: cut-off frequency in radians per pixel, in (0, pi] (pi: no low-pass).
        kernel_size: odd side length.
        pad_to: zero-pad to this odd size when it is larger (0: no padding).

    Returns:
        ``(max(kernel_size, pad_to),) * 2`` float64, summing to 1 (ringing: some weights are negative).
    """
    from scipy.special import j1

    _check_size(kernel_size)
    grid = mesh_grid(kernel_size)
    r = np.hypot(grid[..., 0], grid[..., 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        kernel = cutoff * j1(cutoff * r) / (2 * np.pi * r)
    kernel[kernel_size // 2, kernel_size // 2] = cutoff**2 / (4 * np.pi)
    return pad_kernel(_normalised(kernel), pad_to)


def pad_kernel(kernel: np.ndarray, size: int) -> np.ndarray:
    """``kernel`` zero-padded on every side to ``size`` (odd) when that is larger; else ``kernel``."""
    k = kernel.shape[-1]
    if size <= k:
        return kernel
    _check_size(size)
    p = (size - k) // 2
    return np.pad(kernel, ((p, p), (p, p)))


def pulse(size: int) -> np.ndarray:
    """The identity kernel: 1 in the middle of a ``size`` x ``size`` zero array (convolving leaves the image as it is)."""
    kernel = np.zeros((size, size))
    kernel[size // 2, size // 2] = 1.0
    return kernel


def _beta(rng: np.random.Generator, beta_range: Sequence[float]) -> float:
    # below or above 1 with equal odds, as BasicSR draws it: the range is assumed to contain 1
    lo, hi = beta_range
    return float(rng.uniform(lo, 1.0) if rng.uniform() < 0.5 else rng.uniform(1.0, hi))


def random_mixed_kernel(
    rng: np.random.Generator,
    kernel_list: Sequence[str],
    kernel_prob: Sequence[float],
    kernel_size: int,
    sigma_range: Sequence[float],
    rotation_range: Sequence[float],
    betag_range: Sequence[float],
    betap_range: Sequence[float],
) -> np.ndarray:
    """One kernel of a family drawn from ``kernel_list`` with ``kernel_prob``, its parameters drawn as BasicSR's
    ``random_mixed_kernels`` draws them (``sigma_x`` and, anisotropic, ``sigma_y`` uniform in ``sigma_range``,
    the rotation uniform in ``rotation_range``, ``beta`` below or above 1 with equal odds), from ``rng``.

    Returns:
        ``(kernel_size, kernel_size)`` float64, summing to 1.
    """
    kind = kernel_list[int(rng.choice(len(kernel_list), p=np.asarray(kernel_prob, dtype=np.float64)))]
    isotropic = kind.endswith("iso") and not kind.endswith("aniso")
    sig_x = float(rng.uniform(*sigma_range))
    sig_y, theta = (
        (sig_x, 0.0) if isotropic else (float(rng.uniform(*sigma_range)), float(rng.uniform(*rotation_range)))
    )
    if kind in ("iso", "aniso"):
        return bivariate_gaussian(kernel_size, sig_x, sig_y, theta, isotropic)
    if kind.startswith("generalized"):
        return bivariate_generalized_gaussian(kernel_size, sig_x, sig_y, theta, _beta(rng, betag_range), isotropic)
    if kind.startswith("plateau"):
        return bivariate_plateau(kernel_size, sig_x, sig_y, theta, _beta(rng, betap_range), isotropic)
    raise ValueError(f"kernel type {kind!r} is not one of {', '.join(KERNEL_TYPES)}")
