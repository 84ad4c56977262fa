"""Loading: public API, variant detection, wrappers, strict errors, refusal of pickled code, SRGAN init."""

from __future__ import annotations

import os

import pytest
import torch

import sftgan_lit
from sftgan_lit import load_generator, load_segmenter
from sftgan_lit.models import SFTGenerator, convert_srgan_state_dict, export_generator, init_from_srgan
from sftgan_lit.state_dict import CheckpointError

from helpers import layout, random_state_dict
from reference_nets import RefSFTNet


def _lr_prior(h=6, w=5):
    gen = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, h, w, generator=gen), torch.softmax(torch.randn(1, 8, 4 * h, 4 * w, generator=gen), 1)


@pytest.mark.parametrize("name,torch7", [("SFTGAN_noBN_OST_bg", False), ("SFTGAN_torch", True)])
def test_load_generator_detects_released_variant(tmp_path, name, torch7):
    sd = random_state_dict(name, seed=11)
    path = tmp_path / f"{name}.pth"
    torch.save(sd, path)
    g = load_generator(path)
    assert not g.training
    assert g.config.upsampler == ("nearest" if torch7 else "pixelshuffle")
    assert g.config.sft_formula == ("plain" if torch7 else "residual")
    ref = RefSFTNet(torch7=torch7).double()
    ref.load_state_dict(sd)
    lr, prior = _lr_prior()
    with torch.no_grad():
        torch.testing.assert_close(
            g.double()(lr.double(), prior.double()), ref((lr.double(), prior.double())), atol=1e-10, rtol=0
        )


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {"state_dict": sd},
        lambda sd: {"params": sd},
        lambda sd: {"params_ema": sd, "params": {}},
        lambda sd: {f"module.{k}": v for k, v in sd.items()},
        lambda sd: {
            "state_dict": {**{f"generator.{k}": v for k, v in sd.items()}, "discriminator.x": torch.zeros(1)},
            "pytorch-lightning_version": "2.6.0",
            "epoch": 3,
        },
    ],
    ids=["state_dict", "params", "params_ema", "dataparallel", "lightning"],
)
def test_wrappers_are_unwrapped(tmp_path, wrap):
    sd = random_state_dict("SFTGAN_noBN_OST_bg", seed=2)
    path = tmp_path / "wrapped.ckpt"
    torch.save(wrap(sd), path)
    g = load_generator(path)
    torch.testing.assert_close(g.state_dict()["conv0.weight"], sd["conv0.weight"])


def test_lightning_checkpoint_prefers_ema(tmp_path):
    sd = random_state_dict("SFTGAN_noBN_OST_bg", seed=2)
    ema = {k: v + 1 for k, v in sd.items()}
    obj = {
        "state_dict": {
            **{f"generator.{k}": v for k, v in sd.items()},
            **{f"generator_ema.{k}": v for k, v in ema.items()},
        }
    }
    torch.save(obj, tmp_path / "last.ckpt")
    torch.testing.assert_close(load_generator(tmp_path / "last.ckpt").conv0.weight, ema["conv0.weight"])
    torch.testing.assert_close(
        load_generator(tmp_path / "last.ckpt", prefer_ema=False).conv0.weight, sd["conv0.weight"]
    )


def test_mis_shaped_and_extra_keys_are_listed(tmp_path):
    sd = random_state_dict("SFTGAN_noBN_OST_bg")
    sd["sft_branch.3.conv0.weight"] = torch.zeros(64, 64, 5, 5)
    sd["extra.thing"] = torch.zeros(1)
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as err:
        load_generator(tmp_path / "bad.pth")
    msg = str(err.value)
    assert "bad.pth" in msg and "extra.thing" in msg
    assert "sft_branch.3.conv0.weight (64, 64, 5, 5) vs model (64, 64, 3, 3)" in msg


