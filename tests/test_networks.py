"""Networks: shapes, released layouts loading strictly, equality with the original-style reference,
SFT maths by hand, ablation variants training a step, precision and memory layout."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sftgan_lit.models import (
    ACDDiscriminator,
    ConditionNet,
    OutdoorSceneSeg,
    SFTGenerator,
    SFTLayer,
    VGGFeatureExtractor,
    sftgan_pytorch,
    sftgan_torch7,
)
from sftgan_lit.models.segmenter import BGR_MEANS
from sftgan_lit.state_dict import CheckpointError, load_strict

from helpers import layout, random_state_dict
from reference_nets import RefACD, RefOutdoorSceneSeg, RefSFTNet

TINY = dict(num_features=16, num_blocks=2, cond_channels=8, cond_hidden_channels=16, sft_hidden_channels=8)


def _inputs(n=2, h=6, w=5, classes=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    lr = torch.rand(n, 3, h, w, generator=gen)
    prior = torch.softmax(torch.randn(n, classes, 4 * h, 4 * w, generator=gen) * 3, dim=1)
    return lr, prior


# --- SFT layer and condition net -------------------------------------------------------------------


@pytest.mark.parametrize("formula", ["residual", "plain"])
def test_sft_layer_matches_hand_computation(formula):
    torch.manual_seed(0)
    layer = SFTLayer(feat_channels=3, cond_channels=2, hidden_channels=2, formula=formula, negative_slope=0.2)
    feat = torch.randn(1, 3, 2, 2)
    cond = torch.randn(1, 2, 2, 2)
    out = layer(feat, cond)
    # per pixel: hidden = lrelu(W0 c + b0), gamma = W1 hidden + b1, with explicit loops
    expected = torch.empty_like(feat)
    for i in range(2):
        for j in range(2):
            c = cond[0, :, i, j]

            def branch(conv0, conv1):
                hid = conv0.weight[:, :, 0, 0] @ c + conv0.bias
                hid = torch.where(hid > 0, hid, 0.2 * hid)
                return conv1.weight[:, :, 0, 0] @ hid + conv1.bias

            gamma = branch(layer.SFT_scale_conv0, layer.SFT_scale_conv1)
            beta = branch(layer.SFT_shift_conv0, layer.SFT_shift_conv1)
            f = feat[0, :, i, j]
            expected[0, :, i, j] = f * (1 + gamma) + beta if formula == "residual" else f * gamma + beta
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-5)


def test_sft_layer_per_image_condition_broadcasts():
    layer = SFTLayer(8, 4, 4)
    feat, cond = torch.randn(2, 8, 5, 7), torch.randn(2, 4, 1, 1)
    out = layer(feat, cond)
    full = layer(feat, cond.expand(-1, -1, 5, 7))
    torch.testing.assert_close(out, full)


def test_condition_net_shapes_and_layout():
    net = ConditionNet()
    assert net(torch.rand(2, 8, 40, 24)).shape == (2, 32, 10, 6)
    cond_keys = {k[len("CondNet.") :]: v for k, v in layout("SFTGAN_noBN_OST_bg").items() if k.startswith("CondNet.")}
    assert {k: list(v.shape) for k, v in net.state_dict().items()} == cond_keys


# --- generator ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,ctor,torch7", [("SFTGAN_noBN_OST_bg", sftgan_pytorch, False), ("SFTGAN_torch", sftgan_torch7, True)]
)
def test_released_generators_load_strictly_and_match_original_code(name, ctor, torch7):
    sd = random_state_dict(name, seed=3)
    ours = ctor()
    load_strict(ours, sd, name)
    assert list(ours.state_dict()) == list(layout(name))  # same keys, same order
    ref = RefSFTNet(torch7=torch7)
    ref.load_state_dict(sd, strict=True)
    lr, prior = _inputs(h=8, w=6)
    with torch.no_grad():
        expected = ref((lr, prior))
        out = ours.eval()(lr, prior)
        # float64: the same maths up to rounding, so agreement to 1e-10
        out64 = ours.double()(lr.double(), prior.double())
        expected64 = ref.double()((lr.double(), prior.double()))
    assert out.shape == (2, 3, 32, 24)
    torch.testing.assert_close(out64, expected64, atol=1e-10, rtol=0)
    # float32: random weights give outputs of magnitude ~50, so compare relative to the output range
    span = expected.abs().max().item()
    assert (out - expected).abs().max().item() <= 1e-5 * span


def test_wrong_variant_fails_strict_load_with_listing():
    sd = random_state_dict("SFTGAN_torch")
    with pytest.raises(CheckpointError) as err:
        load_strict(sftgan_pytorch(), sd, "SFTGAN_torch.pth")
    msg = str(err.value)
    assert "missing keys" in msg and "HR_branch.0.weight" in msg
    assert "unexpected keys" in msg and "HR_branch.1.weight" in msg


def test_prior_shape_errors_name_both_shapes():
    g = SFTGenerator(**TINY)
    lr, prior = _inputs(h=6, w=5)
    with pytest.raises(ValueError, match=r"prior shape \(2, 8, 20, 20\).*lr shape \(2, 3, 6, 5\)"):
        g(lr, prior[..., :20, :20])
    with pytest.raises(ValueError, match=r"\(2, 7, 24, 20\)"):
        g(lr, prior[:, :7])
    with pytest.raises(ValueError, match="needs a prior"):
        g(lr, None)


@pytest.mark.parametrize("conditioning", ["sft", "film", "concat", "none"])
def test_ablation_variants_run_and_train_a_step(conditioning):
    torch.manual_seed(0)
    g = SFTGenerator(conditioning=conditioning, **TINY)
    lr, prior = _inputs()
    target = torch.rand(2, 3, 24, 20)
    opt = torch.optim.Adam(g.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in g.state_dict().items()}
    losses = []
    for _ in range(3):
        loss = F.l1_loss(g(lr, prior), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    changed = [k for k, v in g.state_dict().items() if not torch.equal(v, before[k])]
    assert "conv0.weight" in changed
    if conditioning == "none":
        assert g.CondNet is None and not any("sft" in k for k in g.state_dict() if ".sft" in k)
    else:
        assert any(k.startswith("CondNet.") for k in changed), "the prior path must receive gradients"


def test_prior_changes_output_for_conditioned_but_not_plain_or_film_spatially():
    torch.manual_seed(0)
    lr, prior = _inputs(n=1)
    # move whole 4x4 cells (one LR pixel each): same per-image content, different layout
    other = prior.roll(shifts=8, dims=-1)
    for conditioning, spatial in (("sft", True), ("concat", True), ("film", False)):
        g = SFTGenerator(conditioning=conditioning, **TINY).eval()
        with torch.no_grad():
            diff = (g(lr, prior) - g(lr, other)).abs().max().item()
        assert (diff > 1e-6) == spatial, (conditioning, diff)
    g = SFTGenerator(conditioning="none", **TINY).eval()
    with torch.no_grad():
        torch.testing.assert_close(g(lr, prior), g(lr, None))


def test_sft_placement_first_k_blocks():
    g = SFTGenerator(num_cond_blocks=1, final_cond=False, **TINY)
    keys = g.state_dict().keys()
    assert any(k.startswith("sft_branch.0.sft0.") for k in keys)
    assert not any(k.startswith("sft_branch.1.sft") for k in keys)
    assert not any(k.startswith("sft_branch.2.") for k in keys)  # final conditioning layer absent
    assert len(g.conditioning_modules()) == 1 + 2  # CondNet + block 0's two layers
    with pytest.raises(ValueError, match="num_cond_blocks"):
        SFTGenerator(num_cond_blocks=5, **TINY)


def test_channels_last_and_autocast_bf16_close_to_fp32():
    torch.manual_seed(0)
    g = SFTGenerator(num_blocks=4).eval()
    lr, prior = _inputs(n=1, h=12, w=10)
    with torch.no_grad():
        ref = g(lr, prior)
        g_cl = g.to(memory_format=torch.channels_last)
        out_cl = g_cl(
            lr.contiguous(memory_format=torch.channels_last), prior.contiguous(memory_format=torch.channels_last)
        )
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out_bf16 = g(lr, prior)
    # channels_last changes only the summation order: fp32 rounding
    torch.testing.assert_close(out_cl, ref, atol=1e-5, rtol=1e-4)
    # bf16 has an 8-bit mantissa: relative error ~2^-8 per op; allow 3% of the output range
    scale = ref.abs().max().item()
    assert out_bf16.dtype == torch.bfloat16
    assert (out_bf16.float() - ref).abs().max().item() < 0.03 * scale + 1e-3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available on this machine")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_autocast_close_to_fp32(dtype):
    torch.manual_seed(0)
    g = SFTGenerator(num_blocks=4).cuda().eval()
    lr, prior = (t.cuda() for t in _inputs(n=1, h=12, w=10))
    with torch.no_grad():
        ref = g(lr, prior)
        with torch.autocast("cuda", dtype=dtype):
            out = g(lr, prior)
    assert (out.float() - ref).abs().max().item() < 0.03 * ref.abs().max().item() + 1e-3


# --- discriminator, segmenter, VGG ---------------------------------------------------------------------


def test_discriminator_layout_shapes_and_reference():
    sd = random_state_dict("ACD_VGG_BN_96", seed=5)
    d = ACDDiscriminator()
    load_strict(d, sd, "ACD_VGG_BN_96")
    ref = RefACD()
    ref.load_state_dict(sd)
    x = torch.rand(2, 3, 96, 96)
    d.eval(), ref.eval()
    with torch.no_grad():
        gan, cls = d(x)
        rgan, rcls = ref(x)
    assert gan.shape == (2, 1) and cls.shape == (2, 8)
    torch.testing.assert_close(gan, rgan, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(cls, rcls, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="input_size"):
        d(torch.rand(1, 3, 64, 64))
    assert ACDDiscriminator(base_channels=8, input_size=32)(torch.rand(2, 3, 32, 32))[1].shape == (2, 8)


def test_released_segmenter_layout_loads_and_outputs_probabilities():
    seg = OutdoorSceneSeg()
    sd = random_state_dict("segmentation_OST_bic", seed=7, std=0.02)
    load_strict(seg, sd, "segmentation_OST_bic")
    lr = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        prob = seg.eval()(lr)
    assert prob.shape == (1, 8, 32, 32)
    torch.testing.assert_close(prob.sum(1), torch.ones(1, 32, 32), atol=1e-5, rtol=0)


def test_segmenter_preprocessing_and_trunk_match_original_code():
    from sftgan_lit.imresize import imresize

    torch.manual_seed(0)
    seg = OutdoorSceneSeg(layers=(1, 1, 2, 1), base_width=8).eval()
    ref = RefOutdoorSceneSeg(layers=(1, 1, 2, 1), w=8).eval()
    ref.load_state_dict(seg.state_dict(), strict=True)
    lr = torch.rand(2, 3, 10, 12)
    # the original's preprocessing, step by step: x4 bicubic, x255, RGB -> BGR, minus the means
    up = imresize(lr, 4) * 255
    bgr = up[:, [2, 1, 0]] - torch.tensor(BGR_MEANS).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(seg(lr), ref(bgr), atol=1e-5, rtol=1e-4)
        # LR size whose x4 is not a multiple of 8: padded internally, output cropped back
        odd = seg(torch.rand(1, 3, 9, 7))
    assert odd.shape == (1, 8, 36, 28)
    torch.testing.assert_close(odd.sum(1), torch.ones(1, 36, 28), atol=1e-5, rtol=0)


def test_vgg_missing_weights_error_names_path(tmp_path):
    missing = tmp_path / "nowhere" / "vgg19-dcbb9e9d.pth"
    with pytest.raises(FileNotFoundError, match="nowhere/vgg19-dcbb9e9d.pth") as err:
        VGGFeatureExtractor(weights_path=missing)
    assert "IMAGENET1K_V1" in str(err.value)


def test_vgg_features_layer_normalisation_and_frozen(tmp_path):
    from torchvision.models import vgg19

    full = vgg19(weights=None)
    path = tmp_path / "vgg19.pth"
    torch.save(full.state_dict(), path)
    vgg = VGGFeatureExtractor(weights_path=path)
    vgg.train()
    assert not vgg.training and not any(p.requires_grad for p in vgg.parameters())
    assert isinstance(vgg.features[-1], torch.nn.Conv2d) and len(vgg.features) == 35  # conv5_4, pre-ReLU
    x = torch.rand(1, 3, 32, 32)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = full.features[:35]((x - mean) / std)
        torch.testing.assert_close(vgg(x), expected)
    assert expected.shape == (1, 512, 2, 2)


def test_discriminator_original_init_is_kaiming_with_zero_biases():
    """BasicSR v0.x: init_weights(netD, 'kaiming', scale=1): Kaiming-normal fan-in weights, zero biases, BN 1/0."""
    torch.manual_seed(0)
    default = ACDDiscriminator(base_channels=16, input_size=32)
    original = ACDDiscriminator(base_channels=16, input_size=32, weight_init_scale=1.0)
    for name, m in original.named_modules():
        if isinstance(m, torch.nn.Conv2d | torch.nn.Linear):
            fan_in = m.weight[0].numel()
            assert m.weight.std().item() == pytest.approx((2.0 / fan_in) ** 0.5, rel=0.15), name
            assert torch.count_nonzero(m.bias) == 0, name
    # PyTorch's default (kept by weight_init_scale=None) is about 2.4x narrower and has non-zero biases
    conv = default.feature[2]
    assert conv.weight.std().item() < 0.6 * (2.0 / conv.weight[0].numel()) ** 0.5
    assert torch.count_nonzero(conv.bias) > 0


def test_the_variant_registry_is_what_builders_yaml_and_detection_read():
    from hydra.utils import instantiate

    from sftgan_lit.models import GENERATOR_VARIANTS, infer_generator_config, sftgan_torch7

    from helpers import compose

    torch7 = GENERATOR_VARIANTS["sftgan_torch7"].overrides
    built = sftgan_torch7(num_blocks=2).config_dict()
    assert all(built[k] == v for k, v in torch7.items())
    from_yaml = instantiate(
        compose(["~experiment", "model=sftgan_torch7", "model.generator.num_blocks=2"]).model.generator
    ).config_dict()
    assert from_yaml == built
    detected = infer_generator_config(sftgan_torch7(num_blocks=2).state_dict())
    assert all(detected[k] == v for k, v in torch7.items())
    assert compose(["experiment=sftgan"]).model.discriminator.weight_init_scale == 1.0
