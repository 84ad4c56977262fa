"""predict.py: the eager model's output on odd sizes and awkward files, the paper's HR protocol, atomic and
non-destructive writes, edits, exit codes, a full disk, option and output-collision refusals, the
released checkpoint layouts, checkpoint=latest."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sftgan_lit.data.io import read_image
from sftgan_lit.imresize import imresize
from sftgan_lit.inference import evaluate, predict
from sftgan_lit.models import export_generator

from helpers import (
    FULL_DISK,
    TINY_DATA,
    compose_exact,
    predict_cfg,
    random_state_dict,
    run_script,
    tiny_generator,
)


def test_predict_on_demo_hr_matches_the_eager_model(tmp_path, tiny_ckpt):
    report, objs = predict(predict_cfg(tmp_path, tiny_ckpt, "images=demo", "input=hr", "tile=12", "save_prior=true"))
    assert report.ok and len(report.written) == 2
    src = objs["files"][0]
    hr = read_image(src)
    out = read_image(report.written[0])
    assert out.shape == hr.shape  # 128x128: a multiple of 4, nothing cropped
    # Independently: MATLAB-bicubic LR rounded to 8 bits, one-hot prior of the label map, one eager call.
    lr = (
        imresize(torch.from_numpy(hr.copy()).permute(2, 0, 1)[None].float() / 255, 0.25).clamp(0, 1) * 255
    ).round() / 255
    labels = np.array(Image.open(src.parent.parent / "labels" / src.name))
    assert objs["prior"].smoothing == objs["prior"].blur_sigma == 0  # conf/prior/labels.yaml: plain one-hot
    prior = torch.from_numpy(np.eye(8, dtype=np.float32)[labels]).permute(2, 0, 1)[None]
    with torch.no_grad():
        ref = (objs["generator"].float()(lr, prior)[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
    prior_png = np.array(Image.open(report.written[0].with_name(f"{report.written[0].stem}_prior.png")))
    colors = np.array(objs["prior"].colors, np.uint8)
    assert np.array_equal(prior_png, colors[labels])


def test_predict_lr_odd_sizes_and_awkward_files(tmp_path, tiny_ckpt):
    rng = np.random.default_rng(0)
    src = tmp_path / "in"
    src.mkdir()
    rgb = rng.integers(0, 256, (23, 37, 3), np.uint8)
    Image.fromarray(rgb).save(src / "odd.png")
    Image.fromarray(rgb[..., 0]).save(src / "gray.png")
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])).save(src / "rgba_opaque.png")
    Image.fromarray(np.dstack([rgb, rng.integers(0, 256, rgb.shape[:2], np.uint8)])).save(src / "rgba_transparent.png")
    Image.fromarray(rgb[..., 1].astype(np.uint16) * 257).save(src / "gray16.png")  # exact 8-bit values in 16 bits
    Image.fromarray(rgb[..., 1].astype(np.uint16) * 257 + 1).save(src / "deep16.png")  # real 16-bit precision
    (src / "truncated.png").write_bytes((src / "odd.png").read_bytes()[:200])
    report, _ = predict(predict_cfg(tmp_path, tiny_ckpt, f"images={src}", "input=lr", "prior=uniform", "tile=8"))
    assert sorted(p.name for p in report.written) == ["gray.png", "gray16.png", "odd.png", "rgba_opaque.png"]
    assert sorted(Path(k).name for k in report.failures) == ["deep16.png", "rgba_transparent.png", "truncated.png"]
    assert "transparent" in report.failures[str(src / "rgba_transparent.png")]
    assert "16-bit" in report.failures[str(src / "deep16.png")]
    assert not report.ok
    out = tmp_path / "out"
    assert read_image(out / "odd.png").shape == (92, 148, 3)
    # Grayscale and opaque RGBA are the same pixels as RGB input: identical outputs.
    gray_rgb = tmp_path / "gray_rgb"
    gray_rgb.mkdir()
    Image.fromarray(np.repeat(rgb[..., :1], 3, 2)).save(gray_rgb / "g.png")
    Image.fromarray(np.repeat(rgb[..., 1:2], 3, 2)).save(gray_rgb / "g16.png")
    predict(predict_cfg(tmp_path, tiny_ckpt, f"images={gray_rgb}", "input=lr", "prior=uniform", "tile=8"))
    assert np.array_equal(read_image(out / "gray.png"), read_image(out / "g.png"))
    assert np.array_equal(read_image(out / "gray16.png"), read_image(out / "g16.png"))
    assert np.array_equal(read_image(out / "rgba_opaque.png"), read_image(out / "odd.png"))
    assert not list(out.glob(".*.tmp"))


def test_predict_hr_mode_modcrops_odd_sizes(tmp_path, tiny_ckpt):
    src = tmp_path / "hr.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (75, 102, 3), np.uint8)).save(src)
    report, _ = predict(predict_cfg(tmp_path, tiny_ckpt, f"images={src}", "input=hr", "prior=uniform", "tile=7"))
    assert read_image(report.written[0]).shape == (72, 100, 3)


def test_existing_outputs_are_kept_unless_overwrite(tmp_path, tiny_ckpt):
    cfg = ["images=demo", "input=hr", "tile=null"]
    out = tmp_path / "out"
    out.mkdir()
    (out / "0000.png").write_bytes(b"mine")
    report, _ = predict(predict_cfg(tmp_path, tiny_ckpt, *cfg))
    assert [p.name for p in report.exists] == ["0000.png"] and [p.name for p in report.written] == ["0001.png"]
    assert (out / "0000.png").read_bytes() == b"mine"
    report, _ = predict(predict_cfg(tmp_path, tiny_ckpt, *cfg, "overwrite=true"))
    assert len(report.written) == 2 and read_image(out / "0000.png").shape == (128, 128, 3)


def test_an_interrupted_write_leaves_no_partial_file(tmp_path, tiny_ckpt, monkeypatch):
    import sftgan_lit.data.io as io

    real_replace, calls = os.replace, []

    def interrupted(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the second output: data written to the temp file, then the run is killed
            assert Path(src).stat().st_size > 0
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(io.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        predict(predict_cfg(tmp_path, tiny_ckpt, "images=demo", "input=hr", "batch_size=1"))
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".png") == ["0000.png"]
    assert not list(out.glob(".*.tmp"))
    read_image(out / "0000.png")  # complete and decodable


def test_predict_edits_and_unknown_class(tmp_path, tiny_ckpt):
    base, _ = predict(predict_cfg(tmp_path / "a", tiny_ckpt, "images=demo", "input=hr"))
    same, _ = predict(predict_cfg(tmp_path / "b", tiny_ckpt, "images=demo", "input=hr", "prior_remap={sky:sky}"))
    edited, _ = predict(predict_cfg(tmp_path / "c", tiny_ckpt, "images=demo", "input=hr", "prior_override=building"))
    for a, b, c in zip(base.written, same.written, edited.written):
        assert np.array_equal(read_image(a), read_image(b))
        assert not np.array_equal(read_image(a), read_image(c))
    from sftgan_lit.priors.base import PriorError

    with pytest.raises(PriorError, match="banana.*not a class"):
        predict(predict_cfg(tmp_path / "d", tiny_ckpt, "images=demo", "prior_override=banana"))


def test_cli_exit_codes(tmp_path, tiny_ckpt):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(src / "ok.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    run = run_script(
        tmp_path, "predict.py", f"images={src}", f"checkpoint={tiny_ckpt}", "prior=uniform", "out=sr", "progress=false"
    )
    assert run.returncode == 1, run.stderr
    assert "FAILED" in run.stderr and "broken.jpg" in run.stderr
    assert (tmp_path / "sr" / "ok.png").is_file() and (tmp_path / "sr" / "predict.log").is_file()
    run = run_script(tmp_path, "predict.py", f"images={src}", "checkpoint=missing.pth", "out=sr2")
    assert run.returncode == 2 and "checkpoint=missing.pth: file not found" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_full_disk_stops_predict_with_a_summary_naming_the_file(tmp_path, tiny_ckpt):
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b", "c", "d"):
        Image.fromarray(np.full((12, 16, 3), 40, np.uint8)).save(src / f"{name}.png")
    run = subprocess.run(
        [sys.executable, "-c", FULL_DISK.format(main="predict_main"), f"images={src}", f"checkpoint={tiny_ckpt}"]
        + ["prior=uniform", "out=sr", "progress=false", "batch_size=1", "hydra.run.dir=.", *TINY_DATA],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1, run.stderr
    assert "1 written to sr, 0 already there, 1 failed, 2 not processed" in run.stdout
    assert "FAILED " + str(src / "b.png") + ": could not write sr/b.png: No space left on device" in run.stderr
    assert "No space left on device" in run.stderr and "STOPPED" in run.stderr and "c.png, d.png" in run.stderr
    assert sorted(p.name for p in (tmp_path / "sr").iterdir()) == ["a.png"]  # what the summary counts; no temp file
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("name", ["SFTGAN_noBN_OST_bg", "SFTGAN_torch"])
def test_predict_and_eval_run_released_checkpoint_layouts(tmp_path, name):
    ckpt = tmp_path / f"{name}.pth"
    torch.save(random_state_dict(name), ckpt)
    report, objs = predict(predict_cfg(tmp_path, ckpt, "images=demo", "input=hr", "tile=16", "data.demo.size=64"))
    assert report.ok and len(report.written) == 2
    assert read_image(report.written[0]).shape == (64, 64, 3)
    assert objs["generator"].config.num_classes == 8
    result, _ = evaluate(
        compose_exact(
            "eval",
            [
                f"checkpoints=[{ckpt}]",
                f"out={tmp_path / 'ev'}",
                "lpips_net=null",
                "num_crops=1",
                *TINY_DATA,
                "data.demo.size=64",
            ],
        )
    )
    assert not result["failures"] and set(result["summary"]) == {"bicubic", "prior", "uniform"}


@pytest.mark.parametrize("prior", ["labels", "uniform"])
def test_eval_and_predict_take_a_generator_without_prior(tmp_path, prior):
    """Every generator the package exports evaluates, an SRResNet (conditioning=none) included."""
    srresnet = tmp_path / "srresnet" / "generator.pth"
    export_generator(tiny_generator(conditioning="none"), srresnet)
    cfg = compose_exact(
        "eval",
        [f"checkpoints=[{srresnet}]", f"out={tmp_path / 'report'}", f"prior={prior}", "lpips_net=null", *TINY_DATA],
    )
    result, _ = evaluate(cfg)
    assert not result["failures"] and np.isfinite(result["summary"]["prior"]["overall"]["psnr_y"])
    report, _ = predict(predict_cfg(tmp_path, srresnet, "images=demo", f"prior={prior}", "save_prior=true"))
    assert report.ok and len(report.written) == 2


@pytest.mark.parametrize(
    "override,key",
    [
        ("batch_size=-1", "batch_size=-1: must be an integer >= 1"),
        ("batch_size=0", "batch_size=0: must be an integer >= 1"),
        ("tile=0", "tile=0: must be an integer >= 1 or null"),
        ("overlap=-3", "overlap=-3: must be an integer >= 0 or null"),
        ("segment_tile=0", "segment_tile=0"),
        ("segment_overlap=-1", "segment_overlap=-1"),
        ("max_pixels=0", "max_pixels=0"),
        ("precision=fp8", "precision=fp8: must be one of auto, fp32, bf16, fp16"),
        ("engine=tensorrt", "engine=tensorrt: must be one of auto, torch, onnxruntime, openvino"),
        ("input=raw", "input=raw: must be hr or lr"),
    ],
)
def test_predict_refuses_out_of_range_options_before_any_work(tmp_path, tiny_ckpt, override, key):
    from sftgan_lit.config import ConfigError

    with pytest.raises(ConfigError, match=re.escape(key)):
        predict(predict_cfg(tmp_path, tiny_ckpt, "images=demo", override))
    assert not (tmp_path / "out").exists()  # nothing written


def test_predict_cli_exits_2_with_one_line_for_a_bad_number(tmp_path, tiny_ckpt):
    run = run_script(tmp_path, "predict.py", "images=demo", f"checkpoint={tiny_ckpt}", "batch_size=-1", "out=sr")
    assert run.returncode == 2, run.stderr
    assert run.stderr.strip().splitlines() == ["sftgan-predict: batch_size=-1: must be an integer >= 1"]
    assert not (tmp_path / "sr").exists() or not list((tmp_path / "sr").glob("*.png"))


def test_predict_refuses_outputs_that_collide_or_overwrite_inputs(tmp_path, tiny_ckpt):
    from sftgan_lit.config import ConfigError

    src = tmp_path / "in"
    src.mkdir()
    img = np.random.default_rng(0).integers(0, 255, (12, 16, 3), dtype=np.uint8)
    Image.fromarray(img).save(src / "x.png")
    Image.fromarray(img).save(src / "x.jpg")
    with pytest.raises(ConfigError, match=r"x\.(png|jpg) and x\.(png|jpg) would both write x\.png"):
        predict(predict_cfg(tmp_path, tiny_ckpt, f"images={src}", "prior=uniform"))
    (src / "x.jpg").unlink()
    Image.fromarray(img).save(src / "x_prior.png")
    with pytest.raises(ConfigError, match=r"would both write x_prior\.png"):
        predict(predict_cfg(tmp_path, tiny_ckpt, f"images={src}", "prior=uniform", "save_prior=true"))
    for overwrite in ("false", "true"):  # out= the input folder: refused, the originals untouched
        with pytest.raises(ConfigError, match="outputs would overwrite inputs"):
            predict(
                predict_cfg(
                    tmp_path, tiny_ckpt, f"images={src}", "prior=uniform", f"out={src}", f"overwrite={overwrite}"
                )
            )
        assert np.array_equal(np.asarray(Image.open(src / "x.png")), img)
    assert not (tmp_path / "out").exists()


def test_latest_is_the_newest_train_run_export(tmp_path, monkeypatch):
    """checkpoint=latest: the newest generator.pth of a train.py run (beside .hydra/), not an experiment driver's."""
    import os

    from sftgan_lit.inference import resolve_checkpoint

    run = tmp_path / "outputs" / "2026-01-01" / "10-00-00"
    (run / ".hydra").mkdir(parents=True)
    export_generator(tiny_generator(), run / "generator.pth")
    driver = tmp_path / "outputs" / "pipeline" / "none"
    export_generator(tiny_generator(), driver / "generator.pth")
    os.utime(run / "generator.pth", (1, 1))  # the driver's file is newer
    monkeypatch.chdir(tmp_path)
    assert resolve_checkpoint("latest") == Path("outputs/2026-01-01/10-00-00/generator.pth")
