"""Plug-and-play SFT: SFT-RRDBNet and SFT-Compact at x1-x4. Started from a released backbone they compute
exactly that backbone (Real-ESRGAN's networks, written independently in reference_nets.py); they are
recognised from their tensors, tile and update incrementally as exactly as the SFT-Net, and a new
backbone is one module plus one registry entry."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sftgan_lit.config import ConfigError
from sftgan_lit.inference.incremental import IncrementalSR, grow
from sftgan_lit.inference.tiling import receptive_field, super_resolve
from sftgan_lit.models import (
    ConditionedConfig,
    ConditionedGenerator,
    SFTCompact,
    SFTRRDBNet,
    Stage,
    build_generator,
    conv_radius,
    export_generator,
    init_from_backbone,
    load_generator,
    registry,
)
from sftgan_lit.priors import DenseProbs
from sftgan_lit.state_dict import CheckpointError

from helpers import randomize_
from reference_nets import RefRRDBNet, RefSRVGGNetCompact

SMALL_COND = {"num_classes": 3, "cond_channels": 4, "cond_hidden_channels": 8, "sft_hidden_channels": 4}


def sft_rrdb(scale: int, blocks: int = 2, **kw) -> SFTRRDBNet:
    args = {**SMALL_COND, "num_features": 8, "num_blocks": blocks, "num_grow_ch": 4, "scale": scale, **kw}
    return build_generator("rrdb_x4plus", **args)


def sft_compact(scale: int, blocks: int = 3, **kw) -> SFTCompact:
    return build_generator(
        "compact_general_x4v3", **{**SMALL_COND, "num_features": 8, "num_blocks": blocks, "scale": scale, **kw}
    )


def source(backbone: str, scale: int, seed: int = 0) -> nn.Module:
    """A released-layout backbone with every weight random at a variance-preserving scale (PReLU slopes too)."""
    torch.manual_seed(seed)
    net = (
        RefRRDBNet(scale=scale, num_feat=8, num_block=2, num_grow_ch=4)
        if backbone == "rrdb"
        else RefSRVGGNetCompact(num_feat=8, num_conv=3, upscale=scale)
    )
    return randomize_(net, 0.1)


def probs(n: int, classes: int, h: int, w: int, seed: int) -> torch.Tensor:
    return (torch.randn(n, classes, h, w, generator=torch.Generator().manual_seed(seed)) * 3).softmax(1)


def reference_output(net: nn.Module, lr: torch.Tensor, multiple: int, scale: int) -> torch.Tensor:
    """What Real-ESRGAN's inference gives: the input reflect-padded to the network's multiple, the output cut."""
    h, w = lr.shape[-2:]
    padded = F.pad(lr, (0, -w % multiple, 0, -h % multiple), mode="reflect")
    return net(padded)[..., : scale * h, : scale * w]


BUILD = {"rrdb": sft_rrdb, "compact": sft_compact}


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
@pytest.mark.parametrize("backbone", ["rrdb", "compact"])
def test_started_from_a_released_backbone_the_output_is_the_backbones_bit_for_bit(tmp_path, backbone, scale):
    ref = source(backbone, scale)
    torch.save({"params_ema": ref.state_dict()}, tmp_path / "released.pth")  # Real-ESRGAN's wrapper
    g = BUILD[backbone](scale)
    init_from_backbone(g, tmp_path / "released.pth")
    lr = torch.rand(2, 3, 13, 11, generator=torch.Generator().manual_seed(1))  # odd: x2 and x1 pad
    with torch.no_grad():
        expected = reference_output(ref, lr, g.lr_multiple, scale)
        for seed in (0, 1):  # whatever the prior says
            out = g.eval()(lr, probs(2, 3, 13 * scale, 11 * scale, seed))
            assert out.shape == (2, 3, 13 * scale, 11 * scale)
            assert torch.equal(out, expected)
    # ... and learns the prior from there: the gradient reaches every SFT layer's scale and shift
    g.train()(lr, probs(2, 3, 13 * scale, 11 * scale, 2)).square().mean().backward()
    layers = [m for m in g.conditioning_modules()[1:]]
    assert layers and all(m.SFT_scale_conv1.weight.grad.abs().sum() > 0 for m in layers)


def esrgan_old_layout(sd: dict, num_blocks: int) -> dict:
    """RRDBNet's keys as ESRGAN's original code named them (``model.N`` sequential indices)."""
    names = {"conv_first": "model.0", "conv_body": f"model.1.sub.{num_blocks}", "conv_up1": "model.3"}
    names.update({"conv_up2": "model.6", "conv_hr": "model.8", "conv_last": "model.10"})
    out = {}
    for key, value in sd.items():
        module, _, param = key.rpartition(".")
        if module.startswith("body."):
            _, i, rdb, conv = module.split(".")
            out[f"model.1.sub.{i}.RDB{rdb[-1]}.{conv}.0.{param}"] = value
        else:
            out[f"{names[module]}.{param}"] = value
    return out


def test_the_old_esrgan_layout_starts_the_same_network(tmp_path):
    ref = source("rrdb", 4)
    torch.save(esrgan_old_layout(ref.state_dict(), 2), tmp_path / "esrgan.pth")
    g = init_from_backbone(sft_rrdb(4), tmp_path / "esrgan.pth").eval()
    lr = torch.rand(1, 3, 9, 7)
    with torch.no_grad():
        assert torch.equal(g(lr, probs(1, 3, 36, 28, 0)), ref(lr))
    # loaded as a generator, the old file is the unconditioned RRDBNet it holds
    plain = load_generator(tmp_path / "esrgan.pth", channels_last=False)
    assert isinstance(plain, SFTRRDBNet) and not plain.uses_prior and plain.config.num_blocks == 2
    with torch.no_grad():
        assert torch.equal(plain(lr), ref(lr))


RELEASED = {
    # name: (the released network's arguments in reference_nets, our variant)
    "RealESRGAN_x4plus": ("rrdb", {"scale": 4}, "rrdb_x4plus"),
    "RealESRGAN_x2plus": ("rrdb", {"scale": 2}, "rrdb_x2plus"),
    "realesr-general-x4v3": ("compact", {"num_conv": 32, "upscale": 4}, "compact_general_x4v3"),
}


@pytest.mark.parametrize("name", list(RELEASED))
def test_released_shapes_are_recognised_and_loaded_strictly(tmp_path, name):
    kind, args, variant = RELEASED[name]
    torch.manual_seed(0)
    ref = (RefRRDBNet(**args) if kind == "rrdb" else RefSRVGGNetCompact(**args)).eval()
    torch.save({"params_ema": ref.state_dict(), "params": {}}, tmp_path / f"{name}.pth")
    plain = load_generator(tmp_path / f"{name}.pth", channels_last=False)
    assert type(plain) is type(build_generator(variant)) and not plain.uses_prior
    assert plain.config.scale == (args.get("scale") or args["upscale"])
    g = init_from_backbone(build_generator(variant, num_classes=8), tmp_path / f"{name}.pth").eval()
    lr = torch.rand(1, 3, 7, 6)
    s = g.scale
    with torch.no_grad():
        expected = reference_output(ref, lr, g.lr_multiple, s)
        assert torch.equal(plain(lr), expected)
        assert torch.equal(g(lr, probs(1, 8, 7 * s, 6 * s, 0)), expected)


def test_a_backbone_that_does_not_fit_is_refused_naming_what_differs(tmp_path):
    torch.save(source("rrdb", 2).state_dict(), tmp_path / "x2.pth")
    with pytest.raises(CheckpointError, match="differs from model.generator in scale: file 2, model 4"):
        init_from_backbone(sft_rrdb(4), tmp_path / "x2.pth")
    with pytest.raises(CheckpointError, match="num_blocks: file 2, model 3"):
        init_from_backbone(sft_rrdb(2, blocks=3), tmp_path / "x2.pth")
    torch.save(source("compact", 4).state_dict(), tmp_path / "compact.pth")
    with pytest.raises(CheckpointError, match="not a SFT-RRDBNet backbone"):
        init_from_backbone(sft_rrdb(4), tmp_path / "compact.pth")
    export_generator(sft_rrdb(4), tmp_path / "conditioned.pth", ["a", "b", "c"])
    with pytest.raises(CheckpointError, match=r"keys outside the unconditioned trunk \(sft\.0\."):
        init_from_backbone(sft_rrdb(4), tmp_path / "conditioned.pth")
    untouched = sft_rrdb(4)
    before = {k: v.clone() for k, v in untouched.state_dict().items()}
    with pytest.raises(CheckpointError):
        init_from_backbone(untouched, tmp_path / "x2.pth")
    assert all(torch.equal(before[k], v) for k, v in untouched.state_dict().items())


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: sft_rrdb(5), "model.generator.scale=5: must be one of 1, 2, 3, 4"),
        (lambda: sft_compact(4, out_channels=1), "model.generator.out_channels=1: must be equal to in_channels"),
        (lambda: sft_rrdb(4, cond_every=0), "model.generator.cond_every=0: must be an integer >= 1"),
        (
            lambda: build_generator("rrdb_x4plus", num_conv=3),
            "model.generator.num_conv: not an argument of SFT-RRDBNet",
        ),
        (lambda: build_generator("rrdb_x9"), "model.generator.variant=rrdb_x9: must be one of"),
    ],
)
def test_bad_arguments_name_the_key(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


@pytest.mark.parametrize("backbone", ["rrdb", "compact"])
@pytest.mark.parametrize(
    "placement", [{}, {"cond_every": 2}, {"num_cond_blocks": 1, "final_cond": False}, {"conditioning": "concat"}]
)
def test_exports_round_trip_and_placement_is_read_from_the_tensors(tmp_path, backbone, placement):
    g = BUILD[backbone](3, blocks=4, **placement)
    sft_layers = [k for k in g.state_dict() if k.startswith("sft.")]
    expected = [
        i for i in range(4) if (i % placement.get("cond_every", 1) == 0) and i < placement.get("num_cond_blocks", 4)
    ]
    assert sorted({int(k.split(".")[1]) for k in sft_layers}) == expected
    export_generator(g, tmp_path / "g.safetensors", ["a", "b", "c"])
    loaded = load_generator(tmp_path / "g.safetensors", channels_last=False)
    assert loaded.config == g.config and loaded.record["architecture"] == registry.architecture_of(g).name
    inferred, _ = registry.infer_generator(g.state_dict())  # no record: from the tensors alone
    flags = g.config.conditioned_blocks(4)
    assert inferred.config.conditioned_blocks(4) == flags and inferred.config.scale == 3
    assert inferred.config.conditioning == g.config.conditioning and type(inferred) is type(g)


def tiny_random(g: ConditionedGenerator, seed: int = 0) -> ConditionedGenerator:
    """All weights random (not the near-identity init), so the prior and every layer matter."""
    torch.manual_seed(seed)
    return randomize_(g, 0.1)


@pytest.mark.parametrize(("backbone", "scale", "size"), [("rrdb", 2, (104, 97)), ("compact", 3, (37, 29))])
def test_tiles_equal_the_whole_image_on_the_trunks_grid(backbone, scale, size):
    g = tiny_random(BUILD[backbone](scale, blocks=1))
    h, w = size
    lr = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(3))
    pm = DenseProbs(probs(1, 3, scale * h, scale * w, 4)[0], scale)
    with torch.no_grad():
        reference = g(lr, pm.full())[0].permute(1, 2, 0).numpy()
    tiled = super_resolve(
        g, lr, pm, tile=31 if backbone == "rrdb" else 15, batch_size=2, as_float=True
    )  # odd: rounded to the grid
    strips = super_resolve(g, lr, pm, tile=None, hr_rows=5, as_float=True)
    assert tiled.shape == reference.shape == (scale * h, scale * w, 3)
    assert abs(tiled - reference).max() < 1e-4 and abs(strips - reference).max() < 1e-5


@pytest.mark.parametrize(("backbone", "scale"), [("rrdb", 1), ("compact", 4)])
def test_incremental_edits_equal_a_full_pass_within_the_reach(backbone, scale):
    g = tiny_random(BUILD[backbone](scale, blocks=1))
    h, w = 23, 21
    lr = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(5))
    inc = IncrementalSR(g, lr, probs(1, 3, scale * h, scale * w, 6))
    assert inc.reach <= receptive_field(g) + g.lr_multiple
    for cls, (y0, y1, x0, x1) in [(1, (4, 9, 6, 11)), (2, (scale * h - 3, scale * h, 0, 5))]:
        new = inc.prior[..., : scale * h, : scale * w].clone()
        new[:, :, y0:y1, x0:x1] = 0
        new[:, cls, y0:y1, x0:x1] = 1
        box = inc.update(new)
        with torch.no_grad():
            full = g(lr, new)
        assert (inc.sr[..., : scale * h, : scale * w] - full).abs().max() <= 1e-5
        edit = (y0 // scale, -(-y1 // scale), x0 // scale, -(-x1 // scale))
        outer = grow(edit, inc.reach + g.lr_multiple, (h, w))
        assert outer[0] <= box[0] and box[1] <= outer[1] and outer[2] <= box[2] and box[3] <= outer[3]


# --- a new backbone is one module plus one registry entry


@dataclasses.dataclass
class PlainConfig(ConditionedConfig):
    num_features: int = 8
    num_blocks: int = 2
    SIZES = ("num_features", "num_blocks")


class SFTPlainNet(ConditionedGenerator):
    """conv -> [sft -> conv -> ReLU] x n -> conv, + skip -> conv to 3 * s^2 -> pixel shuffle."""

    config_class = PlainConfig

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        c = self.config
        self.first = nn.Conv2d(c.in_channels, c.num_features, 3, 1, 1)
        self.convs = nn.ModuleList(nn.Conv2d(c.num_features, c.num_features, 3, 1, 1) for _ in range(c.num_blocks))
        self.sft = nn.ModuleList(self.make_cond(c.num_features) for _ in range(c.num_blocks))
        self.last = nn.Conv2d(c.num_features, c.out_channels * c.scale**2, 3, 1, 1)
        self.HR_branch = nn.PixelShuffle(c.scale)
        self.CondNet = self.condition_net(True)

    def head(self, lr):
        return self.first(lr)

    def stages(self):
        return [
            Stage(lambda x, cond, i=i: F.relu(self.convs[i](self.sft[i](x, cond))), 1) for i in range(len(self.convs))
        ]

    def tail(self, x, fea, lr):
        return self.last(fea + x)


def infer_plain(sd, source="checkpoint"):
    if "first.weight" not in sd:
        raise CheckpointError(f"{source}: no 'first.weight'")
    nf = sd["first.weight"].shape[0]
    return {
        "num_features": nf,
        "num_blocks": len([k for k in sd if k.startswith("convs.") and k.endswith(".weight")]),
        "num_classes": sd["CondNet.0.weight"].shape[1],
        "cond_channels": sd["CondNet.8.weight"].shape[0],
        "cond_hidden_channels": sd["CondNet.0.weight"].shape[0],
        "sft_hidden_channels": sd["sft.0.SFT_scale_conv0.weight"].shape[0],
        "scale": sd["CondNet.0.weight"].shape[-1],
    }


def test_a_new_backbone_is_one_module_and_one_registry_entry(tmp_path, monkeypatch):
    arch = registry.Architecture("SFT-Plain", SFTPlainNet, PlainConfig, infer_plain, tags=lambda c: ["plain"])
    monkeypatch.setitem(registry.ARCHITECTURES, arch.name, arch)
    monkeypatch.setitem(
        registry.GENERATOR_VARIANTS, "plain", registry.GeneratorVariant("plain", "a test backbone", {}, "SFT-Plain")
    )
    g = tiny_random(build_generator("plain", scale=2, **SMALL_COND))
    assert conv_radius(g.first) == 1 and g.uses_prior
    export_generator(g, tmp_path / "plain.safetensors", ["a", "b", "c"])
    back = load_generator(tmp_path / "plain.safetensors", channels_last=False)
    torch.save(g.state_dict(), tmp_path / "bare.pth")  # no record: recognised by the registry entry's infer
    bare = load_generator(tmp_path / "bare.pth", channels_last=False)
    lr = torch.rand(1, 3, 17, 15)
    pm = DenseProbs(probs(1, 3, 34, 30, 0)[0], 2)
    with torch.no_grad():
        expected = g(lr, pm.full())
        assert torch.equal(back(lr, pm.full()), expected) and torch.equal(bare(lr, pm.full()), expected)
    tiled = super_resolve(g, lr, pm, tile=6, as_float=True)
    assert abs(tiled - expected[0].permute(1, 2, 0).numpy()).max() < 1e-5
    inc = IncrementalSR(g, lr, pm.full())
    edited = pm.full().clone()
    edited[:, :, :6] = torch.tensor([0.0, 0.0, 1.0])[:, None, None]
    inc.update(edited)
    with torch.no_grad():
        assert (inc.sr - g(lr, edited)).abs().max() <= 1e-5


# --- downstream: predict, eval, the pipeline's one-input ONNX and spandrel take the scale from the model


@pytest.mark.parametrize(("backbone", "scale"), [("rrdb", 2), ("compact", 3)])
def test_predict_eval_onnx_and_spandrel_run_the_backbone_at_its_scale(tmp_path, backbone, scale):
    from sftgan_lit.categories import OUTDOOR_CLASSES, OUTDOOR_COLORS
    from sftgan_lit.data.io import read_image
    from sftgan_lit.imresize import imresize
    from sftgan_lit.inference import evaluate, predict
    from sftgan_lit.inference.export import check_image_to_image_onnx, check_pipeline_onnx, export_pipeline_onnx
    from sftgan_lit.pipeline import SFTGANPipeline, export_pipeline

    from helpers import TINY_DATA, compose_exact, predict_cfg

    g = tiny_random(BUILD[backbone](scale, blocks=1, num_classes=8))
    ckpt = tmp_path / "g.safetensors"
    export_generator(g, ckpt, OUTDOOR_CLASSES, OUTDOOR_COLORS)
    size = ["data.demo.size=48"]
    report, objs = predict(predict_cfg(tmp_path, ckpt, "images=demo", "input=hr", "tile=7", *size))
    assert report.ok and len(report.written) == 2
    src = objs["files"][0]
    hr = read_image(src)
    out = read_image(report.written[0])
    assert out.shape == (48 // scale * scale, 48 // scale * scale, 3)
    lr = (imresize(torch.from_numpy(hr.copy()).permute(2, 0, 1)[None].float() / 255, 1 / scale)).clamp(0, 1)
    lr = (lr * 255).round() / 255
    import numpy as np
    from PIL import Image

    labels = np.array(Image.open(src.parent.parent / "labels" / src.name))[: out.shape[0], : out.shape[1]]
    prior = torch.from_numpy(np.eye(8, dtype=np.float32)[labels]).permute(2, 0, 1)[None]
    with torch.no_grad():
        ref = (g(lr, prior)[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
    result, _ = evaluate(
        compose_exact(
            "eval",
            [f"checkpoints=[{ckpt}]", f"out={tmp_path / 'ev'}", "lpips_net=null", "num_crops=1", *TINY_DATA, *size],
        )
    )
    assert not result["failures"] and {"bicubic", "prior"} <= set(result["summary"])
    pipeline = SFTGANPipeline(g, None, OUTDOOR_CLASSES, OUTDOOR_COLORS).eval()
    onnx_path = export_pipeline_onnx(pipeline, tmp_path / "p.onnx")
    assert check_image_to_image_onnx(onnx_path)["scale"] == scale
    assert check_pipeline_onnx(pipeline, onnx_path, h=13, w=11) <= 1e-4
    spandrel = pytest.importorskip("spandrel")
    from sftgan_lit.inference.spandrel_support import install

    install()
    export_pipeline(pipeline, tmp_path / "p.safetensors")
    lr = torch.rand(1, 3, 9, 7)
    # a pipeline file, and a generator-only file (its keys are the released backbone's plus the conditioning
    # ones: spandrel's own ESRGAN / Compact detectors must not claim it), at the model's scale
    for path in (tmp_path / "p.safetensors", ckpt):
        model = spandrel.ModelLoader().load_from_file(path)
        assert model.architecture.id == "SFTGAN" and model.scale == scale
        assert registry.architecture_of(g).name in model.tags
        with torch.no_grad():
            torch.testing.assert_close(model(lr), pipeline(lr).clamp(0, 1), atol=1e-6, rtol=0)
    from sftgan_lit.inference.model_card import model_card, readme

    card = model_card(pipeline, [tmp_path / "p.safetensors", onnx_path], "demo")
    arch = registry.architecture_of(g)
    assert (card["architecture"], card["scale"], card["size"]) == (arch.name.lower(), scale, arch.tags(g.config))
    assert f"x{scale}" in card["description"] and arch.name.lower() in readme(card)
    from sftgan_lit.inference.spandrel_support import detect

    assert not detect(source(backbone, scale).state_dict())  # a released backbone stays spandrel's own


def test_the_app_paints_on_an_rrdb_at_x2_and_equals_a_full_recompute(tmp_path):
    import numpy as np

    from sftgan_lit.app.session import PaintSession, Scene
    from sftgan_lit.app.ui import load_models
    from sftgan_lit.categories import OUTDOOR_CLASSES, OUTDOOR_COLORS

    g = tiny_random(sft_rrdb(2, blocks=1, num_classes=8))
    with torch.no_grad():  # outputs around mid-grey, so that the uint8 images show the edit
        g.conv_last.weight.mul_(0.1)
        g.conv_last.bias.fill_(0.5)
    export_generator(g, tmp_path / "generator.pth", OUTDOOR_CLASSES, OUTDOOR_COLORS)
    models = load_models(str(tmp_path / "generator.pth"))
    assert models.scale == 2
    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 8, (5, 4), generator=gen).repeat_interleave(10, 0).repeat_interleave(10, 1)
    scene = Scene("s", torch.rand(1, 3, 25, 20, generator=gen), labels.numpy().astype(np.uint8))
    session = PaintSession(models, scene)
    before = session.run()
    layer = np.zeros((50, 40, 4), np.uint8)
    layer[30:40, 4:16, :3], layer[30:40, 4:16, 3] = OUTDOOR_COLORS[5], 255
    session.set_paint_layer(layer)
    after = session.run()
    assert not session.last["full"] and (after[30:40, 4:16] != before[30:40, 4:16]).any()
    with torch.no_grad():
        full = models.generator(scene.lr, session.prior())
    assert np.abs(after.astype(int) - (full[0].clamp(0, 1) * 255).round().permute(1, 2, 0).numpy()).max() <= 1
