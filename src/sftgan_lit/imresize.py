"""MATLAB-compatible bicubic ``imresize`` on torch tensors.

The SR literature (and SFTGAN's data) makes LR images with MATLAB's ``imresize(img, 1/4, 'bicubic')``:
a Keys cubic kernel (a = -0.5), widened by ``1/scale`` when downscaling (antialiasing), symmetric
padding at the borders, rows resized first and columns second. Any other kernel (PIL, OpenCV,
``torch.nn.functional.interpolate``) gives a measurably different LR image and so a different task.

Implementation: per axis, MATLAB's contribution tables (weights and input indices of each output
sample) are computed once per ``(in_length, out_length, scale, antialiasing)`` and folded, with the
symmetric padding, into a weight matrix. Resizing a short axis is one matrix product; for long axes
the matrix is cut into blocks of consecutive output samples (8-256, chosen by a cost model), each a
matrix product over the narrow band of input samples it touches, so the cost stays proportional to
the kernel's width instead of the image's size and no gathered copy of the image is made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

from .tensors import checking

__all__ = ["imresize", "upsample", "bicubic_upsample", "cubic", "contributions"]

_KERNEL_WIDTH = 4.0  # support of the cubic kernel, in input samples


def cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``); zero for ``|x| >= 2``."""
    absx = x.abs()
    absx2 = absx * absx
    absx3 = absx2 * absx
    near = (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1).to(x.dtype)
    far = (-0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0) * ((absx > 1) & (absx <= 2)).to(x.dtype)
    return near + far