def test_missing_file_and_not_a_generator(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_generator(tmp_path / "nope.pth")
    torch.save({"foo.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="not an SFTGAN generator"):
        load_generator(tmp_path / "other.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="garbage.pth"):
        load_generator(tmp_path / "garbage.pth")


class _Exploit:
    """Unpickling this calls os.system, which would create the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("loader", [load_generator, load_segmenter])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, loader):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    sd = random_state_dict("SFTGAN_noBN_OST_bg")
    with open(path, "wb") as f:
        torch.save({"params": sd, "payload": _Exploit(marker)}, f)
    with pytest.raises(CheckpointError, match="refused"):
        loader(path)
    assert not marker.exists()
    # control: the same file does run its payload under an unsafe load, so the test can fail
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_export_round_trip_keeps_config_and_outputs(tmp_path):
    torch.manual_seed(0)
    g = SFTGenerator(conditioning="film", num_blocks=3, num_features=16, cond_channels=8, sft_hidden_channels=8).eval()
    export_generator(g, tmp_path / "g.pth")
    loaded = load_generator(tmp_path / "g.pth")
    assert loaded.config.conditioning == "film"  # not inferable from keys: read from the export
    lr, prior = _lr_prior()
    with torch.no_grad():
        torch.testing.assert_close(loaded(lr, prior), g(lr, prior))


@pytest.mark.parametrize(
    "kwargs", [dict(conditioning="none"), dict(conditioning="concat"), dict(num_cond_blocks=2, final_cond=False)]
)
def test_keys_alone_rebuild_package_variants(tmp_path, kwargs):
    g = SFTGenerator(num_blocks=4, num_features=16, **kwargs)
    torch.save(g.state_dict(), tmp_path / "g.pth")
    loaded = load_generator(tmp_path / "g.pth")
    for key, value in kwargs.items():
        assert getattr(loaded.config, key) == value


def test_segmenter_loads_released_layout(tmp_path):
    torch.save(random_state_dict("segmentation_OST_bic", std=0.02), tmp_path / "segmentation_OST_bic.pth")
    seg = load_segmenter(tmp_path / "segmentation_OST_bic.pth")
    assert not seg.training
    with torch.no_grad():
        prob = seg(torch.rand(1, 3, 8, 8))
    torch.testing.assert_close(prob.sum(1), torch.ones(1, 32, 32), atol=1e-5, rtol=0)


def test_srgan_initialisation_copies_trunk_and_starts_near_srresnet(tmp_path):
    srgan = random_state_dict("SRGAN_bicx4_noBN_DIV2K", seed=4, std=0.03)
    torch.save(srgan, tmp_path / "SRGAN_bicx4_noBN_DIV2K.pth")
    g = init_from_srgan(SFTGenerator(), tmp_path / "SRGAN_bicx4_noBN_DIV2K.pth")
    own = g.state_dict()
    torch.testing.assert_close(own["conv0.weight"], srgan["model.0.weight"])
    torch.testing.assert_close(own["sft_branch.7.conv1.bias"], srgan["model.1.sub.7.res.2.bias"])
    torch.testing.assert_close(own["sft_branch.17.weight"], srgan["model.1.sub.16.weight"])
    torch.testing.assert_close(own["HR_branch.8.weight"], srgan["model.10.weight"])
    # conditioning layers: zero bias, kaiming(fan_in) x 0.1 -> std ~ 0.1 * sqrt(2 / fan_in)
    assert torch.count_nonzero(own["sft_branch.0.sft0.SFT_scale_conv1.bias"]) == 0
    w = own["CondNet.2.weight"]
    assert abs(w.std().item() - 0.1 * (2 / 128) ** 0.5) < 0.003
    # an SRResNet built from the same weights, written out independently: outputs stay close
    plain = SFTGenerator(conditioning="none")
    plain.load_state_dict(convert_srgan_state_dict(srgan))
    lr, prior = _lr_prior(8, 8)
    with torch.no_grad():
        out, base = g(lr, prior), plain(lr)
    rel = (out - base).abs().max() / base.abs().max()
    assert rel < 0.2


def test_srgan_key_layout_is_complete():
    mapped = convert_srgan_state_dict({k: torch.zeros(v) for k, v in layout("SRGAN_bicx4_noBN_DIV2K").items()})
    plain = SFTGenerator(conditioning="none")
    assert set(mapped) == set(plain.state_dict())


def test_public_api_surface():
    assert callable(sftgan_lit.load_generator) and callable(sftgan_lit.load_segmenter) and callable(sftgan_lit.imresize)
    assert sftgan_lit.OUTDOOR_CLASSES[5] == "building" and len(sftgan_lit.OUTDOOR_COLORS) == 8


def test_srgan_that_does_not_fit_is_listed_and_leaves_generator_untouched():
    srgan = random_state_dict("SRGAN_bicx4_noBN_DIV2K", seed=4)
    srgan["model.0.weight"] = torch.zeros(32, 3, 3, 3)
    g = SFTGenerator()
    before = {k: v.clone() for k, v in g.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"conv0\.weight \(32, 3, 3, 3\) vs model \(64, 3, 3, 3\)"):
        init_from_srgan(g, srgan)
    assert all(torch.equal(v, before[k]) for k, v in g.state_dict().items())
    del srgan["model.0.weight"]
    with pytest.raises(CheckpointError, match=r"missing keys \(1\): conv0\.weight"):
        init_from_srgan(g, srgan)


def test_init_from_an_srresnet_exported_by_this_package(tmp_path):
    """experiment=srresnet_pretrain's generator.pth (our key names) can seed an SFT-Net's trunk."""
    from sftgan_lit import export_generator, init_from_srgan
    from sftgan_lit.models import SFTGenerator

    small = dict(num_features=8, num_blocks=2, cond_channels=4, cond_hidden_channels=8, sft_hidden_channels=4)
    torch.manual_seed(0)
    trunk = SFTGenerator(conditioning="none", **small)
    export_generator(trunk, tmp_path / "generator.pth")
    g = SFTGenerator(conditioning="sft", **small)
    init_from_srgan(g, tmp_path / "generator.pth")
    theirs = trunk.state_dict()
    for k, v in g.state_dict().items():
        if k in theirs:
            torch.testing.assert_close(v, theirs[k], msg=k)
    assert any("SFT_scale" in k for k in g.state_dict()) and not any("SFT_scale" in k for k in theirs)


def test_layout_fixture_matches_the_notes():
    """The committed layout fixture is what make_layout_fixture.py makes from the notes (when they are here)."""
    import json

    from helpers import FIXTURE_LAYOUTS, notes_dir

    folder = notes_dir()
    if folder is None:
        pytest.skip("layout notes (shared/original_checkpoints or SFTGAN_LAYOUTS) not beside this clone")
    fixture = json.loads(FIXTURE_LAYOUTS.read_text())
    for name, entry in fixture.items():
        note = json.loads((folder / f"{name}.json").read_text())
        assert entry["keys"] == note["keys"], f"{name}: rerun tests/fixtures/make_layout_fixture.py"
        assert entry["parameters"] == note.get("parameters"), name


@pytest.mark.parametrize(
    "content", [b"hello world, no checkpoint", b"\x80\x04K\x01.", b"PK\x03\x04 truncated zip", b"\x00" * 64]
)
def test_a_file_that_is_no_checkpoint_is_called_so(tmp_path, content):
    """Not a 'holds Python objects' refusal, nor a bare KeyError: the file is named as no checkpoint."""
    from sftgan_lit.state_dict import load_checkpoint_file

    path = tmp_path / "model.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"model\.pth: not a (readable )?PyTorch checkpoint") as info:
        load_checkpoint_file(path)
    assert "arbitrary code" not in str(info.value)
