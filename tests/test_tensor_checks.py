"""The public API refuses tensors it cannot take (wrong range, NaN, unnormalised priors, HWC, uint8) by
name, instead of returning a plausible-looking wrong result; trusted loops and exports skip the checks."""

from __future__ import annotations

import re

import pytest
import torch

from sftgan_lit import imresize
from sftgan_lit.models import SFTGenerator
from sftgan_lit.models.lraspp import LRASPPSegmenter
from sftgan_lit.models.segmenter import OutdoorSceneSeg
from sftgan_lit.priors import LabelPrior, SegmentOptions, segment_image
from sftgan_lit.tensors import TensorValueError, trusted_inputs


def _generator() -> SFTGenerator:
    torch.manual_seed(0)
    return SFTGenerator(
        num_features=8, num_blocks=2, cond_channels=4, cond_hidden_channels=8, sft_hidden_channels=4
    ).eval()


def _inputs(n: int = 1, h: int = 6, w: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    return torch.rand(n, 3, h, w), torch.softmax(torch.randn(n, 8, 4 * h, 4 * w), 1)


def _bad_lr(kind: str) -> torch.Tensor:
    lr, _ = _inputs()
    return {
        "0-255": lr * 255,
        "[-1, 1]": lr * 2 - 1,
        "nan": lr.index_put_(
            (torch.tensor([0]), torch.tensor([1]), torch.tensor([2]), torch.tensor([3])), torch.tensor(float("nan"))
        ),
        "inf": lr.clone().fill_(float("inf")),
        "uint8": (lr * 255).to(torch.uint8),
    }[kind]


LR_CASES = {
    "0-255": "looks like 0-255: divide by 255",
    "[-1, 1]": "looks like [-1, 1]: use (x + 1) / 2",
    "nan": "1 non-finite values",
    "inf": "non-finite values",
    "uint8": "got torch.uint8 (an 8-bit image? use x.float() / 255)",
}


@pytest.mark.parametrize("kind", list(LR_CASES))
def test_generator_refuses_an_lr_it_cannot_take(kind):
    g = _generator()
    _, prior = _inputs()
    with pytest.raises(TensorValueError, match=r"^lr \(the generator's input\): .*" + re.escape(LR_CASES[kind])):
        g(_bad_lr(kind), prior)


def _bad_prior(kind: str) -> torch.Tensor:
    _, prior = _inputs()
    if kind == "nan":
        prior[0, 0, 0, 0] = float("nan")
        return prior
    return {"sum 3": prior * 3, "negative": prior - 0.2, "logits": torch.randn_like(prior) * 4, "half": prior / 2}[kind]


PRIOR_CASES = {
    "nan": "1 non-finite values",
    "sum 3": "values outside [0, 1]",
    "negative": "values outside [0, 1]",
    "logits": "logits? apply softmax",
    "half": "do not sum to 1 (worst pixel off by 0.5",
}


@pytest.mark.parametrize("kind", list(PRIOR_CASES))
def test_generator_refuses_a_prior_that_is_not_class_probabilities(kind):
    g = _generator()
    lr, _ = _inputs()
    with pytest.raises(TensorValueError, match=r"^prior \(the generator's categorical prior\): "):
        g(lr, _bad_prior(kind))
    with pytest.raises(TensorValueError, match=re.escape(PRIOR_CASES[kind])):
        g(lr, _bad_prior(kind))


def test_valid_inputs_pass_including_bicubic_overshoot_and_a_bf16_softmax():
    g = _generator()
    lr, prior = _inputs()
    overshoot = lr * 1.1 - 0.05  # imresize does not clamp: [-0.05, 1.05] is a normal bicubic LR
    bf16_prior = torch.softmax(torch.randn(1, 8, 24, 20).bfloat16(), 1).float()
    assert g(overshoot, bf16_prior).shape == (1, 3, 24, 20)
    assert g(lr, prior).shape == (1, 3, 24, 20)


def test_trusted_loops_skip_the_value_checks_but_not_the_shape_checks():
    g = _generator()
    lr, prior = _inputs()
    with trusted_inputs():
        g(lr * 255, prior * 3)  # no value check: the caller vouches for its batches
        with pytest.raises(ValueError, match="does not fit lr shape"):
            g(lr, prior[..., :-4])
    with pytest.raises(TensorValueError):  # the flag is restored on leaving the block
        g(lr * 255, prior)


def test_tracing_for_export_skips_the_value_checks():
    g = _generator()
    lr, prior = _inputs()
    traced = torch.jit.trace(g, (lr, prior), check_trace=False)
    assert traced(lr, prior).shape == (1, 3, 24, 20)


@pytest.mark.parametrize(
    "make",
    [
        lambda: OutdoorSceneSeg(layers=(1, 1, 1, 1), base_width=8).eval(),
        lambda: LRASPPSegmenter().eval(),
    ],
)
def test_segmenters_refuse_uint8_and_0_255_inputs(make):
    seg = make()
    lr, _ = _inputs(h=8, w=8)
    with pytest.raises(
        TensorValueError, match=r"lr \(the segmenter's input\): expected a float tensor .* got torch.uint8"
    ):
        seg((lr * 255).to(torch.uint8))
    with pytest.raises(TensorValueError, match="looks like 0-255"):
        seg(lr * 255)
    assert seg(lr).shape[-2:] == (32, 32)


def test_segment_image_and_prior_image_map_check_the_lr():
    seg = OutdoorSceneSeg(layers=(1, 1, 1, 1), base_width=8).eval()
    lr, _ = _inputs(h=8, w=8)
    with pytest.raises(TensorValueError, match=r"lr \(the image to segment\): .*looks like \[-1, 1\]"):
        segment_image(seg, lr * 2 - 1, SegmentOptions())
    with pytest.raises(TensorValueError, match=r"^lr: .*looks like 0-255"):
        LabelPrior().image_map(lr * 255, 4)


def test_imresize_refuses_hwc_and_non_finite_input():
    img = torch.rand(3, 40, 32)
    with pytest.raises(ValueError, match=r"looks like \(H, W, C\): pass img.permute\(2, 0, 1\)"):
        imresize(img.permute(1, 2, 0), 0.5)
    with pytest.raises(ValueError, match=r"looks like \(H, W, C\)"):
        imresize(img.permute(1, 2, 0)[None], 0.5)
    bad = img.clone()
    bad[1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        imresize(bad, 0.5)
    assert imresize(img, 0.5).shape == (3, 20, 16)  # channels first still works
    assert imresize(torch.rand(8, 40, 32), 0.5).shape == (8, 20, 16)  # and any channel count
