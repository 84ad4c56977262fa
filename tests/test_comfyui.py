"""The ComfyUI node pack (``comfyui_sftgan/``), loaded the way ComfyUI loads a custom node: the folder's
``__init__.py`` imported by file location under the folder's name, its mappings read, each node called with
ComfyUI-shaped tensors. ComfyUI's own modules (``folder_paths``, ``comfy.model_management``, ``comfy.utils``)
are stand-ins with ComfyUI's function names; the upscale is checked against ``predict.py`` on the same image."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from sftgan_lit.categories import OUTDOOR_CLASSES, OUTDOOR_COLORS
from sftgan_lit.inference.predict import predict
from sftgan_lit.models import OutdoorSceneSeg, export_generator, export_segmenter

from helpers import ROOT, predict_cfg, tiny_generator

PACK = ROOT / "comfyui_sftgan"
NAMES, COLORS = list(OUTDOOR_CLASSES), [list(c) for c in OUTDOOR_COLORS]
SKY = NAMES.index("sky")


class Interrupted(Exception):
    """Stands for comfy.model_management.InterruptProcessingException."""


def fake_comfy(models_dir):
    """``folder_paths``, ``comfy.model_management`` and ``comfy.utils`` with ComfyUI's names and behaviour."""
    folder_paths = types.ModuleType("folder_paths")
    folder_paths.models_dir = str(models_dir)
    folder_paths.folder_names_and_paths = {
        "upscale_models": ([str(models_dir / "upscale_models")], {".pth", ".safetensors"})
    }

    def add_model_folder_path(name, path, is_default=False):
        folder_paths.folder_names_and_paths.setdefault(name, ([], set()))[0].append(path)

    def get_filename_list(name):
        paths, exts = folder_paths.folder_names_and_paths[name]
        found = [f for p in paths if os.path.isdir(p) for f in os.listdir(p)]
        return sorted(f for f in found if not exts or os.path.splitext(f)[1] in exts)

    def get_full_path(name, filename):
        for p in folder_paths.folder_names_and_paths[name][0]:
            if os.path.isfile(os.path.join(p, filename)):
                return os.path.join(p, filename)
        return None

    folder_paths.add_model_folder_path = add_model_folder_path
    folder_paths.get_filename_list = get_filename_list
    folder_paths.get_full_path = get_full_path

    management = types.ModuleType("comfy.model_management")
    management.state = {"interrupt_after": None, "checks": 0}
    management.get_torch_device = lambda: torch.device("cpu")
    management.should_use_bf16 = lambda device=None, **_: False
    management.should_use_fp16 = lambda device=None, **_: False

    def throw_exception_if_processing_interrupted():
        management.state["checks"] += 1
        after = management.state["interrupt_after"]
        if after is not None and management.state["checks"] > after:
            raise Interrupted()

    management.throw_exception_if_processing_interrupted = throw_exception_if_processing_interrupted

    utils = types.ModuleType("comfy.utils")
    utils.updates = []

    class ProgressBar:
        def __init__(self, total):
            self.total = total

        def update_absolute(self, value, total=None, preview=None):
            utils.updates.append((value, total or self.total))

    utils.ProgressBar = ProgressBar
    comfy = types.ModuleType("comfy")
    comfy.model_management, comfy.utils = management, utils
    return {"folder_paths": folder_paths, "comfy": comfy, "comfy.model_management": management, "comfy.utils": utils}


@pytest.fixture
def pack(tmp_path, monkeypatch):
    """The node pack imported as ComfyUI's ``load_custom_node`` does, with a models folder holding a tiny
    generator (``upscale_models/``) and segmenter (``sftgan/``)."""
    models = tmp_path / "models"
    (models / "upscale_models").mkdir(parents=True)
    (models / "sftgan").mkdir()
    export_generator(tiny_generator(), models / "upscale_models" / "gen.pth")
    torch.manual_seed(1)
    export_segmenter(
        OutdoorSceneSeg(layers=(1, 1, 1, 1), base_width=8).eval(), models / "sftgan" / "seg.pth", NAMES, COLORS
    )
    fakes = fake_comfy(models)
    for name, module in fakes.items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location(PACK.name, PACK / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, PACK.name, module)
    spec.loader.exec_module(module)
    yield module, fakes, models
    sys.modules.pop(f"{PACK.name}.nodes", None)


