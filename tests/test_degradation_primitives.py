"""The degradation primitives against independent computations: kernels against their closed forms (a
Gaussian's covariance from its weights, the sinc's Bessel function from its integral), filtering against
scipy, the JPEG codec against libjpeg (PIL), the noise against its configured statistics."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from sftgan_lit.degradations import (
    bivariate_gaussian,
    bivariate_generalized_gaussian,
    bivariate_plateau,
    circular_lowpass_kernel,
    filter2d,
    gaussian_noise,
    jpeg,
    poisson_noise,
    quantization_tables,
    random_mixed_kernel,
    reflect_pad,
    usm_sharp,
)

# ------------------------------------------------------------------ kernels


def _offsets(k: int) -> tuple[np.ndarray, np.ndarray]:
    r = k // 2
    y, x = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float64)
    return x, y


@pytest.mark.parametrize("sig_x, sig_y, theta", [(1.5, 0.8, 0.6), (2.0, 1.0, -1.2), (1.2, 1.2, 0.0)])
def test_gaussian_covariance_is_its_sigma(sig_x, sig_y, theta):
    k = bivariate_gaussian(21, sig_x, sig_y, theta, isotropic=False)
    x, y = _offsets(21)
    cov = np.array([[(k * x * x).sum(), (k * x * y).sum()], [(k * x * y).sum(), (k * y * y).sum()]])
    # the rotated covariance written out: the x axis turned by theta
    c, s = math.cos(theta), math.sin(theta)
    expected = np.array(
        [
            [c * c * sig_x**2 + s * s * sig_y**2, c * s * (sig_x**2 - sig_y**2)],
            [c * s * (sig_x**2 - sig_y**2), s * s * sig_x**2 + c * c * sig_y**2],
        ]
    )
    assert k.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.abs(k.sum(0) @ x[0]) < 1e-12 and np.abs(k.sum(1) @ y[:, 0]) < 1e-12  # centred
    np.testing.assert_allclose(cov, expected, atol=2e-4)


def test_isotropic_gaussian_is_separable_closed_form():
    sigma = 1.7
    g = np.exp(-(np.arange(-7, 8) ** 2) / (2 * sigma**2))
    expected = np.outer(g, g) / np.outer(g, g).sum()
    np.testing.assert_allclose(bivariate_gaussian(15, sigma, 9.0, 1.0, isotropic=True), expected, atol=1e-15)


def test_generalized_and_plateau_shapes():
    sigma, beta = 1.3, 1.7
    x, y = _offsets(11)
    q = (x**2 + y**2) / sigma**2
    gen = bivariate_generalized_gaussian(11, sigma, sigma, 0.0, beta)
    np.testing.assert_allclose(gen / gen[5, 5], np.exp(-0.5 * q**beta), rtol=1e-12)
    plateau = bivariate_plateau(11, sigma, sigma, 0.0, beta)
    np.testing.assert_allclose(plateau / plateau[5, 5], 1 / (q**beta + 1), rtol=1e-12)
    # beta = 1 is the Gaussian; anisotropic kernels are point-symmetric and sum to 1
    np.testing.assert_allclose(
        bivariate_generalized_gaussian(11, 2.0, 0.7, 0.4, 1.0, isotropic=False),
        bivariate_gaussian(11, 2.0, 0.7, 0.4, isotropic=False),
        atol=1e-15,
    )
    for k in (
        bivariate_plateau(13, 2.0, 0.7, 0.4, 1.5, isotropic=False),
        bivariate_generalized_gaussian(13, 2.0, 0.7, 0.4, 0.6, isotropic=False),
    ):
        assert k.sum() == pytest.approx(1.0)
        np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-15)


def _bessel_j1(z: np.ndarray) -> np.ndarray:
    """J1 from its integral representation, (1/pi) int_0^pi cos(t - z sin t) dt (Simpson's rule)."""
    t = np.linspace(0.0, np.pi, 2001)
    w = np.ones_like(t)
    w[1:-1:2], w[2:-1:2] = 4, 2
    f = np.cos(t[None, :] - z.reshape(-1, 1) * np.sin(t)[None, :])
    return ((f * w).sum(1) * (t[1] - t[0]) / 3 / np.pi).reshape(z.shape)


@pytest.mark.parametrize("cutoff, size", [(np.pi / 3, 13), (2.0, 21), (np.pi, 7)])
def test_sinc_is_the_bessel_form(cutoff, size):
    x, y = _offsets(size)
    r = np.hypot(x, y)
    with np.errstate(invalid="ignore", divide="ignore"):
        h = cutoff * _bessel_j1(cutoff * r) / (2 * np.pi * r)
    h[size // 2, size // 2] = cutoff**2 / (4 * np.pi)  # the limit at r = 0
    k = circular_lowpass_kernel(cutoff, size)
    np.testing.assert_allclose(k, h / h.sum(), atol=1e-9)
    assert k.sum() == pytest.approx(1.0)
    padded = circular_lowpass_kernel(cutoff, size, pad_to=25)
    assert padded.shape == (25, 25) and padded.sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(padded[(25 - size) // 2 : (25 + size) // 2, (25 - size) // 2 : (25 + size) // 2], k)


def test_random_kernel_draws_the_chosen_family():
    rng = np.random.default_rng(0)
    for _ in range(5):
        k = random_mixed_kernel(rng, ["iso", "aniso"], [1.0, 0.0], 21, [0.5, 3.0], [-np.pi, np.pi], [0.5, 4], [1, 2])
        x, _ = _offsets(21)
        var = (k * x * x).sum()  # isotropic: sigma^2 on both axes, sigma drawn in [0.5, 3]
        assert 0.25 - 1e-6 <= var <= 9.0 and np.allclose(k, k.T)


# ------------------------------------------------------------------ filtering


def test_reflect_pad_reflects_again_beyond_the_image():
    x = torch.arange(12.0).reshape(1, 1, 3, 4)
    expected = np.pad(x[0, 0].numpy(), 10, mode="reflect")
    np.testing.assert_array_equal(reflect_pad(x, 10)[0, 0].numpy(), expected)


def test_filter2d_per_image_kernels_equals_scipy():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 3, 17, 23, generator=g, dtype=torch.float64)
    kernels = torch.stack([torch.from_numpy(bivariate_gaussian(7, 1.0 + i, 0.6, 0.3 * i, False)) for i in range(3)])
    out = filter2d(images, kernels)
    for i in range(3):
        for c in range(3):
            ref = ndimage.correlate(images[i, c].numpy(), kernels[i].numpy(), mode="mirror")
            np.testing.assert_allclose(out[i, c].numpy(), ref, atol=1e-12)


def test_usm_sharp_is_the_opencv_recipe():
    """BasicSR's usm_sharp read plainly: OpenCV's Gaussian (51 taps, sigma 8), BORDER_REFLECT_101 (scipy's
    'mirror'), the thresholded residual mask blurred the same way."""
    from skimage import data

    img = data.astronaut()[100:196, 150:246].astype(np.float64) / 255
    sigma = 0.3 * ((51 - 1) * 0.5 - 1) + 0.8
    taps = np.exp(-((np.arange(51) - 25) ** 2) / (2 * sigma**2))
    taps /= taps.sum()

    def blur(a):
        return ndimage.correlate1d(ndimage.correlate1d(a, taps, axis=0, mode="mirror"), taps, axis=1, mode="mirror")

    blurred = np.stack([blur(img[..., c]) for c in range(3)], -1)
    residual = img - blurred
    mask = (np.abs(residual) * 255 > 10).astype(np.float64)
    soft = np.stack([blur(mask[..., c]) for c in range(3)], -1)
    expected = soft * np.clip(img + 0.5 * residual, 0, 1) + (1 - soft) * img
    out = usm_sharp(torch.from_numpy(img).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-9)


# ------------------------------------------------------------------ JPEG


def _pil_jpeg(pixels: np.ndarray, quality: int) -> tuple[np.ndarray, dict]:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    img = Image.open(buf)
    return np.asarray(img.convert("RGB")), img.quantization


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


@pytest.mark.parametrize("quality", [30, 40, 75, 95])
def test_jpeg_agrees_with_libjpeg_on_photographs(quality):
    from skimage import data

    # odd sizes: partial macroblocks at the right and bottom edges
    photos = [np.ascontiguousarray(p[:117, :165]) for p in (data.astronaut(), data.coffee(), data.chelsea())]
    batch = torch.stack([torch.from_numpy(p).permute(2, 0, 1).float() / 255 for p in photos])
    ours = (jpeg(batch, torch.full((3,), float(quality))) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    for i, photo in enumerate(photos):
        ref, tables = _pil_jpeg(photo, quality)
        # libjpeg's integer DCT rounds a few coefficients the other way: the two agree to about 47 dB (measured
        # 46.2-51.6 dB on these photographs at qualities 30-95), far above each's distance to the original
        assert _psnr(ours[i], ref) > 44.0, (i, quality)
        assert _psnr(ours[i], ref) > _psnr(ref, photo) + 6
    luma, chroma = quantization_tables(torch.tensor([float(quality)]))
    assert luma[0].flatten().int().tolist() == list(tables[0])
    assert chroma[0].flatten().int().tolist() == list(tables[1])


def test_jpeg_one_quality_per_image():
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    both = jpeg(x, torch.tensor([20.0, 95.0]))
    assert torch.equal(both[0], jpeg(x[:1], 20.0)[0]) and torch.equal(both[1], jpeg(x[1:], 95.0)[0])
    assert torch.equal(both, (both * 255).round() / 255)  # 8-bit samples


# ------------------------------------------------------------------ noise


@pytest.mark.parametrize("gray", [False, True])
def test_gaussian_noise_has_its_sigma(gray):
    image = torch.full((2, 3, 256, 256), 0.5)
    noise = gaussian_noise(image, torch.tensor([10.0, 4.0]), gray, torch.Generator().manual_seed(0)) * 255
    for i, sigma in enumerate((10.0, 4.0)):
        assert noise[i].std().item() == pytest.approx(sigma, rel=0.02)
        assert abs(noise[i].mean().item()) < 0.02 * sigma
    same = torch.equal(noise[:, 0], noise[:, 1])
    assert same == gray


@pytest.mark.parametrize("levels, vals", [(256, 256), (200, 256), (100, 128)])
def test_poisson_noise_has_its_variance(levels, vals):
    """Poisson(img * vals) / vals - img has variance img / vals (vals: the next power of two above the number of
    distinct 8-bit levels), times scale squared."""
    g = torch.Generator().manual_seed(0)
    values = torch.randint(1, levels + 1, (1, 3, 256, 256), generator=g).float() / 255
    values[0, 0, 0, :levels] = torch.arange(1, levels + 1) / 255  # every level present once at least
    scale = 1.5
    noise = poisson_noise(values, scale, False, torch.Generator().manual_seed(1))
    z = noise / (scale * torch.sqrt(values / vals))
    assert z.std().item() == pytest.approx(1.0, rel=0.02)
    assert abs(z.mean().item()) < 0.02


def test_noise_is_its_generators():
    image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    a = poisson_noise(image, 1.0, True, torch.Generator().manual_seed(5))
    b = poisson_noise(image, 1.0, True, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and torch.equal(a[:, 0], a[:, 2])
