"""Priors beyond categories: continuous channels stacked after the classes, the degradation that knows them per
pixel, the estimator, and the inference entry points that take them (noise_level=, noise_map=, map files)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sftgan_lit.data import collate
from sftgan_lit.degradations import Mapped, bicubic_lr, make_degradation, noise_field
from sftgan_lit.inference.predict import predict
from sftgan_lit.models import (
    DegradationEstimator,
    SFTGenerator,
    export_estimator,
    export_generator,
    load_estimator,
    load_generator,
)
from sftgan_lit.priors import CHANNELS, LabelPrior, PriorError, UniformPrior, parse_channels
from sftgan_lit.tensors import TensorValueError

from helpers import TINY, TINY_TRAIN, compose, predict_cfg, randomize_

STACK = ["prior=[labels,degradation]", "degradation=mapped"]
NAMES = ["noise_sigma", "blur_sigma", "jpeg_quality"]


def stack_generator(seed: int = 0) -> SFTGenerator:
    torch.manual_seed(seed)
    g = SFTGenerator(
        num_features=8, num_blocks=2, cond_channels=4, cond_hidden_channels=8, sft_hidden_channels=4, num_continuous=3
    )
    return randomize_(g)


@pytest.fixture(scope="module")
def stack_ckpt(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stack") / "generator.pth"
    prior = LabelPrior(continuous=NAMES)
    export_generator(
        stack_generator(), path, prior.class_names, prior.colors, continuous=[c.record() for c in prior.continuous]
    )
    return path


# ---------------------------------------------------------------------------------------------- channels
def test_channels_by_name_or_in_full_and_their_refusals():
    a, b = parse_channels(["noise_sigma", {"name": "depth", "low": 0, "high": 10, "default": 0, "unit": "m"}])
    assert a is CHANNELS["noise_sigma"] and (b.high, b.unit) == (10, "m")
    x = torch.tensor([0.0, 25.0, 50.0])
    assert torch.allclose(a.normalise(x), torch.tensor([0.0, 0.5, 1.0])) and torch.allclose(
        a.physical(a.normalise(x)), x
    )
    for spec, message in [
        (["noise"], "unknown channel 'noise'"),
        (["noise_sigma", "noise_sigma"], "given twice"),
        ([{"name": "d", "low": 1, "high": 0, "default": 0}], "low < high"),
        ([{"name": "d", "low": 0, "high": 1}], "default"),
    ]:
        with pytest.raises(PriorError, match=message):
            parse_channels(spec)
    assert "outside noise_sigma's range [0, 50]" in a.problem(torch.tensor([51.0]))
    assert "non-finite" in a.problem(torch.tensor([float("nan")]))


# ---------------------------------------------------------------------------------------------- degradation
def _params(deg: Mapped, blur=0.0, a=0.0, b=0.0, theta=0.0, quality=None, seed=0, n=1) -> dict:
    rng = np.random.default_rng(0)
    one = deg.draw(rng)
    k = one["kernel"].shape[-1]
    from sftgan_lit.degradations import bivariate_gaussian
    from sftgan_lit.degradations.kernels import pulse

    kernel = bivariate_gaussian(k, blur * deg.scale, blur * deg.scale, 0.0) if blur else pulse(k)
    one.update(
        kernel=torch.from_numpy(kernel.astype(np.float32)),
        blur_sigma=torch.tensor(float(blur)),
        noise_a=torch.tensor(float(a)),
        noise_b=torch.tensor(float(b)),
        theta=torch.tensor(float(theta)),
        jpeg=torch.tensor(quality is not None),
        jpeg_quality=torch.tensor(float(quality or 100.0)),
        seed=torch.tensor(seed),
    )
    return collate([one] * n)


def test_mapped_degradation_does_what_its_maps_say():
    deg = make_degradation({"kind": "mapped"}, 4)
    assert isinstance(deg, Mapped) and deg.channels == ("blur_sigma", "noise_sigma", "jpeg_quality")
    hr = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    # nothing drawn: the 8-bit MATLAB-bicubic LR exactly
    clean, _ = deg(hr, _params(deg), training=False)
    assert torch.equal(clean, (bicubic_lr(hr, 4) * 255).round() / 255)
    # constant noise of 12 levels on a flat grey HR: the LR's standard deviation is 12 / 255 (8-bit rounding adds 1/12 level^2)
    flat = torch.full((1, 3, 256, 256), 0.5)
    lr, _ = deg(flat, _params(deg, a=12, b=12, seed=3), training=False)
    std = float((lr - 0.5).std() * 255)
    assert abs(std - (12**2 + 1 / 12) ** 0.5) < 0.3
    # a ramp (theta=0: left to right) from 2 to 30 levels: each column's spread follows the map
    params = _params(deg, a=2, b=30, seed=4)
    lr, _ = deg(flat, params, training=False)
    maps = deg.maps(params, lr.shape[-2:])
    sigma = noise_field(params["noise_a"], params["noise_b"], params["theta"], lr.shape[-2:])[0]
    assert torch.equal(maps["noise_sigma"][0], sigma.repeat_interleave(4, 0).repeat_interleave(4, 1))
    left, right = (lr[..., :, :8] - 0.5).std() * 255, (lr[..., :, -8:] - 0.5).std() * 255
    assert abs(float(left) - float(sigma[:, :8].pow(2).mean().sqrt())) < 1.0
    assert abs(float(right) - float(sigma[:, -8:].pow(2).mean().sqrt())) < 1.5
    assert torch.all(maps["blur_sigma"] == 0) and torch.all(maps["jpeg_quality"] == 100)
    # a JPEG only where drawn, at its quality: the map says 40 and the LR is not the clean one
    jpeg, _ = deg(hr, _params(deg, quality=40), training=False)
    assert not torch.equal(jpeg, clean) and torch.all(
        deg.maps(_params(deg, quality=40), (16, 24))["jpeg_quality"] == 40
    )


def test_mapped_ranges_are_checked_by_key():
    from sftgan_lit.config import ConfigError

    with pytest.raises(ConfigError, match=r"data.degradation.noise_range=\[0, 80\]"):
        make_degradation({"kind": "mapped", "noise_range": [0, 80]}, 4)
    with pytest.raises(ConfigError, match=r"data.degradation.blur_prob=2"):
        make_degradation({"kind": "mapped", "blur_prob": 2}, 4)


# ---------------------------------------------------------------------------------------------- generator
def test_the_generator_reads_the_stack_and_checks_each_part():
    g = stack_generator()
    assert g.CondNet[0].in_channels == 8 + 3
    lr = torch.rand(1, 3, 6, 5)
    probs = torch.full((1, 8, 24, 20), 1 / 8)
    good = torch.cat([probs, torch.rand(1, 3, 24, 20)], 1)
    g(lr, good)
    with pytest.raises(ValueError, match="8 class probabilities and 3 continuous channels"):
        g(lr, probs)
    with pytest.raises(TensorValueError, match="continuous channels.*outside"):
        g(lr, torch.cat([probs, torch.full((1, 3, 24, 20), 1.5)], 1))
    with pytest.raises(TensorValueError, match="continuous channels.*non-finite"):
        g(lr, torch.cat([probs, torch.full((1, 3, 24, 20), float("nan"))], 1))
    # the continuous channels change the output
    other = torch.cat([probs, torch.rand(1, 3, 24, 20)], 1)
    assert (g(lr, good) - g(lr, other)).abs().max() > 1e-3


# ---------------------------------------------------------------------------------------------- train, export, load
def test_the_stack_trains_exports_and_loads_and_refuses_another_stack(tmp_path):
    from sftgan_lit.train import train

    cfg = compose([*TINY, *TINY_TRAIN, *STACK, f"paths.output_dir={tmp_path}", "logger=csv"])
    _, objects = train(cfg)
    batch = next(iter(objects["datamodule"].train_dataloader()))
    batch = objects["datamodule"].on_after_batch_transfer(batch, 0)
    assert batch["prior"].shape[1] == 8 + 3
    # the continuous part is the degradation's maps, normalised: blur and quality constant per sample
    cont = batch["prior"][:, 8:]
    assert torch.all(cont >= 0) and torch.all(cont <= 1)
    assert torch.all(cont[:, 1].flatten(1).std(1) == 0) and torch.all(cont[:, 2].flatten(1).std(1) == 0)
    given = {**batch, "lr": batch["lr"]}  # a batch whose LR came with the data (paired): its maps are unknown
    given["degradation"] = collate([Mapped(4).draw(np.random.default_rng(0)) for _ in batch["path"]])
    given["prior"] = given["prior"][:, :8]
    with pytest.raises(PriorError, match="LR was given .* degradation per pixel is unknown"):
        objects["datamodule"].on_after_batch_transfer(given, 0)
    g = load_generator(tmp_path / "generator.pth")
    assert g.config.num_continuous == 3 and [c["name"] for c in g.record["continuous"]] == NAMES
    prior = objects["prior"]
    assert prior.generator_problem(g) is None
    assert "prior none" in LabelPrior().generator_problem(g)
    other = LabelPrior(continuous=["noise_sigma", "blur_sigma", "depth"])
    assert "depth" in other.generator_problem(g)


def test_a_stack_without_a_degradation_that_knows_it_is_a_configuration_error(tmp_path):
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    from sftgan_lit.config import ConfigError

    cfg = compose([*TINY, "prior=[labels,degradation]", f"paths.output_dir={tmp_path}"])
    with pytest.raises(
        (ConfigError, InstantiationException),
        match="noise_sigma, blur_sigma, jpeg_quality cannot be trained on.*kind=bicubic",
    ):
        instantiate(cfg.data, prior=instantiate(cfg.prior), scale=4)


def test_prior_mixin_alone_exits_2_with_one_line(capsys):
    from sftgan_lit.cli import composition_check

    with pytest.raises(SystemExit) as stop:
        composition_check("sftgan-train", "train", ["prior=degradation"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and len(err.splitlines()) == 1 and "prior=[labels,degradation]" in err


# ---------------------------------------------------------------------------------------------- inference
def _demo_lr(tmp_path) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    img = np.random.default_rng(0).integers(0, 255, (12, 16, 3), dtype=np.uint8)
    Image.fromarray(img).save(src / "a.png")
    return src


def test_noise_level_and_noise_map_reach_the_generator(tmp_path, stack_ckpt):
    src = _demo_lr(tmp_path)
    runs = {}
    grey = np.full((12, 16), round(20 / 50 * 255), np.uint8)  # 20 levels of the channel's [0, 50]
    Image.fromarray(grey).save(tmp_path / "noise.png")
    for name, extra in {
        "default": [],
        "level20": ["noise_level=20"],
        "map20": [f"noise_map={tmp_path / 'noise.png'}"],
        "level40": ["noise_level=40"],
    }.items():
        report, _ = predict(
            predict_cfg(tmp_path / name, stack_ckpt, f"images={src}", "prior=[uniform,degradation]", *extra)
        )
        assert report.written and not report.failures
        runs[name] = np.asarray(Image.open(report.written[0]), np.int32)
    assert np.abs(runs["level20"] - runs["map20"]).max() <= 1  # the map's 8-bit level is 20.0 +- 0.1
    assert np.abs(runs["level20"] - runs["default"]).max() > 2 and np.abs(runs["level20"] - runs["level40"]).max() > 2


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.noise_sigma.npy", np.full((12, 16), np.nan, np.float32), "non-finite"),
        ("a.noise_sigma.npy", np.full((12, 16), 70, np.float32), r"outside noise_sigma's range \[0, 50\]"),
        ("a.noise_sigma.npy", np.zeros((5, 7), np.float32), r"fits neither the LR|must be the size"),
        ("a.noise_sigma.npy", np.zeros((2, 12, 16), np.float32), r"one channel \(H, W\)"),
        ("a.noise_sigma.npy", np.zeros((12, 16), np.complex64), "numeric array"),
        ("a.noise_sigma.pt", torch.zeros(12, 16, dtype=torch.bool), "real-valued tensor"),
    ],
)
def test_a_bad_map_file_is_that_images_failure(tmp_path, stack_ckpt, name, content, message):
    src = _demo_lr(tmp_path)
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(src / "b.png")
    maps = tmp_path / "maps"
    maps.mkdir()
    if name.endswith(".pt"):
        torch.save(content, maps / name)
    else:
        np.save(maps / name, content)
    np.save(maps / "b.noise_sigma.npy", np.full((48, 64), 10, np.float32))  # an HR-size map: fine
    report, _ = predict(
        predict_cfg(tmp_path, stack_ckpt, f"images={src}", "prior=[uniform,degradation]", f"priors={maps}")
    )
    assert [p.name for p in report.written] == ["b.png"]
    (failure,) = report.failures.values()
    assert name in failure and re.search(message, failure), failure


def test_two_maps_of_one_channel_are_refused_naming_both(tmp_path, stack_ckpt):
    src = _demo_lr(tmp_path)
    maps = tmp_path / "maps"
    maps.mkdir()
    np.save(maps / "a.noise_sigma.npy", np.zeros((12, 16), np.float32))
    Image.fromarray(np.zeros((12, 16), np.uint8)).save(maps / "a.noise_sigma.png")
    report, _ = predict(
        predict_cfg(tmp_path, stack_ckpt, f"images={src}", "prior=[uniform,degradation]", f"priors={maps}")
    )
    (failure,) = report.failures.values()
    assert "2 noise_sigma maps (a.noise_sigma.npy, a.noise_sigma.png); keep one" in failure


def test_noise_options_are_configuration_errors_when_they_cannot_apply(tmp_path, stack_ckpt, tiny_ckpt):
    from sftgan_lit.config import ConfigError

    src = _demo_lr(tmp_path)
    with pytest.raises(ConfigError, match="noise_level=10.0: prior=uniform has no noise_sigma channel"):
        predict(predict_cfg(tmp_path, tiny_ckpt, f"images={src}", "prior=uniform", "noise_level=10"))
    with pytest.raises(ConfigError, match=r"noise_level=60.0: must be in \[0, 50\]"):
        predict(predict_cfg(tmp_path, stack_ckpt, f"images={src}", "prior=[uniform,degradation]", "noise_level=60"))
    Image.fromarray((np.zeros((12, 16, 3)) + [255, 0, 0]).astype(np.uint8)).save(tmp_path / "red.png")
    with pytest.raises(ConfigError, match="noise_map=.*red.png: .* not grey"):
        predict(
            predict_cfg(
                tmp_path,
                stack_ckpt,
                f"images={src}",
                "prior=[uniform,degradation]",
                f"noise_map={tmp_path / 'red.png'}",
            )
        )
    with pytest.raises(PriorError, match="continuous channels: prior none, model"):
        predict(predict_cfg(tmp_path, stack_ckpt, f"images={src}", "prior=uniform"))
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.png"))


# ---------------------------------------------------------------------------------------------- estimator
def test_the_estimator_fills_the_channels_and_refuses_files_that_are_not_one(tmp_path, stack_ckpt):
    torch.manual_seed(0)
    est = randomize_(DegradationEstimator(3, num_features=8, num_blocks=1, smooth=3))
    prior = UniformPrior("stack", continuous=NAMES)
    export_estimator(est, tmp_path / "est.safetensors", [c.record() for c in prior.continuous])
    loaded, channels = load_estimator(tmp_path / "est.safetensors")
    lr = torch.rand(1, 3, 10, 12)
    assert torch.equal(loaded(lr), est(lr)) and [c["name"] for c in channels] == NAMES
    prior.estimator = str(tmp_path / "est.safetensors")
    values = prior.estimate(lr)
    assert values["noise_sigma"].shape == (10, 12)
    pm, how = prior.image_map(lr, 4, maps={"noise_sigma": 7.0})  # given beats estimated
    assert "noise_sigma=7" in how and "blur_sigma=estimated" in how
    window = pm.crop(2, 5, 3, 7)
    assert window.shape == (1, 11, 12, 16)
    assert torch.allclose(
        window[0, 9],
        CHANNELS["blur_sigma"]
        .normalise(values["blur_sigma"])[2:5, 3:7]
        .repeat_interleave(4, 0)
        .repeat_interleave(4, 1),
    )
    # another file, or an estimator of other channels, is refused by key
    wrong = UniformPrior("x", continuous=NAMES, estimator=str(stack_ckpt))
    with pytest.raises(PriorError, match="prior.estimator=.*not a degradation estimator"):
        wrong.check_ready()
    export_estimator(
        DegradationEstimator(2, 8, 1, 3),
        tmp_path / "two.pth",
        [CHANNELS["noise_sigma"].record(), CHANNELS["depth"].record()],
    )
    with pytest.raises(PriorError, match="prior.estimator=.*depth"):
        UniformPrior("x", continuous=NAMES, estimator=str(tmp_path / "two.pth")).check_ready()


def test_make_degradation_prior_at_toy_size_trains_everything_and_writes_every_table(tmp_path):
    """The driver (three generators and experiment=degradation_estimator, the report) at toy size: every model
    exported with its stack, every table and target written; --report-only reuses the exports."""
    from sftgan_lit.experiments import degradation_prior as dp

    report = dp.run(tmp_path, fast=True)
    assert [c["name"] for c in load_estimator(tmp_path / "estimator" / "estimator.pth")[1]] == NAMES
    assert load_generator(tmp_path / "semantic_degradation" / "generator.pth").config.num_continuous == 3
    assert load_generator(tmp_path / "none" / "generator.pth").config.conditioning == "none"
    assert set(report["evidence"]) == set(dp.TESTS) and len(report["denoise_control"]["rows"]) == len(dp.DIAL)
    assert all(np.isfinite(v) for v in report["estimator_mae"].values()) and len(report["targets"]) == 5
    md = (tmp_path / "report.md").read_text()
    for title in ("Evidence", "denoise control", "Swap test", "Estimator error", "Targets"):
        assert title in md
    again = dp.run(tmp_path, fast=True, train_models=False)
    assert again["evidence"] == report["evidence"] and "train_seconds" not in again


# ---------------------------------------------------------------------------------------------- one-input files
def test_the_stack_as_one_input_pipeline_file_onnx_spandrel_and_card(tmp_path, stack_ckpt):
    """The pipeline feeds the estimator's maps (upsampled), with fixed values winning where set; its file, its
    ONNX graph and spandrel's descriptor compute the same; the model card names each channel and its source."""
    from sftgan_lit.inference.exporters import check_image_to_image_onnx, check_pipeline_onnx, export_pipeline_onnx
    from sftgan_lit.inference.model_card import model_card, readme
    from sftgan_lit.pipeline import export_pipeline, load_pipeline

    torch.manual_seed(1)
    est = randomize_(DegradationEstimator(3, num_features=8, num_blocks=1, smooth=3))
    export_estimator(est, tmp_path / "est.pth", [CHANNELS[n].record() for n in NAMES])
    pipe = load_pipeline(stack_ckpt, estimator=tmp_path / "est.pth", continuous={"noise_sigma": 10})
    g = load_generator(stack_ckpt, channels_last=False)
    lr = torch.rand(1, 3, 9, 7, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        maps = torch.nn.functional.interpolate(est(lr), scale_factor=4)
        maps[:, 0] = 10 / 50  # noise_sigma fixed at 10 of [0, 50]
        by_hand = g(lr, torch.cat([torch.full((1, 8, 36, 28), 1 / 8), maps], 1))
        torch.testing.assert_close(pipe(lr), by_hand, atol=1e-5, rtol=0)
    export_pipeline(pipe, tmp_path / "p.safetensors")
    again = load_pipeline(tmp_path / "p.safetensors")
    assert again.continuous == {"noise_sigma": 10.0} and again.estimator is not None
    with torch.no_grad():
        torch.testing.assert_close(again(lr), pipe(lr), atol=1e-6, rtol=0)
    onnx_path = export_pipeline_onnx(pipe, tmp_path / "p.onnx")
    assert check_image_to_image_onnx(onnx_path)["scale"] == 4
    assert check_pipeline_onnx(pipe, onnx_path, h=13, w=11, batch=2) <= 1e-4
    spandrel = pytest.importorskip("spandrel")
    from sftgan_lit.inference.spandrel_support import install

    install()
    try:
        model = spandrel.ModelLoader().load_from_file(tmp_path / "p.safetensors")
        with torch.no_grad():
            torch.testing.assert_close(model(lr), pipe(lr).clamp(0, 1), atol=1e-6, rtol=0)
    finally:
        install(None)
    card = model_card(pipe, [tmp_path / "p.safetensors"], "p")
    assert [(c["name"], c["source"]) for c in card["sftgan_lit"]["continuous"]] == [
        ("noise_sigma", "fixed"),
        ("blur_sigma", "estimator"),
        ("jpeg_quality", "estimator"),
    ]
    assert "noise_sigma (8-bit levels, [0, 50]): 10" in readme(card) and "estimated from the LR" in readme(card)
    with pytest.raises(ValueError, match="continuous depth: not a channel"):
        load_pipeline(stack_ckpt, continuous={"depth": 0.5})
    with pytest.raises(ValueError, match=r"noise_sigma=90: values 90..90 outside"):
        load_pipeline(stack_ckpt, continuous={"noise_sigma": 90})


def test_eval_compares_class_variants_of_a_stack_keeping_its_continuous_channels(tmp_path, stack_ckpt):
    from sftgan_lit.inference import evaluate

    from helpers import TINY_DATA, compose_exact

    cfg = compose_exact(
        "eval",
        [
            f"checkpoints=[{stack_ckpt}]",
            f"out={tmp_path / 'ev'}",
            "prior=[labels,degradation]",
            "compare_priors=[prior,uniform,override:sky]",
            "lpips_net=null",
            *TINY_DATA,
        ],
    )
    result, _ = evaluate(cfg)
    assert (tmp_path / "ev" / "summary.md").is_file()
    summary = (tmp_path / "ev" / "summary.md").read_text()
    assert "uniform" in summary and "override:sky" in summary