def node(module, name):
    cls = module.NODE_CLASS_MAPPINGS[name]
    return getattr(cls(), cls.FUNCTION)


def photo_lr(h=36, w=44) -> np.ndarray:
    """A real photograph's corner, shrunk: uint8 (h, w, 3)."""
    return np.asarray(Image.fromarray(skdata.astronaut()[:288, :352]).resize((w, h), Image.BICUBIC))


def as_image(rgb: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> ComfyUI IMAGE (1, H, W, 3) float in [0, 1]."""
    return torch.tensor(rgb).float()[None] / 255


def test_the_pack_follows_comfyuis_node_protocol_and_registers_with_spandrel(pack):
    module, _, _ = pack
    assert (
        set(module.NODE_CLASS_MAPPINGS)
        == set(module.NODE_DISPLAY_NAME_MAPPINGS)
        == {
            "LoadSFTGAN",
            "SFTGANPrior",
            "SFTGANUpscale",
        }
    )
    for cls in module.NODE_CLASS_MAPPINGS.values():
        spec = cls.INPUT_TYPES()
        assert set(spec) <= {"required", "optional"} and spec["required"]
        for entry in [*spec["required"].values(), *spec.get("optional", {}).values()]:
            assert isinstance(entry, tuple) and isinstance(entry[0], str | list)
        assert isinstance(cls.RETURN_TYPES, tuple) and callable(getattr(cls, cls.FUNCTION)) and cls.CATEGORY
    # the model lists are ComfyUI's folders: the generator from upscale_models, the segmenter from models/sftgan
    loader = module.NODE_CLASS_MAPPINGS["LoadSFTGAN"].INPUT_TYPES()["required"]
    assert loader["model_name"][0] == ["gen.pth", "seg.pth"] and loader["segmenter_name"][0] == ["none", "seg.pth"]
    spandrel = pytest.importorskip("spandrel")
    assert spandrel.MAIN_REGISTRY.get("SFTGAN") is not None


def test_upscale_equals_predict_with_the_prior_from_the_whole_image_and_a_painted_region(pack, tmp_path):
    module, fakes, models = pack
    lr = photo_lr()
    (tmp_path / "in").mkdir()
    Image.fromarray(lr).save(tmp_path / "in" / "photo.png")
    painted = np.full_like(lr, 255)
    painted[4:20, 6:30] = COLORS[SKY]
    Image.fromarray(painted).save(tmp_path / "painted.png")
    cfg = predict_cfg(
        tmp_path,
        models / "upscale_models" / "gen.pth",
        f"images={tmp_path / 'in'}",
        "prior=ade_outdoor",
        f"prior.weights={models / 'sftgan' / 'seg.pth'}",
        f"prior_mask={tmp_path / 'painted.png'}",
        "tile=16",
    )
    report, _ = predict(cfg)
    assert report.ok
    expected = np.asarray(Image.open(tmp_path / "out" / "photo.png"))

    (model,) = node(module, "LoadSFTGAN")("gen.pth", "seg.pth")
    (by_colour,) = node(module, "SFTGANPrior")(model, "model", painted=as_image(painted))
    mask = torch.zeros(1, *lr.shape[:2])
    mask[0, 4:20, 6:30] = 1
    (by_mask,) = node(module, "SFTGANPrior")(model, "model", mask=mask, mask_class="sky")
    upscale = node(module, "SFTGANUpscale")
    (out,) = upscale(model, as_image(lr), by_colour, tile=16, precision="fp32")
    assert out.shape == (1, 4 * lr.shape[0], 4 * lr.shape[1], 3) and out.dtype == torch.float32
    assert fakes["comfy.utils"].updates[-1] == (9, 9)  # ComfyUI's progress bar saw every tile: 3 x 3 of 16 LR px
    got = (out[0].numpy() * 255).round().astype(np.int16)
    assert np.abs(got - expected).max() <= 1  # predict.py's PNG, within one 8-bit level
    assert torch.equal(upscale(model, as_image(lr), by_mask, tile=16, precision="fp32")[0], out)
    # the prior matters: without the edit, with the uniform prior and with an override, the output differs
    (plain,) = upscale(model, as_image(lr), tile=16, precision="fp32")
    (uniform,) = upscale(model, as_image(lr), node(module, "SFTGANPrior")(model, "uniform")[0], tile=0)
    (water,) = upscale(model, as_image(lr), node(module, "SFTGANPrior")(model, "model", override="water")[0])
    assert min((plain - out).abs().max(), (uniform - out).abs().max(), (water - plain).abs().max()) > 0.01


def test_a_batch_is_each_image_alone_and_an_interrupt_stops_between_tiles(pack):
    module, fakes, _ = pack
    (model,) = node(module, "LoadSFTGAN")("gen.pth", "seg.pth")
    images = torch.cat([as_image(photo_lr(24, 20)), as_image(photo_lr(24, 20)[::-1].copy())])
    upscale = node(module, "SFTGANUpscale")
    (both,) = upscale(model, images, tile=8, precision="fp32")
    for i in range(2):
        assert torch.allclose(both[i], upscale(model, images[i : i + 1], tile=0, precision="fp32")[0][0], atol=1e-5)
    fakes["comfy.model_management"].state.update(interrupt_after=1, checks=0)
    with pytest.raises(Interrupted):
        upscale(model, images, tile=8, precision="fp32")
    assert fakes["comfy.model_management"].state["checks"] == 2
    assert next(model.parameters()).device.type == "cpu"  # offloaded after the run, interrupted or not


BAD = {
    "an IMAGE of 4 channels": (lambda m, s: s(m, torch.rand(1, 8, 8, 4)), r"image: expected an IMAGE \(B, H, W, 3\)"),
    "an IMAGE in 0-255": (lambda m, s: s(m, torch.rand(1, 8, 8, 3) * 255), r"divide by 255"),
    "a NaN pixel": (lambda m, s: s(m, torch.full((1, 8, 8, 3), float("nan"))), r"non-finite"),
    "noise on a model without a noise channel": (
        lambda m, s: s(m, torch.rand(1, 8, 8, 3), noise_level=10.0),
        r"noise_level: this model reads no noise_sigma channel",
    ),
    "strength without a fidelity model": (
        lambda m, s: s(m, torch.rand(1, 8, 8, 3), strength=0.5),
        r"strength=0.5 needs a fidelity_model",
    ),
    "a mask of another size": (
        lambda m, s: s(m, torch.rand(1, 8, 8, 3), prior_of(m, mask=torch.ones(1, 5, 5), mask_class="sky")),
        r"mask \(sky\): mask is 5x5; it must be the LR or the output size \(32x32\)",
    ),
}


def prior_of(model, **kw):
    from sftgan_lit.inference.comfyui import make_prior

    return make_prior(model, "model", **kw)


@pytest.mark.parametrize("case", list(BAD))
def test_bad_inputs_are_refused_naming_the_input(pack, case):
    from sftgan_lit.inference.comfyui import NodeInputError

    module, _, _ = pack
    (model,) = node(module, "LoadSFTGAN")("gen.pth", "none")
    call, message = BAD[case]
    with pytest.raises(NodeInputError, match=message):
        call(model, node(module, "SFTGANUpscale"))


def test_the_prior_node_refuses_classes_colours_and_batches_that_do_not_fit(pack):
    from sftgan_lit.inference.comfyui import NodeInputError

    module, _, _ = pack
    (model,) = node(module, "LoadSFTGAN")("gen.pth", "seg.pth")
    make = node(module, "SFTGANPrior")
    with pytest.raises(NodeInputError, match=r"mask_class='castle': not a class of this model \(background, sky, "):
        make(model, "model", mask=torch.ones(1, 8, 8), mask_class="castle")
    with pytest.raises(NodeInputError, match=r"mask given without mask_class"):
        make(model, "model", mask=torch.ones(1, 8, 8))
    with pytest.raises(NodeInputError, match=r"override='castle'"):
        make(model, "model", override="castle")
    with pytest.raises(NodeInputError, match=r"painted\[0\]: .* painted pixels are no class colour"):
        make(model, "model", painted=torch.tensor([1.0, 1.0, 0.0]).expand(1, 8, 8, 3))
    (prior,) = make(model, "model", mask=torch.ones(2, 8, 8), mask_class="sky")
    with pytest.raises(NodeInputError, match=r"noise_map: 2 masks for 3 images"):
        node(module, "SFTGANUpscale")(model, torch.rand(3, 8, 8, 3), prior, noise_map=torch.ones(2, 8, 8))
    with pytest.raises(
        NodeInputError, match=r"model_name=missing.pth: not in ComfyUI's models/sftgan or models/upscale_models"
    ):
        node(module, "LoadSFTGAN")("missing.pth", "none")


def test_the_example_workflow_wires_existing_inputs_to_outputs_of_their_type(pack):
    module, _, _ = pack
    workflow = json.loads((PACK / "example_workflows" / "sftgan_upscale.json").read_text())
    # ComfyUI's own nodes used by the example, with their outputs (nodes.py)
    stock = {"LoadImage": ("IMAGE", "MASK"), "LoadImageMask": ("MASK",), "SaveImage": ()}
    outputs = {
        key: stock[n["class_type"]]
        if n["class_type"] in stock
        else module.NODE_CLASS_MAPPINGS[n["class_type"]].RETURN_TYPES
        for key, n in workflow.items()
    }
    for key, n in workflow.items():
        if n["class_type"] in stock:
            continue
        spec = module.NODE_CLASS_MAPPINGS[n["class_type"]].INPUT_TYPES()
        declared = {**spec["required"], **spec.get("optional", {})}
        assert set(spec["required"]) <= set(n["inputs"]) <= set(declared), key
        for name, value in n["inputs"].items():
            kind = declared[name][0]
            if isinstance(value, list):  # a link: [node id, output index]
                assert outputs[value[0]][value[1]] == kind, (key, name)
            elif isinstance(kind, list):
                assert value in kind or name.endswith("_name"), (key, name)


def test_a_pipeline_file_and_a_noise_channel_model_run_as_predict_does(pack, tmp_path):
    from sftgan_lit.pipeline import export_pipeline, load_pipeline
    from sftgan_lit.priors import LabelPrior
    from sftgan_lit.priors.channels import CHANNELS

    module, _, models = pack
    ups = models / "upscale_models"
    export_pipeline(load_pipeline(ups / "gen.pth", segmenter=models / "sftgan" / "seg.pth"), ups / "pipe.safetensors")
    lr = as_image(photo_lr(20, 24))
    upscale, load = node(module, "SFTGANUpscale"), node(module, "LoadSFTGAN")
    by_parts = upscale(load("gen.pth", "seg.pth")[0], lr, tile=0, precision="fp32")[0]
    assert torch.allclose(
        upscale(load("pipe.safetensors", "none")[0], lr, tile=0, precision="fp32")[0], by_parts, atol=1e-5
    )

    torch.manual_seed(0)
    stack = tiny_generator(num_continuous=3)
    channels = ["noise_sigma", "blur_sigma", "jpeg_quality"]
    prior = LabelPrior(continuous=channels)
    export_generator(
        stack, ups / "stack.pth", prior.class_names, prior.colors, continuous=[CHANNELS[c].record() for c in channels]
    )
    (model,) = load("stack.pth", "none")
    (tmp_path / "in").mkdir()
    Image.fromarray((lr[0].numpy() * 255).round().astype(np.uint8)).save(tmp_path / "in" / "x.png")
    report, _ = predict(
        predict_cfg(
            tmp_path, ups / "stack.pth", f"images={tmp_path / 'in'}", "prior=[uniform,degradation]", "noise_level=20"
        )
    )
    expected = np.asarray(Image.open(report.written[0]), np.int32)
    (level,) = upscale(model, lr, noise_level=20.0, precision="fp32")
    (mapped,) = upscale(model, lr, noise_map=torch.full((1, 20, 24), 0.4), precision="fp32")
    (default,) = upscale(model, lr, precision="fp32")
    as8 = lambda x: (x[0].numpy() * 255).round().astype(np.int32)  # noqa: E731
    assert np.abs(as8(level) - expected).max() <= 1 and np.abs(as8(mapped) - expected).max() <= 1
    assert np.abs(as8(default) - expected).max() > 2  # the noise input reaches the generator
    with pytest.raises(Exception, match=r"noise_level=60: .*\[0, 50\]"):
        upscale(model, lr, noise_level=60.0)
