"""Texture strength: interpolated generators reach both ends exactly, strength maps blend per region, and
strength options that cannot work are configuration errors."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from PIL import Image

from sftgan_lit.data.io import read_image
from sftgan_lit.inference import predict
from sftgan_lit.models import export_generator

from helpers import (
    predict_cfg,
    tiny_generator,
)


def test_interpolated_generators_reach_both_ends_exactly():
    from sftgan_lit.models import interpolate_generators
    from sftgan_lit.state_dict import CheckpointError

    fid, gan = tiny_generator(seed=0), tiny_generator(seed=1)
    assert interpolate_generators(fid, gan, 0.0) is fid and interpolate_generators(fid, gan, 1.0) is gan
    half = interpolate_generators(fid, gan, 0.5)
    torch.testing.assert_close(half.conv0.weight, (fid.conv0.weight + gan.conv0.weight) / 2)
    with pytest.raises(CheckpointError, match="differ in architecture.*num_blocks"):
        interpolate_generators(fid, tiny_generator(blocks=2), 0.5)
    with pytest.raises(ValueError, match="strength=1.5"):
        interpolate_generators(fid, gan, 1.5)


def _strength_setup(tmp_path):
    folder = tmp_path / "run"
    export_generator(tiny_generator(seed=0), folder / "generator_fidelity.pth")
    export_generator(tiny_generator(seed=1), folder / "generator.pth")
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray((np.random.default_rng(0).random((21, 18, 3)) * 255).astype(np.uint8)).save(src / "a.png")
    return folder, src


def test_strength_0_and_1_are_the_two_models_and_between_differs(tmp_path):
    folder, src = _strength_setup(tmp_path)
    common = [f"images={src}", "prior=uniform", "tile=8"]

    def run(name, *extra):
        report, _ = predict(predict_cfg(tmp_path / name, folder / "generator.pth", *common, *extra))
        assert report.ok
        return read_image(report.written[0])

    gan, fid = run("gan"), run("fid_direct", f"checkpoint={folder / 'generator_fidelity.pth'}")
    assert np.array_equal(run("s1", "strength=1"), gan)
    assert np.array_equal(run("s0", "strength=0"), fid)  # checkpoint_fidelity found beside the checkpoint
    half = run("s05", "strength=0.5")
    assert not np.array_equal(half, gan) and not np.array_equal(half, fid)


def test_strength_map_blends_the_two_models_per_region(tmp_path):
    folder, src = _strength_setup(tmp_path)
    mask = np.zeros((21, 18), np.uint8)
    mask[:, 9:] = 255  # right half: the GAN model; left half: the fidelity model
    Image.fromarray(mask).save(tmp_path / "strength.png")
    common = [f"images={src}", "prior=uniform"]
    for size in (8, 64):  # streamed in bands, and in one tile
        tile = f"tile={size}"
        gan = read_image(
            predict(predict_cfg(tmp_path / f"g{size}", folder / "generator.pth", *common, tile))[0].written[0]
        )
        fid = read_image(
            predict(predict_cfg(tmp_path / f"f{size}", folder / "generator_fidelity.pth", *common, tile))[0].written[0]
        )
        report, _ = predict(
            predict_cfg(
                tmp_path / f"m{size}",
                folder / "generator.pth",
                *common,
                tile,
                f"strength_map={tmp_path / 'strength.png'}",
            )
        )
        out = read_image(report.written[0])
        assert np.array_equal(out[:, 36:], gan[:, 36:]) and np.array_equal(out[:, :36], fid[:, :36])
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "small.png")
    report, _ = predict(
        predict_cfg(tmp_path / "bad", folder / "generator.pth", *common, f"strength_map={tmp_path / 'small.png'}")
    )
    assert (
        not report.ok
        and "map is 5x5; it must be the LR or the output size (72x84)" in report.failures[str(src / "a.png")]
    )


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["strength=1.5"], "strength=1.5: must be a number in [0, 1]"),
        (["strength=0.5", "checkpoint_fidelity=nothing.pth"], "checkpoint_fidelity=nothing.pth: file not found"),
        (["strength=0.5", "strength_map=x.png"], "give one (the map holds the strength)"),
    ],
)
def test_strength_options_that_cannot_work_are_configuration_errors(tmp_path, tiny_ckpt, overrides, message):
    with pytest.raises((ValueError, FileNotFoundError), match=re.escape(message)):
        predict(predict_cfg(tmp_path, tiny_ckpt, "images=demo", *overrides))


def test_strength_without_a_fidelity_model_beside_says_how_to_get_one(tmp_path):
    from sftgan_lit.config import ConfigError

    export_generator(tiny_generator(), tmp_path / "alone" / "generator.pth")
    with pytest.raises(ConfigError, match="no generator_fidelity.pth beside"):
        predict(predict_cfg(tmp_path, tmp_path / "alone" / "generator.pth", "images=demo", "strength=0.3"))
