"""Tiled super-resolution equals the whole-image pass (any size, bands streamed to disk), the receptive
field bounds the measured one, and prior edits reach the output through the tiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sftgan_lit.data.io import read_image
from sftgan_lit.inference import predict, receptive_field, super_resolve
from sftgan_lit.models.segmenter import OutdoorSceneSeg
from sftgan_lit.priors import EditedPrior, LabelPriorMap, SegmentOptions, parse_remap, segment_image
from sftgan_lit.priors.labels import LabelPrior

from helpers import (
    CLASSES,
    COLORS,
    predict_cfg,
    random_prior,
    tiny_generator,
)


def test_receptive_field_bounds_the_measured_one():
    g = tiny_generator()
    r = receptive_field(g)
    # Measured: which LR pixels change the output block of the centre LR pixel (gradient support).
    lr = torch.rand(1, 3, 41, 41, requires_grad=True)
    prior = random_prior(41, 41)
    out = g(lr, prior.full())
    out[..., 80:84, 80:84].sum().backward()
    ys, xs = torch.nonzero(lr.grad.abs().sum((0, 1)) > 0, as_tuple=True)
    measured = int(max((ys - 20).abs().max(), (xs - 20).abs().max()))
    # 3x3 convs in LR px: first (1) + 2 per block (6) + trunk end (1) + the upsampler's conv before the
    # first pixel shuffle (1) and before the second (1/2) + two HR convs at x4 (2/4) = 10.
    assert r == 10
    assert measured <= r <= measured + 1


@pytest.mark.parametrize("size", [(37, 53), (16, 16), (17, 9)])
def test_tiled_output_equals_whole_image_output(size):
    g = tiny_generator()
    h, w = size
    lr = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(h * w))
    pm = random_prior(h, w)
    whole = super_resolve(g, lr, pm, tile=None, as_float=True)
    with torch.no_grad():
        reference = g(lr, pm.full())[0].permute(1, 2, 0).numpy()  # the eager call, not the tiling code
    tiled = super_resolve(g, lr, pm, tile=8, overlap=receptive_field(g), batch_size=3, as_float=True)
    strips = super_resolve(g, lr, pm, tile=None, hr_rows=5, as_float=True)  # upsampling layers in strips of 5 LR rows
    assert whole.shape == tiled.shape == strips.shape == (4 * h, 4 * w, 3)
    assert np.abs(whole - reference).max() < 1e-5
    assert np.abs(tiled - reference).max() < 1e-4
    assert np.abs(strips - reference).max() < 1e-5
    assert receptive_field(g, within=g.HR_branch) == 2  # 1 (conv at LR) + 1/2 (at x2) + 2/4 (two at x4)
    # Without enough context the seams show: the check above can fail.
    if h > 8 or w > 8:
        assert np.abs(super_resolve(g, lr, pm, tile=8, overlap=2, as_float=True) - reference).max() > 1e-3


def test_uint8_output_is_the_rounded_clamped_float_output():
    g = tiny_generator()
    lr = torch.rand(1, 3, 12, 10)
    pm = random_prior(12, 10)
    with torch.no_grad():
        ref = (g(lr, pm.full())[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    assert np.array_equal(super_resolve(g, lr, pm, tile=5), ref)


def test_tiny_segmenter_whole_pass_equals_forward_and_tiles_blend_close():
    torch.manual_seed(0)
    seg = OutdoorSceneSeg(layers=(1, 1, 1, 1), base_width=8).eval()
    lr = torch.rand(1, 3, 37, 45)
    with torch.no_grad():
        ref = seg(lr)  # probabilities (1, 8, 148, 180)
    whole, how = segment_image(seg, lr, SegmentOptions(max_pixels=None))
    assert "whole image" in how
    full = whole.full()
    assert full.shape == (1, 8, 148, 180)
    assert torch.allclose(full, ref, atol=1e-5)
    # A window of the decoded prior equals the same window of the full map (what the generator's tiles cut).
    assert torch.allclose(whole.crop(9, 30, 7, 22), full[..., 36:120, 28:88], atol=1e-5)
    tiled, how = segment_image(seg, lr, SegmentOptions(max_pixels=16 * 20 * 20, tile=16, overlap=8))
    assert "tiles" in how
    assert (tiled.full() - full).abs().mean() < 0.05


def _label_prior_map(h: int, w: int) -> tuple[LabelPriorMap, np.ndarray]:
    labels = np.zeros((4 * h, 4 * w), np.uint8)
    labels[: 2 * h] = 1  # sky on top
    labels[2 * h :, : 2 * w] = 3  # grass bottom left
    labels[2 * h :, 2 * w :] = 5  # building bottom right
    return LabelPrior(name="labels", class_names=CLASSES, colors=COLORS).map_of(labels, 4), labels


def test_override_changes_the_output_and_identity_edits_do_not():
    g = tiny_generator()
    pm, labels = _label_prior_map(16, 20)
    lr = torch.rand(1, 3, 16, 20)
    base = super_resolve(g, lr, pm, tile=None, as_float=True)
    building = EditedPrior(pm, override=CLASSES.index("building"))
    assert torch.equal(building.full().argmax(1), torch.full((1, 64, 80), 5))
    assert np.abs(super_resolve(g, lr, building, tile=None, as_float=True) - base).mean() > 1e-3
    identity_remap = EditedPrior(pm, remap=parse_remap("sky->sky", CLASSES))
    keep_mask = EditedPrior(pm, mask=np.full(labels.shape, 255, np.uint8))
    for edited in (identity_remap, keep_mask):
        assert np.array_equal(super_resolve(g, lr, edited, tile=None, as_float=True), base)
    # A remap moves exactly the remapped class; a mask paints only where it says.
    swapped = EditedPrior(pm, remap=parse_remap("sky->water", CLASSES)).full().argmax(1)[0].numpy()
    assert np.array_equal(swapped, np.where(labels == 1, 2, labels))
    mask = np.full(labels.shape, 255, np.uint8)
    mask[:10, :10] = 7
    painted = EditedPrior(pm, mask=mask).full().argmax(1)[0].numpy()
    assert np.array_equal(painted, np.where(mask == 255, labels, 7))


def test_bands_stack_to_the_tiled_output_and_predict_streams_large_images(tmp_path, tiny_ckpt):
    """An image of several tiles is written band by band (never held whole): the same pixels as the
    in-memory tiled pass, for the SR and for the saved prior map."""
    from sftgan_lit.inference.tiling import super_resolve_bands

    g = tiny_generator()
    lr = torch.rand(1, 3, 29, 23, generator=torch.Generator().manual_seed(4))
    prior = random_prior(29, 23)
    labels = np.empty((116, 92), np.uint8)
    whole = super_resolve(g, lr, prior, tile=8, labels_out=labels)
    bands = list(super_resolve_bands(g, lr, prior, tile=8, with_labels=True))
    assert [b.shape[0] for b, _ in bands] == [32, 32, 32, 20]
    assert np.array_equal(np.concatenate([b for b, _ in bands]), whole)
    assert np.array_equal(np.concatenate([lab for _, lab in bands]), labels)

    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray((np.random.default_rng(0).random((29, 23, 3)) * 255).astype(np.uint8)).save(src / "big.png")
    Image.fromarray((np.random.default_rng(1).random((7, 5, 3)) * 255).astype(np.uint8)).save(src / "small.png")
    common = [f"images={src}", "prior=uniform", "save_prior=true", "batch_size=2"]
    streamed, _ = predict(predict_cfg(tmp_path / "a", tiny_ckpt, *common, "tile=8"))
    in_memory, _ = predict(predict_cfg(tmp_path / "b", tiny_ckpt, *common, "tile=64"))  # one tile each
    assert streamed.ok and len(streamed.written) == 2
    for name in ("big.png", "big_prior.png", "small.png"):
        a, b = read_image(tmp_path / "a" / "out" / name), read_image(tmp_path / "b" / "out" / name)
        assert a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).max() <= 1, name
