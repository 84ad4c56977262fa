"""One-file models for other tools: the fused pipeline, safetensors with a checked header, single-input ONNX
under chaiNNer's rules, spandrel's loader, the model card, and ``sftgan-export`` end to end."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import pytest
import torch

from sftgan_lit.categories import OUTDOOR_CLASSES, OUTDOOR_COLORS
from sftgan_lit.inference.export import (
    check_image_to_image_onnx,
    check_pipeline_onnx,
    export_onnx,
    export_pipeline_onnx,
)
from sftgan_lit.inference.model_card import sha256
from sftgan_lit.models import (
    LRASPPSegmenter,
    OutdoorSceneSeg,
    SFTGenerator,
    export_generator,
    export_segmenter,
    load_generator,
    load_segmenter,
)
from sftgan_lit.models.registry import infer_segmenter
from sftgan_lit.pipeline import SFTGANPipeline, export_pipeline, load_pipeline
from sftgan_lit.priors import DenseProbs
from sftgan_lit.state_dict import CheckpointError

from helpers import layout, random_state_dict

NAMES, COLORS = list(OUTDOOR_CLASSES), [list(c) for c in OUTDOOR_COLORS]


def tiny_generator(seed: int = 0) -> SFTGenerator:
    torch.manual_seed(seed)
    g = SFTGenerator(num_features=8, num_blocks=2, cond_channels=4, cond_hidden_channels=8, sft_hidden_channels=4)
    for p in g.CondNet.parameters():  # a prior that matters: larger conditioning weights than the small init
        p.data.normal_(0, 0.3)
    return g.eval()


def tiny_ost(seed: int = 1) -> OutdoorSceneSeg:
    torch.manual_seed(seed)
    return OutdoorSceneSeg(layers=(1, 2, 1, 1), base_width=8).eval()


def lr_batch(n: int = 2, h: int = 13, w: int = 9) -> torch.Tensor:
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(3))


# --------------------------------------------------------------------------- the pipeline


@pytest.mark.parametrize("prior", ["uniform", "ost", "lraspp"])
@pytest.mark.parametrize("edit", [{}, {"remap": "sky:water,grass:plant"}, {"override": "building"}])
def test_pipeline_equals_its_parts_run_by_hand_at_odd_sizes(prior, edit):
    g = tiny_generator()
    seg = {"uniform": None, "ost": tiny_ost(), "lraspp": LRASPPSegmenter().eval()}[prior]
    pipeline = SFTGANPipeline(g, seg, NAMES, COLORS, **edit).eval()
    lr = lr_batch()
    with torch.no_grad():
        probs = seg(lr) if seg is not None else torch.full((2, 8, 52, 36), 1 / 8)
        if "remap" in edit:  # moved by hand: sky (1) -> water (2), grass (3) -> plant (6)
            moved = probs.clone()
            moved[:, [1, 3]] = 0
            moved[:, 2] += probs[:, 1]
            moved[:, 6] += probs[:, 3]
            probs = moved
        if "override" in edit:
            probs = torch.zeros_like(probs)
            probs[:, NAMES.index("building")] = 1
        torch.testing.assert_close(pipeline(lr), g(lr, probs), atol=1e-6, rtol=0)
    assert pipeline.metadata()["override"] == edit.get("override")


def test_pipeline_refuses_what_does_not_fit():
    g = tiny_generator()
    with pytest.raises(ValueError, match="give class_names"):
        SFTGANPipeline(g, None, NAMES[:5])
    with pytest.raises(ValueError, match=r"segmenter \(5 classes, x4\) does not fit the generator \(8 classes"):
        SFTGANPipeline(g, OutdoorSceneSeg(num_classes=5, layers=(1, 1, 1, 1), base_width=4), NAMES)
    with pytest.raises(ValueError, match="banana"):
        SFTGANPipeline(g, None, NAMES, COLORS, override="banana")
    with pytest.raises(ValueError, match="unknown class 'cloud'"):
        SFTGANPipeline(g, None, NAMES, COLORS, remap="cloud:sky")


def test_tiled_super_resolution_of_the_pipeline_equals_its_forward():
    from sftgan_lit.inference import super_resolve

    pipeline = SFTGANPipeline(tiny_generator(), tiny_ost(), NAMES, COLORS).eval()
    lr = lr_batch(1, 21, 17)
    with torch.no_grad():
        whole = pipeline(lr)[0].clamp(0, 1)
        tiled = super_resolve(pipeline.generator, lr, DenseProbs(pipeline.prior_probs(lr)[0], 4), tile=8)
    assert tiled.shape == (84, 68, 3)
    expected = (whole.permute(1, 2, 0) * 255).round().byte().numpy()
    assert abs(tiled.astype(int) - expected.astype(int)).max() <= 1  # uint8 rounding of float sums


# --------------------------------------------------------------------------- safetensors


@pytest.mark.parametrize("name", ["SFTGAN_noBN_OST_bg", "SFTGAN_torch"])
def test_released_generator_layouts_round_trip_through_safetensors(tmp_path, name):
    torch.save(random_state_dict(name), tmp_path / f"{name}.pth")
    g = load_generator(tmp_path / f"{name}.pth", channels_last=False)
    export_generator(g, tmp_path / "g.safetensors", NAMES, COLORS)
    assert not (tmp_path / "g.safetensors").read_bytes()[:2] == b"PK"  # not a zip/pickle
    back = load_generator(tmp_path / "g.safetensors", channels_last=False)
    lr, prior = lr_batch(1, 6, 5), torch.softmax(torch.randn(1, 8, 24, 20), 1)
    with torch.no_grad():
        assert torch.equal(back(lr, prior), g(lr, prior))
    assert back.config == g.config
    assert back.record["variant"] == ("sftgan_torch7" if name == "SFTGAN_torch" else "sftgan_pytorch")
    assert back.record["class_names"] == NAMES and back.record["architecture"] == "SFTGAN"


def test_header_records_what_rebuilds_the_model(tmp_path):
    pipeline = SFTGANPipeline(tiny_generator(), tiny_ost(), NAMES, COLORS, remap="sky:water")
    export_pipeline(pipeline, tmp_path / "p.safetensors", training={"optimizer_steps": 12})
    from safetensors import safe_open

    with safe_open(str(tmp_path / "p.safetensors"), "pt") as f:
        meta = f.metadata()
    record = json.loads(meta["sftgan_lit"])
    facts = record["sftgan_lit_record"]
    assert meta["sftgan_lit"] and facts["kind"] == "pipeline" and facts["architecture"] == "SFTGAN"
    assert facts["scale"] == 4 and facts["class_names"] == NAMES and facts["colors"] == COLORS
    assert facts["conditioning"] == "sft" and facts["prior"] == "segmenter" and facts["remap"] == {"sky": "water"}
    assert facts["training"] == {"optimizer_steps": 12} and facts["package_version"]
    assert record["sftgan_lit_segmenter"]["target"] == "sftgan_lit.models.OutdoorSceneSeg"
    back = load_pipeline(tmp_path / "p.safetensors")
    lr = lr_batch()
    with torch.no_grad():
        assert torch.equal(back(lr), pipeline(lr))
    assert back.remap == {"sky": "water"} and back.prior_type == "segmenter (OutdoorSceneSeg)"


def test_a_demo_trained_model_exports_safetensors_with_its_training_facts(tmp_path):
    from sftgan_lit.train import train

    from helpers import TINY, TINY_TRAIN, compose

    cfg = compose([*TINY, *TINY_TRAIN, f"paths.output_dir={tmp_path}", "export_name=generator.safetensors"])
    _, objects = train(cfg)
    g = load_generator(objects["export"])
    assert g.record["training"]["optimizer_steps"] == 2 and g.record["training"]["prior"] == "labels"
    assert g.record["class_names"] == NAMES
    pipeline = load_pipeline(objects["export"])  # a generator-only file: the uniform prior
    assert pipeline.prior_type == "uniform" and pipeline.class_names == NAMES


def _rewrite_header(src, dst, change) -> None:
    """A copy of safetensors file ``src`` with its header JSON passed through ``change``."""
    data = src.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header = change(header)
    raw = json.dumps(header).encode() if isinstance(header, dict) else header
    dst.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n :])


def _record(edit):
    def change(header):
        record = json.loads(header["__metadata__"]["sftgan_lit"])
        edit(record)
        header["__metadata__"]["sftgan_lit"] = json.dumps(record)
        return header

    return change


LIES = {
    # header fields that change the computation and still fit the tensors (they once loaded another network)
    "a formula the record's variant does not have": (
        _record(lambda r: r["sftgan_lit_config"].update(sft_formula="plain")),
        r"record and the network .* disagree \(variant: record 'sftgan_pytorch', network 'custom'\)",
    ),
    "another slope": (
        _record(lambda r: r["sftgan_lit_config"].update(sft_negative_slope=0.2)),
        r"variant: record 'sftgan_pytorch', network 'custom'",
    ),
    "another conditioning": (
        _record(lambda r: r["sftgan_lit_config"].update(conditioning="film")),
        r"conditioning: record 'sft', network 'film'",
    ),
    "architecture that does not fit": (
        _record(lambda r: r["sftgan_lit_config"].update(num_blocks=5)),
        r"the recorded architecture \(SFTGAN: num_features=8, num_blocks=5.*does not fit its tensors",
    ),
    "class names that do not fit": (
        _record(lambda r: r["sftgan_lit_record"].update(class_names=["sky", "water"])),
        r"recorded class names \['sky', 'water'\] do not fit the network, which has 8 classes",
    ),
    "another architecture": (
        _record(lambda r: r["sftgan_lit_record"].update(architecture="ESRGAN")),
        "records architecture 'ESRGAN', not one of SFTGAN",
    ),
    "segmenter classes that do not fit": (
        _record(lambda r: r["sftgan_lit_segmenter"].update(class_names=["a"])),
        r"recorded class names \['a'\] do not fit the network",
    ),
    "segmenter arguments that do not fit": (
        _record(lambda r: r["sftgan_lit_segmenter"]["kwargs"].update(base_width=16)),
        "the recorded architecture .*OutdoorSceneSeg.* does not fit its tensors",
    ),
    "a uniform prior beside segmenter tensors": (
        _record(lambda r: r["sftgan_lit_pipeline"].update(prior="uniform")),
        "records a uniform prior but holds segmenter tensors",
    ),
    "malformed record JSON": (
        lambda h: {**h, "__metadata__": {**h["__metadata__"], "sftgan_lit": "{not json"}},
        "malformed 'sftgan_lit' record",
    ),
    "malformed header": (lambda h: b'{"a": [1, 2', "malformed safetensors header"),
    "metadata that is not strings": (
        lambda h: {**h, "__metadata__": {"sftgan_lit": {"a": 1}}},
        "malformed safetensors metadata",
    ),
}


@pytest.mark.parametrize("lie", list(LIES))
def test_a_header_that_lies_is_refused_naming_the_mismatch(tmp_path, lie):
    export_pipeline(SFTGANPipeline(tiny_generator(), tiny_ost(), NAMES, COLORS), tmp_path / "p.safetensors")
    change, message = LIES[lie]
    _rewrite_header(tmp_path / "p.safetensors", tmp_path / "bad.safetensors", change)
    with pytest.raises(CheckpointError, match=message):
        load_pipeline(tmp_path / "bad.safetensors")


def test_an_oversized_or_truncated_header_is_refused_before_reading(tmp_path):
    export_generator(tiny_generator(), tmp_path / "g.safetensors", NAMES, COLORS)
    data = (tmp_path / "g.safetensors").read_bytes()
    (tmp_path / "huge.safetensors").write_bytes(struct.pack("<Q", 2**40) + data[8:])
    with pytest.raises(
        CheckpointError, match="huge.safetensors: safetensors header of 1099511627776 bytes is oversized"
    ):
        load_generator(tmp_path / "huge.safetensors")
    (tmp_path / "short.safetensors").write_bytes(data[:5])
    with pytest.raises(CheckpointError, match="short.safetensors: not a safetensors file"):
        load_generator(tmp_path / "short.safetensors")
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.safetensors: unreadable safetensors file"):
        load_generator(tmp_path / "cut.safetensors")


def test_segmenters_round_trip_and_are_recognised_from_tensors_alone(tmp_path):
    seg = tiny_ost()
    export_segmenter(seg, tmp_path / "s.safetensors", NAMES, COLORS)
    back = load_segmenter(tmp_path / "s.safetensors")
    lr = lr_batch()
    with torch.no_grad():
        assert torch.equal(back(lr), seg(lr))
    # the released OutdoorSceneSeg layout: its depth (3, 4, 23, 3) and width 64 read from the shapes
    released = infer_segmenter(random_state_dict("segmentation_OST_bic"))
    assert released.config_dict()["layers"] == [3, 4, 23, 3] and released.config_dict()["base_width"] == 64
    assert sum(p.numel() for p in released.parameters()) > 40_000_000
    lraspp = infer_segmenter(LRASPPSegmenter(num_classes=5).state_dict())
    assert isinstance(lraspp, LRASPPSegmenter) and lraspp.num_classes == 5
    assert len(layout("segmentation_OST_bic")) == len(released.state_dict())


# --------------------------------------------------------------------------- ONNX under chaiNNer's rules


@pytest.mark.parametrize("prior", ["uniform", "ost"])
@pytest.mark.parametrize("fp16", [False, True])
def test_single_input_onnx_passes_chainner_rules_and_matches_eager_at_new_sizes(tmp_path, prior, fp16):
    pipeline = SFTGANPipeline(tiny_generator(), tiny_ost() if prior == "ost" else None, NAMES, COLORS).eval()
    path = export_pipeline_onnx(pipeline, tmp_path / "p.onnx", fp16=fp16)
    rules = check_image_to_image_onnx(path)
    assert rules == {
        "input_channels": 3,
        "output_channels": 3,
        "input_dtype": "fp16" if fp16 else "fp32",
        "output_dtype": "fp16" if fp16 else "fp32",
        "opset": 18,
        "scale": 4,
    }
    import onnx

    model = onnx.load(str(path))
    assert [i.name for i in model.graph.input] == ["input"] and [o.name for o in model.graph.output] == ["output"]
    diff = check_pipeline_onnx(pipeline, path, h=19, w=33, batch=2)  # traced at 16x12, batch 1
    assert diff <= (5e-3 if fp16 else 1e-4), diff


def test_lraspp_pipeline_onnx_follows_sizes_it_was_not_traced_at(tmp_path):
    """LR-ASPP pads to a multiple of 16 and joins two strides: its ONNX graph must not freeze either size
    (it failed at run time, or gave a wrong prior, before the head used its exact factor 2)."""
    torch.manual_seed(2)
    seg = LRASPPSegmenter().eval()
    for m in seg.modules():  # trained-like BN statistics: an untrained head gives nearly flat priors
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 1.5)
    pipeline = SFTGANPipeline(tiny_generator(), seg, NAMES, COLORS).eval()
    path = export_pipeline_onnx(pipeline, tmp_path / "p.onnx")
    assert check_image_to_image_onnx(path, sizes=((16, 16), (18, 22), (9, 31)))["scale"] == 4
    for h, w in ((19, 33), (16, 16), (7, 10)):
        assert check_pipeline_onnx(pipeline, path, h=h, w=w, batch=2) <= 1e-4


def test_the_chainner_checker_refuses_a_two_input_model(tmp_path):
    path = export_onnx(tiny_generator(), tmp_path / "g.onnx")
    with pytest.raises(ValueError, match="chaiNNer needs one input and one output, got 2 and 1"):
        check_image_to_image_onnx(path)


# --------------------------------------------------------------------------- spandrel


@pytest.fixture
def spandrel_installed():
    spandrel = pytest.importorskip("spandrel")
    from sftgan_lit.inference.spandrel_support import install

    install()
    yield spandrel
    install(None)


@pytest.mark.parametrize("name", ["SFTGAN_noBN_OST_bg", "SFTGAN_torch"])
def test_spandrel_loads_the_released_layouts_with_the_uniform_prior(tmp_path, spandrel_installed, name):
    torch.save(random_state_dict(name), tmp_path / f"{name}.pth")
    model = spandrel_installed.ModelLoader().load_from_file(tmp_path / f"{name}.pth")
    assert isinstance(model, spandrel_installed.ImageModelDescriptor)
    assert (model.architecture.id, model.purpose, model.scale, model.input_channels, model.output_channels) == (
        "SFTGAN",
        "SR",
        4,
        3,
        3,
    )
    assert model.supports_half and model.supports_bfloat16 and "uniform prior" in model.tags
    assert model.size_requirements.minimum == 2 and model.tiling == spandrel_installed.ModelTiling.SUPPORTED
    reference = load_pipeline(tmp_path / f"{name}.pth")
    lr = lr_batch(1, 7, 6)
    with torch.no_grad():
        torch.testing.assert_close(model(lr), reference(lr).clamp(0, 1), atol=1e-6, rtol=0)


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_spandrel_loads_pipeline_exports_with_their_segmenter(tmp_path, spandrel_installed, suffix):
    pipeline = SFTGANPipeline(tiny_generator(), tiny_ost(), NAMES, COLORS).eval()
    export_pipeline(pipeline, tmp_path / f"p{suffix}")
    model = spandrel_installed.ModelLoader().load_from_file(tmp_path / f"p{suffix}")
    assert "pipeline segmenter" in model.tags and model.tiling == spandrel_installed.ModelTiling.DISCOURAGED
    lr = lr_batch(1, 11, 10)
    with torch.no_grad():
        torch.testing.assert_close(model(lr), pipeline(lr).clamp(0, 1), atol=1e-6, rtol=0)
        assert model.half()(lr.half()).dtype == torch.float16  # fp16 as the descriptor says


def test_spandrel_uses_the_segmenter_given_at_install_for_generator_only_files(tmp_path, spandrel_installed):
    from sftgan_lit.inference.spandrel_support import install

    g, seg = tiny_generator(), tiny_ost()
    export_generator(g, tmp_path / "g.safetensors", NAMES, COLORS)
    export_segmenter(seg, tmp_path / "seg.pth", NAMES, COLORS)
    install(segmenter=tmp_path / "seg.pth")
    model = spandrel_installed.ModelLoader().load_from_file(tmp_path / "g.safetensors")
    assert "segmenter given to install()" in model.tags
    lr = lr_batch(1, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(model(lr), g(lr, seg(lr)).clamp(0, 1), atol=1e-6, rtol=0)
    with pytest.raises(FileNotFoundError, match="install"):
        install(segmenter=tmp_path / "missing.pth")


# --------------------------------------------------------------------------- sftgan-export


def test_sftgan_export_writes_checked_files_and_a_model_card(tmp_path):
    export_generator(tiny_generator(), tmp_path / "demo.pth", NAMES, COLORS, {"optimizer_steps": 400})
    export_segmenter(tiny_ost(), tmp_path / "seg.pth", NAMES, COLORS)
    cmd = [sys.executable, "-c", "import sys; from sftgan_lit.cli import export_main; sys.exit(export_main())"]
    run = subprocess.run(
        [*cmd, str(tmp_path / "demo.pth"), "--out", str(tmp_path / "out"), "--prior", str(tmp_path / "seg.pth")]
        + ["--remap", "sky:water", "--format", "safetensors", "onnx", "onnx-fp16", "--license", "CC-BY-4.0"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    out = tmp_path / "out"
    assert {p.name for p in out.iterdir()} == {
        "demo.safetensors",
        "demo.onnx",
        "demo_fp16.onnx",
        "demo.json",
        "README.md",
    }
    assert run.stdout.count("chaiNNer rules pass") == 2
    card = json.loads((out / "demo.json").read_text())
    assert (card["architecture"], card["scale"], card["inputChannels"], card["outputChannels"]) == ("sftgan", 4, 3, 3)
    assert card["license"] == "CC-BY-4.0" and card["trainingIterations"] == 400 and card["size"] == ["8nf", "2nb"]
    for resource in card["resources"]:
        assert resource["sha256"] == sha256(out / resource["file"])
        assert resource["size"] == (out / resource["file"]).stat().st_size
    readme = (out / "README.md").read_text()
    assert "| 1 | sky | rgb(" in readme and "`sky` -> `water`" in readme and "spandrel.ModelLoader()" in readme
    pipeline = load_pipeline(out / "demo.safetensors")
    assert pipeline.remap == {"sky": "water"} and pipeline.prior_type == "segmenter (OutdoorSceneSeg)"


@pytest.mark.parametrize(
    "args,message",
    [
        (["missing.pth"], "checkpoint not found: missing.pth"),
        (["demo.pth", "--override", "banana"], "override=banana: not a class"),
        (["demo.pth", "--out", ".", "--format", "pth"], "an output would overwrite demo.pth"),
        (["demo.pth", "--tolerance", "0"], "--tolerance=0.0: must be > 0"),
        (["demo.pth", "--prior", "nothing.pth"], "checkpoint not found: nothing.pth"),
        # the name is joined to --out: a path in it once wrote outside --out
        (["demo.pth", "--name", "../escape"], "--name=../escape: must be a file stem"),
        (["demo.pth", "--name", ".."], "--name=..: must be a file stem"),
        (["demo.pth", "--name", "sub\\x"], "must be a file stem"),
        (["demo.pth", "--out", "demo.pth"], "--out=demo.pth: it is an existing file, not a folder"),
        (["demo.pth", "--continuous", "noise_sigma"], "--continuous noise_sigma: expected NAME=NUMBER"),
        (["demo.pth", "--continuous", "noise_sigma=5"], "continuous noise_sigma: not a channel of this generator"),
    ],
)
def test_sftgan_export_refuses_bad_arguments_with_exit_2(tmp_path, monkeypatch, capsys, args, message):
    from sftgan_lit.cli import export_main

    export_generator(tiny_generator(), tmp_path / "demo.pth", NAMES, COLORS)
    monkeypatch.chdir(tmp_path)
    assert export_main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_predict_takes_a_pipeline_file_as_its_checkpoint(tmp_path):
    """predict.py's tiled path runs the pipeline file's generator (with the prior= it is given)."""
    import numpy as np

    from sftgan_lit.data.io import read_image
    from sftgan_lit.inference import predict

    from helpers import EXACT_INFERENCE, TINY_DATA, compose

    pipeline = SFTGANPipeline(tiny_generator(), tiny_ost(), NAMES, COLORS).eval()
    export_pipeline(pipeline, tmp_path / "p.safetensors")
    overrides = [f"checkpoint={tmp_path / 'p.safetensors'}", f"out={tmp_path / 'out'}", "images=demo", "input=hr"]
    report, objects = predict(
        compose([*overrides, *EXACT_INFERENCE, "prior=uniform", "tile=12", "progress=false", *TINY_DATA], "predict")
    )
    assert report.ok and len(report.written) == 2
    lr = objects["files"][0]
    from sftgan_lit.inference.inputs import InputReader

    item = InputReader(4, 8, "hr").read(lr, with_labels=False)
    with torch.no_grad():
        expected = pipeline.generator(item.lr, torch.full((1, 8, *[4 * s for s in item.lr.shape[-2:]]), 1 / 8))
    expected = (expected[0].clamp(0, 1).permute(1, 2, 0) * 255).round().byte().numpy()
    assert np.abs(read_image(report.written[0]).astype(int) - expected.astype(int)).max() <= 1
