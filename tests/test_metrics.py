"""psnr_y / ssim_y against hand-checkable cases, the torchmetrics wrappers' accumulation; NIQE against a plain
reading of MATLAB's code, DISTS / LPIPS against the reference formulas with generated backbones, PI's formula."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.special import gamma
from skimage import data as skdata

from sftgan_lit.imresize import imresize
from sftgan_lit.metrics import PSNRY, SSIMY, psnr_y, rgb_to_y, ssim_y
from sftgan_lit.state_dict import CheckpointError


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


# --------------------------------------------------------------------------- NIQE, PI, DISTS, LPIPS offline


def pristine_model(seed: int = 0):
    """A made-up NIQE pristine model (36 means, an SPD 36x36 covariance): the real one cannot be downloaded."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(36, 36))
    return rng.normal(1.0, 0.5, 36), a @ a.T / 36 + 0.1 * np.eye(36)


def plain_niqe(rgb: np.ndarray, border: int, mu: np.ndarray, cov: np.ndarray) -> float:
    """computequality.m read line by line (uint8 RGB in): rgb2ycbcr's rounded Y, shave, 96-px blocks, two scales."""
    r, g, b = (rgb[..., i].astype(np.float64) / 255 for i in range(3))
    y = np.floor(65.481 * r + 128.553 * g + 24.966 * b + 16 + 0.5)[border:-border, border:-border]  # uint8: half up
    im = y[: y.shape[0] // 96 * 96, : y.shape[1] // 96 * 96]
    x = np.arange(7) - 3
    window = np.exp(-(x[:, None] ** 2 + x[None] ** 2) / (2 * (7 / 6) ** 2))
    window /= window.sum()

    def imfilter_replicate(a):
        p = np.pad(a, 3, mode="edge")
        return sum(window[i, j] * p[i : i + a.shape[0], j : j + a.shape[1]] for i in range(7) for j in range(7))

    gam = np.arange(0.2, 10.001, 0.001)
    r_gam = gamma(2 / gam) ** 2 / (gamma(1 / gam) * gamma(3 / gam))

    def estimateaggdparam(vec):
        leftstd = np.sqrt(np.mean(vec[vec < 0] ** 2))
        rightstd = np.sqrt(np.mean(vec[vec > 0] ** 2))
        gammahat = leftstd / rightstd
        rhat = np.mean(np.abs(vec)) ** 2 / np.mean(vec**2)
        rhatnorm = rhat * (gammahat**3 + 1) * (gammahat + 1) / (gammahat**2 + 1) ** 2
        alpha = gam[np.argmin((r_gam - rhatnorm) ** 2)]
        return (
            alpha,
            leftstd * np.sqrt(gamma(1 / alpha) / gamma(3 / alpha)),
            rightstd * np.sqrt(gamma(1 / alpha) / gamma(3 / alpha)),
        )

    def computefeature(block):
        alpha, bl, br = estimateaggdparam(block.ravel())
        feat = [alpha, (bl + br) / 2]
        for shift in ([0, 1], [1, 0], [1, 1], [-1, 1]):  # circshift(A, [r c]) == np.roll(A, (r, c), (0, 1))
            pair = block.ravel() * np.roll(block, shift, axis=(0, 1)).ravel()
            alpha, bl, br = estimateaggdparam(pair)
            feat += [alpha, (br - bl) * gamma(2 / alpha) / gamma(1 / alpha), bl, br]
        return feat

    feats = []
    for scale in (1, 2):
        mu_im = imfilter_replicate(im)
        sigma = np.sqrt(np.abs(imfilter_replicate(im * im) - mu_im * mu_im))
        structdis = (im - mu_im) / (sigma + 1)
        b = 96 // scale
        rows = [
            computefeature(structdis[i : i + b, j : j + b])
            for j in range(0, im.shape[1], b)
            for i in range(0, im.shape[0], b)
        ]
        feats.append(np.array(rows))
        if scale == 1:
            im = imresize(torch.from_numpy(im)[None], 0.5)[0].numpy()
    dist = np.hstack(feats)
    dist = dist[~np.isnan(dist).any(1)]
    d = mu - dist.mean(0)
    return float(np.sqrt(d @ np.linalg.pinv((cov + np.cov(dist.T)) / 2) @ d))


def test_niqe_equals_a_plain_reading_of_matlabs_computequality(tmp_path):
    from scipy.io import savemat

    from sftgan_lit.metrics import NIQE, read_niqe_params

    mu, cov = pristine_model()
    savemat(tmp_path / "modelparameters.mat", {"mu_prisparam": mu[None], "cov_prisparam": cov})
    np.savez(tmp_path / "niqe_pris_params.npz", mu_pris_param=mu[None], cov_pris_param=cov)
    for name in ("modelparameters.mat", "niqe_pris_params.npz"):  # MATLAB's / pyiqa's names, and BasicSR's
        got_mu, got_cov = read_niqe_params(tmp_path / name)
        assert np.array_equal(got_mu, mu) and np.array_equal(got_cov, cov)
    rgb = skdata.astronaut()[40:250, 100:404]  # 210 x 304: 2 x 3 blocks after a 4-px shave
    img = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    score = NIQE(mu, cov)(torch.cat([img, img.flip(-1)]), crop_border=4)
    assert score[0].item() == pytest.approx(plain_niqe(rgb, 4, mu, cov), rel=1e-9)
    assert score[1].item() == pytest.approx(plain_niqe(rgb[:, ::-1], 4, mu, cov), rel=1e-9)
    # NIQE tells a blurred photo from the photo under any pristine model: its features move
    blurred = imresize(imresize(img, 0.25), size=tuple(img.shape[-2:])).clamp(0, 1)
    assert abs(NIQE(mu, cov)(blurred, 4).item() - score[0].item()) > 0.1


def test_niqe_and_pi_are_omitted_by_name_without_their_files(tmp_path, monkeypatch):
    from sftgan_lit.metrics import NIQE, build_suite, read_niqe_params

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    niqe, why = NIQE.from_file(None)
    assert niqe is None and str(tmp_path / "hub" / "pyiqa" / "niqe_modelparameters.mat") in why
    assert NIQE.from_file(tmp_path / "nope.mat")[0] is None
    np.savez(tmp_path / "bad.npz", mu_pris_param=np.zeros(18), cov_pris_param=np.eye(18))
    with pytest.raises(ValueError, match=r"bad.npz: NIQE's pristine mean must be 36 values"):
        read_niqe_params(tmp_path / "bad.npz")
    suite = build_suite(["dists", "niqe", "pi"])  # asked for: each missing one is named
    assert set(suite.missing) == {"dists", "niqe", "pi"} and suite.names == ["psnr_y", "ssim_y"]
    assert not build_suite("auto").missing  # auto: omitted, named in the notes only
    assert any(n.startswith("NIQE omitted") for n in build_suite("auto").notes)


def test_pi_is_pirms_combination_of_ma_and_niqe(tmp_path, monkeypatch):
    from scipy.io import savemat

    from sftgan_lit.metrics import MaScorer, build_suite, perceptual_index

    assert perceptual_index(torch.tensor(6.0), torch.tensor(4.0)).item() == 4.0  # ((10 - 6) + 4) / 2
    mu, cov = pristine_model()
    savemat(tmp_path / "p.mat", {"mu_prisparam": mu[None], "cov_prisparam": cov})
    seen = []
    stub = MaScorer(lambda x: seen.append(tuple(x.shape)) or torch.full((x.shape[0],), 7.5), "stub")
    monkeypatch.setattr(MaScorer, "from_file", classmethod(lambda cls, given: (stub, "stub Ma")))
    suite = build_suite(["pi"], niqe_params=tmp_path / "p.mat", ma_model="x")
    assert not suite.missing and suite.names == ["psnr_y", "ssim_y", "niqe", "pi"]
    sr = torch.from_numpy(skdata.astronaut()[:104, :104]).permute(2, 0, 1)[None].float() / 255
    scores = suite.score(sr, sr, 4)
    assert scores["pi"] == pytest.approx(((10 - 7.5) + scores["niqe"]) / 2) and seen == [(1, 3, 96, 96)]


def vgg16_features(seed: int = 0) -> torch.nn.Sequential:
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(seed)
    return make_layers(cfgs["D"]).eval()


def test_dists_equals_the_reference_formula_with_generated_vgg_weights(tmp_path, monkeypatch):
    import types

    import torchmetrics.functional.image.dists as reference

    from sftgan_lit.metrics import DISTS, dists_scorer

    features = vgg16_features()
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, tmp_path / "vgg16.pth")
    monkeypatch.setattr(reference, "vgg16", lambda weights=None: types.SimpleNamespace(features=features))
    expected_net = reference.DISTSNetwork()  # torchmetrics' port of Ding et al.'s code, the same backbone
    ours = DISTS(tmp_path / "vgg16.pth")
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(2, 3, 48, 40, generator=g), torch.rand(2, 3, 48, 40, generator=g)
    torch.testing.assert_close(ours(x, y), expected_net(x, y), rtol=1e-5, atol=1e-6)
    assert ours(x, x).abs().max() < 1e-5
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    scorer, why = dists_scorer()
    assert scorer is None and str(tmp_path / "hub" / "checkpoints" / "vgg16-397923af.pth") in why
    assert dists_scorer(tmp_path / "vgg16.pth")[0] is not None
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=r"other.pth: not VGG16's weights"):
        DISTS(tmp_path / "other.pth")


def test_lpips_from_a_named_backbone_file_equals_torchmetrics_from_its_cache(tmp_path, monkeypatch):
    import torchvision
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    from sftgan_lit.metrics import lpips_backbone_path, lpips_scorer

    torch.manual_seed(0)
    weights = torchvision.models.squeezenet1_1().state_dict()
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    cached = lpips_backbone_path("squeeze")
    cached.parent.mkdir(parents=True)
    torch.save(weights, cached)
    torch.save(weights, tmp_path / "elsewhere.pth")
    ours, _ = lpips_scorer("squeeze", tmp_path / "elsewhere.pth")
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(2, 3, 40, 40, generator=g), torch.rand(2, 3, 40, 40, generator=g)
    reference = LearnedPerceptualImagePatchSimilarity(net_type="squeeze", normalize=True)
    reference.update(x, y)
    assert ours(x, y).mean().item() == pytest.approx(reference.compute().item(), rel=1e-5)
    assert ours(x, x).abs().max() < 1e-6