def contributions(
    in_length: int, out_length: int, scale: float, antialiasing: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """MATLAB's ``contributions``: weights and 0-based input indices for each output sample.

    Returns ``(weights, indices)``, both ``(out_length, P)`` (float64 / int64). Indices already point
    into the unpadded input: positions outside ``[0, in_length)`` are mirrored symmetrically (the edge
    sample repeated), as MATLAB does. Columns whose weights are all zero are dropped.
    """
    kernel_width = _KERNEL_WIDTH
    if scale < 1 and antialiasing:
        kernel_width = kernel_width / scale
    x = torch.arange(1, out_length + 1, dtype=torch.float64)
    # Map output-space 0.5 to input-space 0.5 and output 0.5 + scale to input 1.5 (1-based).
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = torch.floor(u - kernel_width / 2.0)
    num_taps = math.ceil(kernel_width) + 2
    indices = left[:, None] + torch.arange(num_taps, dtype=torch.float64)[None, :]
    distance = u[:, None] - indices
    if scale < 1 and antialiasing:
        weights = scale * cubic(distance * scale)
    else:
        weights = cubic(distance)
    weights = weights / weights.sum(dim=1, keepdim=True)
    # Symmetric padding through MATLAB's aux = [1:in, in:-1:1] table, valid for any overhang.
    aux = torch.cat([torch.arange(in_length), torch.arange(in_length - 1, -1, -1)])
    indices = aux[torch.remainder(indices.long() - 1, 2 * in_length)]
    keep = (weights != 0).any(dim=0)
    return weights[:, keep].contiguous(), indices[:, keep].contiguous()


@dataclass(frozen=True)
class _AxisPlan:
    """How to resize one axis: output rows ``[k*chunk, (k+1)*chunk)`` = ``weights[k] @ in[starts[k]:+band]``."""

    out_length: int
    weights: torch.Tensor  # (n_chunks, chunk, band); one chunk covering everything = a dense matrix
    starts: tuple[int, ...]  # first input row of each chunk's band


# Cost model for choosing the chunk size, in multiply-adds: each chunk's matrix product pays a fixed
# dispatch overhead (~8 us on a 2-core x86 CPU at ~40 GMAC/s); only steers the choice, never the result.
_CHUNK_OVERHEAD_MACS = 3.0e5


@lru_cache(maxsize=256)
def _axis_plan_f64(in_length: int, out_length: int, scale: float, antialiasing: bool, other: int) -> _AxisPlan:
    """Plan for one axis; ``other`` is the number of values per input row (sets the cost trade-off)."""
    weights, indices = contributions(in_length, out_length, scale, antialiasing)
    dense = torch.zeros(out_length, in_length, dtype=torch.float64)
    # accumulate: mirrored taps that land on the same input sample add up
    rows = torch.arange(out_length)[:, None].expand_as(indices)
    dense.index_put_((rows, indices), weights, accumulate=True)

    best_cost = float(out_length * in_length * other) + _CHUNK_OVERHEAD_MACS
    best = _AxisPlan(out_length, dense[None], (0,))
    nonzero = dense != 0
    first = nonzero.float().argmax(dim=1)  # every row has a nonzero weight (rows sum to 1)
    last = in_length - 1 - nonzero.flip(1).float().argmax(dim=1)
    for chunk in (8, 16, 32, 64, 128, 256):
        if chunk >= out_length:
            break
        n_chunks = math.ceil(out_length / chunk)
        lo = [int(first[k * chunk : (k + 1) * chunk].min()) for k in range(n_chunks)]
        hi = [int(last[k * chunk : (k + 1) * chunk].max()) for k in range(n_chunks)]
        band = max(top - bottom for bottom, top in zip(lo, hi)) + 1
        cost = n_chunks * (chunk * band * other + _CHUNK_OVERHEAD_MACS)
        if cost < best_cost:
            starts = tuple(min(start, in_length - band) for start in lo)
            padded = torch.zeros(n_chunks * chunk, in_length, dtype=torch.float64)
            padded[:out_length] = dense
            chunk_weights = torch.stack(
                [padded[k * chunk : (k + 1) * chunk, s : s + band] for k, s in enumerate(starts)]
            )
            best_cost, best = cost, _AxisPlan(out_length, chunk_weights, starts)
    return best


@lru_cache(maxsize=256)
def _axis_plan(
    in_length: int,
    out_length: int,
    scale: float,
    antialiasing: bool,
    other: int,
    dtype: torch.dtype,
    device: torch.device,
) -> _AxisPlan:
    plan = _axis_plan_f64(in_length, out_length, scale, antialiasing, other)
    return _AxisPlan(plan.out_length, plan.weights.to(device=device, dtype=dtype), plan.starts)


def _resize_rows(x: torch.Tensor, plan: _AxisPlan) -> torch.Tensor:
    """Resize dim -2 of ``x`` (B, in_length, W) -> (B, out_length, W)."""
    n_chunks, chunk, band = plan.weights.shape
    if n_chunks == 1:
        return torch.matmul(plan.weights[0], x)
    # One matrix product per block of output rows over the narrow band of input rows it reads:
    # slices are views, so no gathered copy of the image is made (large temporaries cost more in
    # page faults than the arithmetic), and the work stays proportional to the kernel width.
    batch, _, width = x.shape
    out = x.new_empty(batch, n_chunks * chunk, width)
    for k, start in enumerate(plan.starts):
        torch.matmul(plan.weights[k], x[:, start : start + band], out=out[:, k * chunk : (k + 1) * chunk])
    return out[:, : plan.out_length]


# 2**31 values (8 GiB in float32): far above any image this package handles (a 16k x 16k RGB is 0.8e9),
# well below what would exhaust a machine's memory before a single pixel is computed.
MAX_OUTPUT_VALUES = 2**31


def imresize(
    img: torch.Tensor,
    scale: float | None = None,
    antialiasing: bool = True,
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Resize like MATLAB's ``imresize(img, scale, 'bicubic')``.

    Args:
        img: float tensor (C, H, W) or (N, C, H, W), any value range (e.g. RGB in [0, 1]).
        scale: the same factor for both axes; the output is ``(ceil(H * scale), ceil(W * scale))``.
        antialiasing: widen the kernel when downscaling (MATLAB's default, used for the literature's LR).
        size: ``(out_H, out_W)`` instead of ``scale`` (the kernel then follows each axis' own ratio).

    Returns:
        The resized tensor, same dtype and device, no rounding or clamping (bicubic overshoots).
    """
    if not torch.is_floating_point(img):
        raise TypeError(f"imresize expects a floating-point tensor, got {img.dtype}; convert with img.float() / 255")
    if img.dim() not in (3, 4):
        raise ValueError(f"imresize expects (C, H, W) or (N, C, H, W), got shape {tuple(img.shape)}")
    if img.shape[-1] in (1, 3, 4) and img.shape[-3] > 4 and img.shape[-2] > 4:
        # an (H, W, 3) image read with PIL/numpy: resizing it as H channels of W x 3 is garbage
        raise ValueError(
            f"imresize expects channels first, (C, H, W) or (N, C, H, W); shape {tuple(img.shape)} looks like "
            "(H, W, C): pass img.permute(2, 0, 1) (or .permute(0, 3, 1, 2) for a batch)"
        )
    if checking() and not bool(torch.isfinite(img).all()):
        raise ValueError(f"imresize: the input {tuple(img.shape)} holds NaN or inf values")
    in_h, in_w = img.shape[-2:]
    if (scale is None) == (size is None):
        raise ValueError("imresize needs exactly one of scale= or size=")
    if size is not None:
        out_h, out_w = int(size[0]), int(size[1])
        scale_h, scale_w = out_h / in_h, out_w / in_w
    else:
        try:
            ok = math.isfinite(float(scale)) and float(scale) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"imresize scale={scale}: must be a finite number > 0")
        if min(in_h, in_w) * scale < 1:
            # ceil would make it one pixel, from a kernel 4/scale pixels wide: memory without bound
            raise ValueError(f"imresize scale={scale}: a {in_h}x{in_w} input would shrink below one pixel")
        out_h, out_w = math.ceil(in_h * scale), math.ceil(in_w * scale)
        scale_h = scale_w = float(scale)
    if min(out_h, out_w, in_h, in_w) < 1:
        raise ValueError(f"imresize cannot resize {in_h}x{in_w} to {out_h}x{out_w}")
    if out_h * out_w * math.prod(img.shape[:-2]) > MAX_OUTPUT_VALUES:
        raise ValueError(
            f"imresize {'scale=' + str(scale) if scale is not None else 'size=' + str(tuple(size))}: the output "
            f"({out_h}x{out_w} per channel) would hold more than {MAX_OUTPUT_VALUES:,} values"
        )

    lead = img.shape[:-2]
    x = img.reshape(-1, in_h, in_w)
    dtype, device = img.dtype, img.device
    # Half precision would lose the 1e-5 agreement with MATLAB; compute in fp32 and cast back.
    work_dtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    x = x.to(work_dtype)
    batch = x.shape[0]
    # MATLAB resizes the axis with the smaller scale first (rows first on a tie); the order changes
    # the result at the 1e-7 level because intermediate values are stored in the working dtype.
    if scale_w < scale_h:
        plan_w = _axis_plan(in_w, out_w, scale_w, antialiasing, batch * in_h, work_dtype, device)
        x = _resize_rows(x.transpose(-1, -2).contiguous(), plan_w).transpose(-1, -2)
        plan_h = _axis_plan(in_h, out_h, scale_h, antialiasing, batch * out_w, work_dtype, device)
        x = _resize_rows(x.contiguous(), plan_h)
    else:
        plan_h = _axis_plan(in_h, out_h, scale_h, antialiasing, batch * in_w, work_dtype, device)
        x = _resize_rows(x, plan_h)
        plan_w = _axis_plan(in_w, out_w, scale_w, antialiasing, batch * out_h, work_dtype, device)
        x = _resize_rows(x.transpose(-1, -2).contiguous(), plan_w).transpose(-1, -2)
    return x.reshape(*lead, out_h, out_w).to(dtype).contiguous()


@lru_cache(maxsize=8)
def _upsample_taps(scale: int) -> torch.Tensor:
    """Per output phase ``p`` of an integer up-scale, MATLAB's 5 weights on input offsets -2..2 ``(scale, 5)``,
    read off ``contributions`` for a sample away from the borders (float64)."""
    n, i = 16, 8
    weights, indices = contributions(n, n * scale, float(scale), antialiasing=False)
    taps = torch.zeros(scale, 5, dtype=torch.float64)
    for p in range(scale):
        row = i * scale + p
        for wgt, idx in zip(weights[row].tolist(), indices[row].tolist()):
            taps[p, idx - i + 2] += wgt
    return taps


def bicubic_kernel(scale: int) -> torch.Tensor:
    """The ``(scale * scale, 1, 5, 5)`` float64 kernels of ``bicubic_upsample`` (modules keep them as a buffer,
    so that tracing and export see a constant rather than the table computation)."""
    taps = _upsample_taps(scale)
    return (taps[:, None, :, None] * taps[None, :, None, :]).reshape(scale * scale, 1, 5, 5)


def upsample(img: torch.Tensor, scale: int, kernel: torch.Tensor | None = None) -> torch.Tensor:
    """MATLAB bicubic x``scale`` of ``(N, C, H, W)``: ``bicubic_upsample`` where it applies, else ``imresize``."""
    if min(img.shape[-2:]) >= 2 and isinstance(scale, int):
        return bicubic_upsample(img, scale, kernel)
    return imresize(img, scale)


def bicubic_upsample(img: torch.Tensor, scale: int, kernel: torch.Tensor | None = None) -> torch.Tensor:
    """``imresize(img, scale)`` for an integer up-scale as a convolution: symmetric padding by 2, one 5x5
    kernel per output phase (the outer product of ``contributions``' row and column weights), pixel shuffle.

    Equal to ``imresize`` up to float rounding (~1e-7; tested), several times faster on CPUs, and made of
    ops whose shapes follow the input's, so traced or exported graphs (ONNX) keep dynamic sizes. Inputs
    ``(N, C, H, W)`` with ``H, W >= 2`` (a 1-pixel side mirrors onto itself: use ``imresize``).
    ``kernel``: ``bicubic_kernel(scale)`` when the caller keeps it (any dtype; computed here otherwise).
    """
    if img.dim() != 4 or min(img.shape[-2:]) < 2:
        raise ValueError(f"bicubic_upsample expects (N, C, H, W) with H, W >= 2, got {tuple(img.shape)}")
    if not (isinstance(scale, int) and scale >= 1):
        raise ValueError(f"bicubic_upsample needs an integer scale >= 1, got {scale}")
    c = img.shape[1]
    kernel = bicubic_kernel(scale) if kernel is None else kernel
    dtype = torch.float32 if img.dtype in (torch.float16, torch.bfloat16) else img.dtype
    kernel = kernel.to(device=img.device, dtype=dtype).repeat(c, 1, 1, 1)
    x = img.to(dtype)
    # symmetric padding (the edge sample repeated), as MATLAB's contributions mirror indices
    x = torch.cat([x[..., :2, :].flip(-2), x, x[..., -2:, :].flip(-2)], dim=-2)
    x = torch.cat([x[..., :2].flip(-1), x, x[..., -2:].flip(-1)], dim=-1)
    out = torch.nn.functional.conv2d(x, kernel, groups=c)
    return torch.nn.functional.pixel_shuffle(out, scale).to(img.dtype)
