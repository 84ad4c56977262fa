"""psnr_y / ssim_y against hand-checkable cases, and the torchmetrics wrappers' accumulation."""

from __future__ import annotations

import math

import pytest
import torch

from sftgan_lit.metrics import PSNRY, SSIMY, psnr_y, rgb_to_y, ssim_y


def test_y_channel_is_matlab_rgb2ycbcr():
    white, black = torch.ones(1, 3, 1, 1), torch.zeros(1, 3, 1, 1)
    assert rgb_to_y(white).item() == pytest.approx(235.0, abs=1e-9)
    assert rgb_to_y(black).item() == pytest.approx(16.0)


def test_psnr_of_a_known_mse():
    # a grey image and the same + 2/255 on every channel: Y differs by 2 * (65.481+128.553+24.966)/255
    hr = torch.full((2, 3, 20, 20), 100 / 255)
    sr = hr + 2 / 255
    dy = 2 * (65.481 + 128.553 + 24.966) / 255
    expected = 10 * math.log10(255**2 / dy**2)
    torch.testing.assert_close(psnr_y(sr, hr, crop_border=4), torch.full((2,), expected, dtype=torch.float64))


def test_psnr_rounds_to_8_bit_and_crops_the_border():
    hr = torch.full((1, 3, 16, 16), 0.5)
    sr = hr.clone()
    sr[..., :4, :] = 0.0  # damage only in the cropped border
    assert psnr_y(sr, hr, crop_border=4).item() == math.inf
    sr = hr + 0.4 / 255  # rounds back to the same 8-bit value
    assert psnr_y(sr, hr, crop_border=0).item() == math.inf


def test_ssim_identical_is_one_and_drops_with_noise():
    torch.manual_seed(0)
    hr = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(ssim_y(hr, hr), torch.ones(2, dtype=torch.float64))
    a = ssim_y((hr + 0.05 * torch.randn_like(hr)).clamp(0, 1), hr)
    b = ssim_y((hr + 0.2 * torch.randn_like(hr)).clamp(0, 1), hr)
    assert (a < 0.995).all() and (b < a).all()


def test_ssim_of_a_constant_shift_matches_the_formula():
    # constant images: variances are 0, so SSIM = (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1)
    a, b = torch.full((1, 3, 24, 24), 100 / 255), torch.full((1, 3, 24, 24), 120 / 255)
    mx, my = rgb_to_y(a)[0, 0, 0, 0].item(), rgb_to_y(b)[0, 0, 0, 0].item()
    c1 = (0.01 * 255) ** 2
    assert ssim_y(a, b).item() == pytest.approx((2 * mx * my + c1) / (mx**2 + my**2 + c1), rel=1e-9)


def test_metric_wrappers_average_images_and_categories():
    torch.manual_seed(1)
    hr = torch.rand(4, 3, 24, 24)
    sr = (hr + 0.05 * torch.randn_like(hr)).clamp(0, 1)
    cats = torch.tensor([1, 1, 3, 0])
    m = PSNRY(crop_border=4, num_classes=8)
    m.update(sr[:2], hr[:2], cats[:2])
    m.update(sr[2:], hr[2:], cats[2:])
    per_image = psnr_y(sr, hr, 4)
    assert m.compute().item() == pytest.approx(per_image.mean().item())
    per_class = m.compute_per_class()
    assert per_class[1].item() == pytest.approx(per_image[:2].mean().item())
    assert per_class[3].item() == pytest.approx(per_image[2].item())
    assert torch.isnan(per_class[2])
    s = SSIMY(crop_border=4)
    s.update(sr, hr)
    assert s.compute().item() == pytest.approx(ssim_y(sr, hr, 4).mean().item())


def test_lpips_only_from_local_weights(tmp_path, monkeypatch):
    import torchvision

    from sftgan_lit.metrics import lpips_backbone_path, lpips_metric

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    metric, reason = lpips_metric("squeeze")
    assert metric is None and str(tmp_path / "checkpoints") in reason
    path = lpips_backbone_path("squeeze")
    path.parent.mkdir(parents=True)
    torch.save(torchvision.models.squeezenet1_1().state_dict(), path)
    metric, _ = lpips_metric("squeeze")
    img = torch.rand(2, 3, 32, 32)
    metric.update(img, img)
    assert metric.compute().item() == pytest.approx(0.0, abs=1e-6)
    metric.update(img, torch.rand(2, 3, 32, 32))
    assert metric.compute().item() > 0
