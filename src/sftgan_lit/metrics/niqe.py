"""NIQE (Mittal et al. 2013) as MATLAB's ``niqe`` / ``computequality.m`` computes it, with PIRM 2018's conventions.

The image is the Y channel of MATLAB's ``rgb2ycbcr`` on the 8-bit image (rounded to integers, as MATLAB's
uint8 result), ``crop_border`` pixels shaved on every side, cut to whole 96x96 blocks. At two scales (the
image, then MATLAB-bicubic half size): local mean and deviation with a 7x7 Gaussian (sigma 7/6, edges
replicated), normalised coefficients ``(I - mu) / (sigma + 1)``; per block (96 px, then 48 px) 18 features
of asymmetric generalised Gaussian fits (the coefficients, and their products with the four neighbours,
shifted circularly inside the block). The score is the Mahalanobis-like distance of the features' mean and
covariance to the pristine model's (``mu_prisparam``, ``cov_prisparam``): lower is more natural.

The pristine model is not shipped: it is read from a file the user has (MATLAB's ``modelparameters.mat``,
pyiqa's ``niqe_modelparameters.mat``, BasicSR's ``niqe_pris_params.npz``); without one NIQE is omitted,
naming the places looked at.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import correlate1d
from scipy.special import gamma

from ..imresize import imresize
from .fidelity import rgb_to_y

BLOCK = 96
NUM_FEATURES = 36  # 18 per scale
# MATLAB's 0.2:0.001:10, the grid the shape parameter is read from, and the ratio each shape gives
_SHAPES = np.arange(0.2, 10.001, 0.001)
_RATIOS = gamma(2 / _SHAPES) ** 2 / (gamma(1 / _SHAPES) * gamma(3 / _SHAPES))
_SHIFTS = ((0, 1), (1, 0), (1, 1), (-1, 1))  # computefeature.m's circshift offsets


def gaussian_taps(size: int = 7, sigma: float = 7 / 6) -> np.ndarray:
    """One axis of MATLAB's ``fspecial('gaussian', size, sigma)``: the 2-D window (normalised to sum 1) is the outer
    product of these taps, so filtering with it is two 1-D passes."""
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _imfilter(im: np.ndarray, taps: np.ndarray) -> np.ndarray:
    """MATLAB ``imfilter(im, taps' * taps, 'replicate')``."""
    return correlate1d(correlate1d(im, taps, axis=0, mode="nearest"), taps, axis=1, mode="nearest")


def _aggd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Asymmetric generalised Gaussian fit of each row of ``x`` ``(n, m)``: shape, left and right scales ``(n,)``."""
    neg, pos = x < 0, x > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        left = np.sqrt((x * x * neg).sum(1) / neg.sum(1))
        right = np.sqrt((x * x * pos).sum(1) / pos.sum(1))
        g = left / right
        r = np.abs(x).mean(1) ** 2 / (x * x).mean(1)
        r_norm = r * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    # the grid's ratio nearest to r_norm (MATLAB: min of the squared differences, the first on a tie); the ratio
    # rises with the shape, so it is one of the two grid points around r_norm
    hi = np.clip(np.searchsorted(_RATIOS, r_norm), 1, len(_RATIOS) - 1)
    lo = hi - 1
    pick = np.where((_RATIOS[hi] - r_norm) ** 2 < (_RATIOS[lo] - r_norm) ** 2, hi, lo)
    shape = _SHAPES[np.where(np.isnan(r_norm), 0, pick)]
    const = np.sqrt(gamma(1 / shape) / gamma(3 / shape))
    return shape, left * const, right * const


def block_features(blocks: np.ndarray) -> np.ndarray:
    """``computefeature.m`` for blocks ``(n, b, b)`` of normalised coefficients -> ``(n, 18)``."""
    n = blocks.shape[0]
    flat = blocks.reshape(n, -1)
    shape, left, right = _aggd(flat)
    feats = [shape, (left + right) / 2]
    for shift in _SHIFTS:
        pair = flat * np.roll(blocks, shift, axis=(1, 2)).reshape(n, -1)
        shape, left, right = _aggd(pair)
        feats += [shape, (right - left) * gamma(2 / shape) / gamma(1 / shape), left, right]
    return np.stack(feats, axis=1)


def niqe(y: np.ndarray, mu_pris: np.ndarray, cov_pris: np.ndarray, block: int = BLOCK) -> float:
    """NIQE of a grey image.

    Args:
        y: ``(H, W)`` float, 0-255 scale (the rounded Y channel; ``NIQE`` makes it from RGB).
        mu_pris: the pristine model's ``(36,)`` mean.
        cov_pris: its ``(36, 36)`` covariance.
        block: block side at the first scale (96 in MATLAB and PIRM).

    Returns:
        The NIQE score (lower: more natural).
    """
    h, w = y.shape
    rows, cols = h // block, w // block
    if rows < 1 or cols < 1:
        raise ValueError(f"NIQE needs at least {block}x{block} pixels (after the border is cropped), got {w}x{h}")
    im = np.asarray(y, np.float64)[: rows * block, : cols * block]
    taps = gaussian_taps()
    feats = []
    for scale in (1, 2):
        mu = _imfilter(im, taps)
        sigma = np.sqrt(np.abs(_imfilter(im * im, taps) - mu * mu))
        coeffs = (im - mu) / (sigma + 1)
        b = block // scale
        blocks = coeffs.reshape(rows, b, cols, b).transpose(0, 2, 1, 3).reshape(-1, b, b)
        feats.append(block_features(blocks))
        if scale == 1:
            im = imresize(torch.from_numpy(im)[None], 0.5)[0].numpy()
    dist = np.concatenate(feats, axis=1)
    mu_dist = np.nanmean(dist, axis=0)
    complete = dist[~np.isnan(dist).any(axis=1)]
    # MATLAB's nancov of one block is zero (normalised by N = 1); numpy's would divide by N - 1 = 0
    cov_dist = np.cov(complete, rowvar=False) if len(complete) > 1 else np.zeros((dist.shape[1],) * 2)
    diff = mu_pris - mu_dist
    return float(np.sqrt(diff @ np.linalg.pinv((cov_pris + cov_dist) / 2) @ diff))


def read_niqe_params(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """The pristine model ``(mu (36,), cov (36, 36))`` from MATLAB's / pyiqa's ``.mat`` (``mu_prisparam``,
    ``cov_prisparam``) or BasicSR's ``.npz`` (``mu_pris_param``, ``cov_pris_param``); a ``ValueError`` naming
    the file otherwise."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as f:
                mu, cov = f["mu_pris_param"], f["cov_pris_param"]
        else:
            from scipy.io import loadmat

            m = loadmat(path)
            mu, cov = m["mu_prisparam"], m["cov_prisparam"]
    except (OSError, KeyError, ValueError) as err:
        raise ValueError(
            f"{path}: not a NIQE pristine model (a .mat with mu_prisparam / cov_prisparam, or BasicSR's .npz): {err}"
        ) from None
    mu, cov = np.asarray(mu, np.float64).ravel(), np.asarray(cov, np.float64)
    if mu.shape != (NUM_FEATURES,) or cov.shape != (NUM_FEATURES, NUM_FEATURES) or not np.isfinite(cov).all():
        raise ValueError(
            f"{path}: NIQE's pristine mean must be 36 values and its covariance 36x36 finite, got {mu.shape}, {cov.shape}"
        )
    return mu, cov


def niqe_param_candidates() -> list[Path]:
    """Where a pristine model usually is: pyiqa's cache, a BasicSR install."""
    hub = Path(torch.hub.get_dir())
    places = [hub / "pyiqa" / "niqe_modelparameters.mat", Path.home() / ".cache" / "pyiqa" / "niqe_modelparameters.mat"]
    spec = importlib.util.find_spec("basicsr")
    if spec is not None and spec.origin:
        places.append(Path(spec.origin).parent / "metrics" / "niqe_pris_params.npz")
    return places


def find_niqe_params(given: str | os.PathLike | None = None) -> tuple[Path | None, list[str]]:
    """The pristine model's file (``given``, else the first of ``niqe_param_candidates``) and where it looked."""
    places = [Path(given).expanduser()] if given else niqe_param_candidates()
    found = next((p for p in places if p.is_file()), None)
    return found, [str(p) for p in places]


class NIQE:
    """Per-image NIQE of RGB images under PIRM's conventions (the module docstring).

    Args:
        mu_pris, cov_pris: the pristine model (``read_niqe_params``).
    """

    def __init__(self, mu_pris: np.ndarray, cov_pris: np.ndarray) -> None:
        self.mu, self.cov = mu_pris, cov_pris

    @classmethod
    def from_file(cls, given: str | os.PathLike | None = None) -> tuple[NIQE | None, str]:
        """NIQE with the pristine model found by ``find_niqe_params``, or ``(None, why, with the places looked)``."""
        path, looked = find_niqe_params(given)
        if path is None:
            return None, (
                "NIQE omitted: no pristine model (MATLAB's modelparameters.mat, pyiqa's niqe_modelparameters.mat or "
                f"BasicSR's niqe_pris_params.npz) at {', '.join(looked)}; set niqe_params=PATH"
            )
        return cls(*read_niqe_params(path)), f"NIQE (pristine model {path})"

    def __call__(self, img: torch.Tensor, crop_border: int = 0) -> torch.Tensor:
        """``(N, 3, H, W)`` RGB in [0, 1] -> ``(N,)`` float64 NIQE of the rounded 8-bit Y, ``crop_border`` shaved."""
        # MATLAB's rgb2ycbcr on the uint8 image: Y in double from the 8-bit values, stored as uint8 (rounded half up)
        q = (img.detach().float().clamp(0, 1) * 255).round().double() / 255
        y = torch.floor(rgb_to_y(q) + 0.5)
        if crop_border:
            y = y[..., crop_border:-crop_border, crop_border:-crop_border]
        y = y[:, 0].cpu().numpy()
        return torch.tensor([niqe(plane, self.mu, self.cov) for plane in y], dtype=torch.float64)
