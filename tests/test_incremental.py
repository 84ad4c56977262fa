"""Incremental recompute after a prior edit (inference/incremental.py): equal to a whole-image pass, and
nothing beyond the receptive field of the edit is ever written."""

from __future__ import annotations

import pytest
import torch

from sftgan_lit.inference.incremental import IncrementalSR, changed_box, grow
from sftgan_lit.inference.tiling import receptive_field

from helpers import tiny_generator

H, W, S = 37, 45, 4


def soft_prior(seed: int, classes: int = 8) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(1, classes, S * H, S * W, generator=gen) * 2).softmax(1)


def painted(prior: torch.Tensor, cls: int, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
    """``prior`` with the HR box painted one-hot ``cls``."""
    out = prior.clone()
    out[:, :, y0:y1, x0:x1] = 0
    out[:, cls, y0:y1, x0:x1] = 1
    return out


VARIANTS = {
    "sft": {},
    "sft_channels_last": {},
    "concat": {"conditioning": "concat"},
    "first_k": {"num_cond_blocks": 1, "final_cond": False},
    "relu_after_cond": {"relu_after_cond": True, "sft_formula": "plain", "upsampler": "nearest"},
    "film": {"conditioning": "film"},
}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_edits_equal_a_full_recompute_and_leave_far_pixels_alone(name):
    g = tiny_generator(blocks=3, **VARIANTS[name])
    if name == "sft_channels_last":
        g = g.to(memory_format=torch.channels_last)
    lr = torch.rand(1, 3, H, W, generator=torch.Generator().manual_seed(1))
    prior = soft_prior(2)
    inc = IncrementalSR(g, lr, prior)
    assert inc.reach <= receptive_field(g)
    # strokes in the middle, at a corner, across an edge, then one that changes nothing
    strokes = [(5, (60, 90, 70, 110)), (2, (0, 9, 0, 14)), (7, (140, 148, 100, 180))]
    for cls, (y0, y1, x0, x1) in strokes:
        before = inc.sr.clone()
        new = painted(inc.prior, cls, y0, y1, x0, x1)
        box = inc.update(new)
        with torch.no_grad():
            full = g(lr, new)
        assert (inc.sr - full).abs().max().item() <= 1e-5
        edit = (y0 // S, -(-y1 // S), x0 // S, -(-x1 // S))
        reach = (0, H, 0, W) if name == "film" else grow(edit, inc.reach, (H, W))
        assert box == reach  # what was rewritten is the edit grown by the reach, no more
        outside = torch.ones(H * S, W * S, dtype=torch.bool)
        outside[S * reach[0] : S * reach[1], S * reach[2] : S * reach[3]] = False
        assert torch.equal(inc.sr[..., outside], before[..., outside])  # bitwise: never written
        assert (inc.image == (full[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()).mean() > 0.999
    assert inc.update(inc.prior.clone()) is None  # no change, no work


def test_the_edit_reaches_only_its_receptive_field():
    """The receptive field is a real bound: a stroke changes the output at the edge of the reach at most,
    and pixels beyond it do not change in a whole-image pass either (independent of the cache)."""
    g = tiny_generator(blocks=2)
    lr = torch.rand(1, 3, H, W)
    prior = soft_prior(3)
    new = painted(prior, 6, 80, 84, 80, 84)  # one LR pixel (20, 20)
    with torch.no_grad():
        diff = (g(lr, new) - g(lr, prior)).abs().amax(dim=(0, 1))
    reach = IncrementalSR(g, lr, prior).reach
    ys, xs = torch.nonzero(diff > 0, as_tuple=True)
    assert ys.min() >= S * (20 - reach) and ys.max() < S * (21 + reach)
    assert xs.min() >= S * (20 - reach) and xs.max() < S * (21 + reach)
    assert diff.max() > 1e-3  # the stroke does change the output


def test_changed_box_covers_the_changed_hr_pixels():
    a = torch.zeros(1, 2, 40, 40)
    b = a.clone()
    b[0, 1, 9, 13] = 1  # LR pixel (2, 3)
    b[0, 0, 21, 30] = 1  # LR pixel (5, 7)
    assert changed_box(a, b, 4) == (2, 6, 3, 8)
    assert changed_box(a, a.clone(), 4) is None


def test_refuses_a_prior_of_the_wrong_size():
    g = tiny_generator(blocks=1)
    inc = IncrementalSR(g, torch.rand(1, 3, 8, 8), soft_prior(0)[..., :32, :32])
    with pytest.raises(ValueError, match="prior shape"):
        inc.update(torch.full((1, 8, 16, 16), 1 / 8))
