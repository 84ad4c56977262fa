"""imresize against hand-derivable cases and a fixture from an independent loop implementation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from sftgan_lit.imresize import contributions, cubic, imresize

FIXTURE = Path(__file__).parent / "fixtures" / "imresize_matlab.npz"


def test_cubic_kernel_known_values():
    x = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, -0.5], dtype=torch.float64)
    # Keys (a=-0.5): 1 at 0; 0.5625 at 0.5; 0 at 1; -0.0625 at 1.5; 0 at 2 and beyond; symmetric
    expected = torch.tensor([1.0, 0.5625, 0.0, -0.0625, 0.0, 0.0, 0.5625], dtype=torch.float64)
    torch.testing.assert_close(cubic(x), expected)


def test_identity_at_scale_one(rng):
    img = torch.rand(3, 17, 23, generator=rng)
    torch.testing.assert_close(imresize(img, 1.0), img, atol=1e-6, rtol=0)


def test_constant_image_stays_constant():
    img = torch.full((2, 3, 40, 36), 0.37)
    for scale in (0.25, 1 / 3, 0.7, 2.0, 4.0):
        out = imresize(img, scale)
        assert out.shape[-2:] == (math.ceil(40 * scale), math.ceil(36 * scale))
        torch.testing.assert_close(out, torch.full_like(out, 0.37), atol=1e-6, rtol=0)


def test_downscale_by_four_1d_weights_by_hand():
    # x1/4 with antialiasing: output i (1-based) centres at u = 4i - 1.5; the kernel is cubic(d/4)/4,
    # so the 16 taps at distances d = u - j for j = u-7.5 ... u+7.5 have these weights (sum = 1).
    weights, indices = contributions(64, 16, 0.25, True)
    d = torch.arange(-7.5, 8.0, 1.0, dtype=torch.float64)
    w = torch.tensor([cubic(torch.tensor(v / 4)).item() / 4 for v in d.tolist()], dtype=torch.float64)
    w = w / w.sum()
    assert weights.shape == (16, 16)
    torch.testing.assert_close(weights[5], w)  # an interior row
    # interior row 5 (0-based) -> u = 22.5 (1-based) -> taps at 1-based 15..30 -> 0-based 14..29
    assert indices[5].tolist() == list(range(14, 30))
    # first row: taps left of the image mirror back symmetrically (edge repeated)
    assert indices[0].tolist()[:4] == [5, 4, 3, 2]


def test_upscale_by_two_phase_weights_by_hand():
    # x2: u = i/2 + 0.25; taps at distance 1.75, 0.75, -0.25, -1.25 (or mirrored)
    weights, _ = contributions(10, 20, 2.0, True)
    expected = cubic(torch.tensor([1.75, 0.75, -0.25, -1.25], dtype=torch.float64))
    torch.testing.assert_close(weights[4], expected / expected.sum())


def test_separable_1d_signal_matches_weights(rng):
    # A (1, L, 1) column resized along H is exactly the contributions table applied to it.
    col = torch.rand(1, 50, 1, generator=rng, dtype=torch.float64)
    out = imresize(col, size=(13, 1))
    w, idx = contributions(50, 13, 13 / 50, True)
    expected = (w * col[0, :, 0][idx]).sum(1)
    torch.testing.assert_close(out[0, :, 0], expected)


@pytest.mark.parametrize("name", sorted({k.split("__")[0] for k in np.load(FIXTURE).files}))
def test_matches_independent_loop_implementation(name):
    data = np.load(FIXTURE)
    img = torch.from_numpy(data[f"{name}__input"]).permute(2, 0, 1).float()
    scale, antialias = data[f"{name}__params"]
    out = imresize(img, float(scale), bool(antialias))
    expected = torch.from_numpy(data[f"{name}__output"]).permute(2, 0, 1).float()
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("shape,scale", [((3, 700, 530), 0.25), ((2, 150, 260), 4.0), ((3, 333, 301), 0.37)])
def test_banded_path_equals_dense_matrix(shape, scale, rng):
    # Large axes take the chunked/banded path; compare with the full separable matrix product
    # built here from the contribution tables (float64).
    img = torch.rand(shape, generator=rng, dtype=torch.float64)
    out = imresize(img, scale)

    def matrix(n_in, n_out):
        w, idx = contributions(n_in, n_out, scale, True)
        m = torch.zeros(n_out, n_in, dtype=torch.float64)
        for k in range(w.shape[1]):
            m.index_put_((torch.arange(n_out), idx[:, k]), w[:, k], accumulate=True)
        return m

    mh = matrix(shape[1], math.ceil(shape[1] * scale))
    mw = matrix(shape[2], math.ceil(shape[2] * scale))
    expected = mh @ img @ mw.T
    torch.testing.assert_close(out, expected, atol=1e-10, rtol=0)


def test_batched_equals_per_image_and_dtype_device_kept(rng):
    imgs = torch.rand(4, 3, 48, 40, generator=rng)
    batched = imresize(imgs, 0.25)
    single = torch.stack([imresize(im, 0.25) for im in imgs])
    torch.testing.assert_close(batched, single)
    assert batched.dtype == torch.float32
    half = imresize(imgs.to(torch.bfloat16), 0.25)
    assert half.dtype == torch.bfloat16


def test_gradients_flow(rng):
    img = torch.rand(1, 3, 32, 32, generator=rng, requires_grad=True)
    imresize(img, 0.25).sum().backward()
    assert img.grad is not None and torch.isfinite(img.grad).all() and img.grad.abs().sum() > 0


def test_rejects_integer_images_and_bad_args():
    with pytest.raises(TypeError, match="floating-point"):
        imresize(torch.zeros(3, 8, 8, dtype=torch.uint8), 0.5)
    with pytest.raises(ValueError, match="exactly one"):
        imresize(torch.zeros(3, 8, 8), 0.5, size=(4, 4))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        imresize(torch.zeros(8, 8), 0.5)


@pytest.mark.parametrize("shape", [(1, 3, 7, 5), (2, 3, 2, 3), (1, 8, 33, 19)])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_upsample_is_imresize_for_integer_upscales(shape, scale):
    """The convolution form (what the segmenters and ONNX exports use) equals the reference resize:
    exactly in float64 (the same weights, borders included), to rounding in float32."""
    from sftgan_lit.imresize import bicubic_upsample

    torch.manual_seed(0)
    x = torch.rand(*shape, dtype=torch.float64)
    torch.testing.assert_close(bicubic_upsample(x, scale), imresize(x, scale), atol=1e-12, rtol=0)
    torch.testing.assert_close(bicubic_upsample(x.float(), scale), imresize(x.float(), scale), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("scale", "message"),
    [
        (1e-9, r"scale=1e-09: a 8x6 input would shrink below one pixel"),
        (float("inf"), r"scale=inf: must be a finite number > 0"),
        (float("nan"), r"scale=nan: must be a finite number > 0"),
        (-0.5, r"scale=-0.5: must be a finite number > 0"),
        (1e9, r"scale=1000000000.0: the output .* would hold more than 2,147,483,648 values"),
    ],
)
def test_absurd_scales_are_refused_naming_the_scale_before_any_allocation(scale, message):
    """A scale of 1e-9 once built a 4e9-tap kernel (32 GB) for a one-pixel output, and inf overflowed."""
    with pytest.raises(ValueError, match=message):
        imresize(torch.rand(3, 8, 6), scale)
