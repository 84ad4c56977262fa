"""JPEG compression on the device, batched, one quality per image: what libjpeg (baseline, 4:2:0, the
standard tables: PIL's ``save(format="JPEG", quality=q)``) does to an image, computed with tensors.

The steps are libjpeg's: JFIF YCbCr with 8-bit samples; chroma averaged over 2x2; edges replicated to whole
16x16 macroblocks; the 8x8 DCT; quantisation by the Annex K tables scaled by libjpeg's quality formula
(``5000 / q`` below 50, ``200 - 2 q`` above, table entries rounded and clamped to [1, 255]), rounded half
away from zero; then the decoder: the inverse DCT, 8-bit samples, chroma upsampled by libjpeg's "fancy"
(triangle) filter, which is a bilinear x2 with half-pixel centres and clamped edges, and YCbCr back to
RGB in 8 bits. The DCTs are exact here where libjpeg's are integer approximations, so the two differ by
rounding only (``tests/test_degradations.py`` measures the PSNR between them on photographs).

kornia's ``jpeg_codec_differentiable`` is the differentiable cousin; data synthesis needs none of its
gradients, and its smooth rounding and its chroma filters are not libjpeg's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# ITU T.81 Annex K, tables K.1 (luminance) and K.2 (chrominance), in natural (row-major) order
_LUMA = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
_CHROMA = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
)


_CONSTANTS: dict = {}  # (device, dtype) -> (DCT matrix, base luminance table, base chrominance table)


def _constants(device, dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The DCT matrix and the Annex K tables on ``device``, made once per device and dtype."""
    key = (str(device), dtype)
    if key not in _CONSTANTS:
        u = torch.arange(8, dtype=torch.float64)[:, None]
        x = torch.arange(8, dtype=torch.float64)[None, :]
        # the orthonormal 8-point DCT-II as JPEG defines it: D[u, x] = C(u) / 2 cos((2x + 1) u pi / 16)
        d = torch.cos((2 * x + 1) * u * math.pi / 16) / 2
        d[0] /= math.sqrt(2)
        luma, chroma = (torch.tensor(t, dtype=torch.float64) for t in (_LUMA, _CHROMA))
        _CONSTANTS[key] = tuple(t.to(device=device, dtype=dtype) for t in (d, luma, chroma))
    return _CONSTANTS[key]


def quantization_tables(quality: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """libjpeg's tables for ``quality`` ``(N,)`` in [1, 100] (a fractional quality scales between the integer
    ones): ``(N, 8, 8)`` luminance and chrominance, float64."""
    q = quality.to(torch.float64).clamp(1, 100)[:, None, None]
    scale = torch.where(q < 50, torch.floor(5000 / q), torch.floor(200 - 2 * q))
    _, luma, chroma = _constants(quality.device, torch.float64)
    return tuple(torch.floor((t * scale + 50) / 100).clamp(1, 255) for t in (luma, chroma))


def _blocks(plane: torch.Tensor) -> torch.Tensor:
    """``(N, H, W)`` (multiples of 8) -> ``(N, H/8, W/8, 8, 8)``."""
    n, h, w = plane.shape
    return plane.reshape(n, h // 8, 8, w // 8, 8).transpose(2, 3)


def _unblocks(blocks: torch.Tensor) -> torch.Tensor:
    n, bh, bw = blocks.shape[:3]
    return blocks.transpose(2, 3).reshape(n, bh * 8, bw * 8)


def _code(plane: torch.Tensor, table: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Level shift, DCT, quantise (half away from zero), dequantise, inverse DCT, 8-bit samples.
    ``plane``: ``(N, H, W)``, multiples of 8; ``table``: ``(N, 8, 8)``."""
    blocks = _blocks(plane - 128)
    coef = d @ blocks @ d.T
    t = table[:, None, None]
    quant = torch.sign(coef) * torch.floor(coef.abs() / t + 0.5)
    pixels = d.T @ (quant * t) @ d
    return (_unblocks(pixels) + 128).round().clamp(0, 255)


def jpeg(image: torch.Tensor, quality: torch.Tensor | float) -> torch.Tensor:
    """``image`` through a JPEG encode and decode at ``quality``.

    Args:
        image: ``(N, 3, H, W)`` RGB in [0, 1] (values outside are clamped, as an 8-bit encoder sees them).
        quality: ``(N,)`` (one per image) or a number, in [1, 100].

    Returns:
        ``(N, 3, H, W)`` in [0, 1], on multiples of 1/255 (decoded 8-bit samples), ``image``'s dtype.
    """
    n, c, h, w = image.shape
    if c != 3:
        raise ValueError(f"jpeg: RGB images (N, 3, H, W) expected, got {tuple(image.shape)}")
    dtype = image.dtype
    x = image.float().clamp(0, 1) * 255
    if not torch.is_tensor(quality):
        quality = torch.full((n,), float(quality), device=image.device)
    luma_t, chroma_t = (t.float() for t in quantization_tables(quality.to(image.device)))
    d = _constants(image.device, torch.float32)[0]
    r, g, b = x.round().unbind(1)  # an 8-bit encoder's input samples
    y = (0.299 * r + 0.587 * g + 0.114 * b).round()
    cb = (-0.168735892 * r - 0.331264108 * g + 0.5 * b + 128).round()
    cr = (0.5 * r - 0.418687589 * g - 0.081312411 * b + 128).round()
    ph, pw = -h % 16, -w % 16  # whole 16x16 macroblocks, edges replicated
    planes = F.pad(torch.stack([y, cb, cr], 1), (0, pw, 0, ph), mode="replicate")
    y = _code(planes[:, 0], luma_t, d)
    chroma = F.avg_pool2d(planes[:, 1:], 2).round()  # 2x2 average
    hc, wc = chroma.shape[-2:]
    chroma = _code(chroma.reshape(2 * n, hc, wc), chroma_t.repeat_interleave(2, 0), d).reshape(n, 2, hc, wc)
    # the decoder upsamples the chroma samples the image has (ceil(H/2) x ceil(W/2)), edges clamped
    ch, cw = -(-h // 2), -(-w // 2)
    chroma = chroma[..., :ch, :cw]
    chroma = F.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False).round()[..., :h, :w]
    y = y[:, :h, :w]
    cb, cr = chroma[:, 0] - 128, chroma[:, 1] - 128
    rgb = torch.stack([y + 1.402 * cr, y - 0.344136286 * cb - 0.714136286 * cr, y + 1.772 * cb], 1)
    return (rgb.round().clamp(0, 255) / 255).to(dtype)
