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
    add_stray_entries,
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


def _samples(path: Path) -> np.ndarray:
    """A PNG's samples as stored (16-bit kept), ``(H, W, C)``."""
    import imagecodecs

    a = imagecodecs.png_decode(path.read_bytes())
    return a[..., None] if a.ndim == 2 else a


def test_predict_lr_odd_sizes_and_the_images_people_have(tmp_path, tiny_ckpt):
    """Grey, RGBA and 16-bit inputs are super-resolved, not refused, and written in their own format."""
    rng = np.random.default_rng(0)
    src = tmp_path / "in"
    src.mkdir()
    rgb = rng.integers(0, 256, (23, 37, 3), np.uint8)
    alpha = rng.integers(0, 256, rgb.shape[:2], np.uint8)
    Image.fromarray(rgb).save(src / "odd.png")
    Image.fromarray(rgb[..., 0]).save(src / "gray.png")
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])).save(src / "rgba_opaque.png")
    Image.fromarray(np.dstack([rgb, alpha])).save(src / "rgba.png")
    Image.fromarray(rgb[..., 1].astype(np.uint16) * 257).save(src / "gray16.png")  # 8-bit values in 16 bits
    deep = rgb[..., 1].astype(np.uint16) * 257 + rng.integers(0, 257, rgb.shape[:2]).astype(np.uint16)
    Image.fromarray(deep).save(src / "deep16.png")  # the low byte carries information
    (src / "truncated.png").write_bytes((src / "odd.png").read_bytes()[:200])
    report, _ = predict(predict_cfg(tmp_path, tiny_ckpt, f"images={src}", "input=lr", "prior=uniform", "tile=8"))
    assert sorted(Path(k).name for k in report.failures) == ["truncated.png"] and not report.ok
    assert len(report.written) == 6
    out = tmp_path / "out"
    colour = _samples(out / "odd.png")
    assert colour.shape == (92, 148, 3) and colour.dtype == np.uint8
    # RGBA in, RGBA out: the same colour as the RGB input's, the alpha MATLAB-bicubic x4
    for name, a in (("rgba_opaque.png", np.full(rgb.shape[:2], 255, np.uint8)), ("rgba.png", alpha)):
        four = _samples(out / name)
        assert four.shape == (92, 148, 4) and np.array_equal(four[..., :3], colour)
        up = imresize(torch.from_numpy(a).float()[None, None] / 255, 4).clamp(0, 1)[0, 0].numpy()
        assert np.array_equal(four[..., 3], np.round(up * 255).astype(np.uint8))
    # grey in, grey out: the luma of the output the same pixels give as RGB
    gray_rgb = tmp_path / "gray_rgb"
    gray_rgb.mkdir()
    Image.fromarray(np.repeat(rgb[..., :1], 3, 2)).save(gray_rgb / "g.png")
    Image.fromarray(np.repeat(rgb[..., 1:2], 3, 2)).save(gray_rgb / "g16.png")
    predict(predict_cfg(tmp_path, tiny_ckpt, f"images={gray_rgb}", "input=lr", "prior=uniform", "tile=8"))
    luma = _samples(out / "g.png").astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    grey = _samples(out / "gray.png")
    assert grey.shape == (92, 148, 1) and np.abs(grey[..., 0] - luma).max() <= 1.0
    # 16-bit in, 16-bit out; the low byte is not dropped: it changes the output
    g16, d16 = _samples(out / "gray16.png"), _samples(out / "deep16.png")
    assert g16.dtype == d16.dtype == np.uint16 and g16.shape == (92, 148, 1)
    luma16 = _samples(out / "g16.png").astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(g16[..., 0] / 257 - luma16).max() <= 1.0  # the same values, at 16 bits
    assert np.abs(d16.astype(int) - g16.astype(int)).max() > 257
    assert not list(out.glob(".*.tmp"))


def test_16_bit_rgb_and_alpha_by_the_model_whole_or_in_bands(tmp_path, tiny_ckpt):
    """A 48-bit PNG and a 16-bit TIFF keep their 16 bits; alpha=model runs the generator on the alpha's grey
    replica; the streamed (tiled) output equals the whole-image one."""
    import tifffile

    from sftgan_lit.data.io import PngStripWriter
    from sftgan_lit.models import load_generator

    rng = np.random.default_rng(3)
    src = tmp_path / "in"
    src.mkdir()
    deep = rng.integers(0, 65536, (21, 30, 4)).astype(np.uint16)
    with PngStripWriter(src / "rgba16.png", 30, 21, 4, 16) as w:
        w.write(deep)
    tifffile.imwrite(src / "rgb16.tif", deep[..., :3])
    high = tmp_path / "high"
    high.mkdir()
    Image.fromarray((deep[..., :3] >> 8).astype(np.uint8)).save(high / "rgb16.png")  # its high bytes alone
    outs = {}
    for tile in ("null", "8"):
        cfg = predict_cfg(tmp_path, tiny_ckpt, f"images={src}", "prior=uniform", f"tile={tile}", "alpha=model")
        cfg.out = str(tmp_path / f"out{tile}")
        report, _ = predict(cfg)
        assert report.ok
        outs[tile] = {p.name: _samples(p) for p in report.written}
    for name in ("rgba16.png", "rgb16.png"):
        # tiles equal the whole image up to float rounding: at 16 bits a sample may round one level apart
        diff = outs["null"][name].astype(int) - outs["8"][name].astype(int)
        assert outs["null"][name].dtype == np.uint16 and np.abs(diff).max() <= 1
    assert outs["null"]["rgba16.png"].shape == (84, 120, 4)
    assert np.array_equal(outs["null"]["rgba16.png"][..., :3], outs["null"]["rgb16.png"])
    g = load_generator(tiny_ckpt)
    replica = torch.from_numpy(deep[..., 3].astype(np.float32) / 65535)[None, None].expand(1, 3, -1, -1)
    with torch.no_grad():
        ref = g(replica, torch.full((1, 8, 84, 120), 1 / 8)).clamp(0, 1).mean(1)[0].numpy()
    assert np.abs(outs["null"]["rgba16.png"][..., 3] / 65535 - ref).max() < 1e-4
    cfg = predict_cfg(tmp_path, tiny_ckpt, f"images={high}", "prior=uniform", "tile=null")
    cfg.out = str(tmp_path / "out_high")
    predict(cfg)
    from_high = _samples(tmp_path / "out_high" / "rgb16.png")
    assert from_high.dtype == np.uint8 and not np.array_equal(outs["null"]["rgb16.png"] >> 8, from_high)


def test_upscaled_alpha_bands_stack_to_the_whole():
    from sftgan_lit.inference.predict import upscale_alpha

    alpha = torch.rand(1, 1, 29, 17, generator=torch.Generator().manual_seed(0))
    whole = upscale_alpha(alpha, 4)
    assert whole.shape == (116, 68)
    bands = np.concatenate([upscale_alpha(alpha, 4, top, min(20, 116 - top)) for top in range(0, 116, 20)])
    np.testing.assert_array_equal(bands, whole)


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
        if Path(dst).parent == tmp_path / "out":  # predict's outputs (not the demo set made on first use)
            calls.append(dst)
        if len(calls) == 2 and Path(dst).parent == tmp_path / "out":  # the second output: written, then killed
            assert Path(src).stat().st_size > 0
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(io.os, "replace", interrupted)
    report, _ = predict(predict_cfg(tmp_path, tiny_ckpt, "images=demo", "input=hr", "batch_size=1"))
    assert report.interrupted and len(report.written) == 1 and len(report.not_done) == 1  # said, not raised
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
    (src / "notes.txt").write_text("not an image")
    run = run_script(
        tmp_path, "predict.py", f"images={src}", f"checkpoint={tiny_ckpt}", "prior=uniform", "out=sr", "progress=false"
    )
    assert run.returncode == 1, run.stderr
    assert "FAILED" in run.stderr and "broken.jpg" in run.stderr
    assert "1 skipped" in run.stdout and f"SKIPPED {src / 'notes.txt'}: not an image type" in run.stderr
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
    assert "1 written to sr, 0 already there, 1 failed, 0 skipped (no image read here), 2 not processed" in run.stdout
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


@pytest.mark.parametrize(
    ("prog", "config", "args", "message"),
    [
        # each once ended in a traceback (Hydra making its run folder, torch parsing the device, next() on nothing)
        ("sftgan-predict", "predict", ["out={file}"], "out={file}: it is an existing file, not a folder"),
        ("sftgan-eval", "eval", ["out={file}"], "out={file}: it is an existing file, not a folder"),
        ("sftgan-predict", "predict", ["out={file}/sub"], "out={file}/sub: cannot make the folder"),
        ("sftgan-train", "train", ["hydra.run.dir={file}"], "hydra.run.dir={file}: it is an existing file"),
    ],
)
def test_an_output_folder_that_cannot_be_one_exits_2_with_one_line(tmp_path, capsys, prog, config, args, message):
    from sftgan_lit.cli import composition_check

    (tmp_path / "taken").write_text("a file")
    argv = [a.format(file=tmp_path / "taken") for a in args]
    with pytest.raises(SystemExit) as stop:
        composition_check(prog, config, argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message.format(file=tmp_path / "taken") in err and len(err.splitlines()) == 1


def test_a_bad_device_and_an_empty_comparison_are_configuration_errors():
    from sftgan_lit.config import ConfigError, EvalSchema
    from sftgan_lit.inference.runtime import pick_device

    with pytest.raises(ConfigError, match=r"device=banana: not a device"):
        pick_device("banana")
    with pytest.raises(ConfigError, match=r"compare_priors=\[\]: must be a non-empty list"):
        EvalSchema(compare_priors=[]).check()


def test_every_entry_of_the_input_folder_is_processed_or_listed_as_skipped(tmp_path, tiny_ckpt):
    """A broken link, a subfolder, another file type and a multi-page file were once left out of the count
    ("N files ... 0 not processed", exit 0); a several-frame file was read as its first frame."""
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(src / "ok.png")
    strays = add_stray_entries(src)
    frames = [Image.fromarray(np.full((12, 16, 3), v, np.uint8)) for v in (0, 200)]
    frames[0].save(src / "pages.tif", save_all=True, append_images=frames[1:])
    report, _ = predict(predict_cfg(tmp_path, tiny_ckpt, f"images={src}", "prior=uniform"))
    assert [p.name for p in report.written] == ["ok.png"] and not report.ok
    assert set(report.skipped) == {str(src / n) for n in strays}
    assert report.skipped[str(src / "gone.png")] == "a broken link"
    assert "holds 2 frames or pages" in report.failures[str(src / "pages.tif")]


def test_ctrl_c_keeps_what_is_written_and_lists_what_is_not(tmp_path, tiny_ckpt, monkeypatch):
    """Ctrl-C once ended in a KeyboardInterrupt traceback and no summary; the CLI now exits 130 after it."""
    from sftgan_lit.inference.inputs import InputReader

    original, calls = InputReader.read, []

    def read(self, path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, path, *args, **kwargs)

    monkeypatch.setattr(InputReader, "read", read)
    # tiled: each image is written as soon as it is read (a batch in hand when Ctrl-C comes is not written)
    report, objs = predict(predict_cfg(tmp_path, tiny_ckpt, "images=demo", "input=hr", "tile=12"))
    assert report.interrupted and report.stopped == "interrupted (Ctrl-C or SIGTERM)" and not report.ok
    assert [p.name for p in report.written] == [objs["files"][0].name]
    assert report.not_done == [objs["files"][1]]
    assert not list((tmp_path / "out").glob(".*.tmp"))  # nothing half-written


def test_a_rerun_removes_the_temporary_files_a_killed_run_left_and_only_those(tmp_path, tiny_ckpt):
    out = tmp_path / "out"
    out.mkdir()
    ours = out / ".0000.png.k3j_9x2q.tmp"  # AtomicFile's name for 0000.png (mkstemp's 8 characters)
    theirs = [out / ".0000.png.mine.tmp", out / ".notes.txt.abcd1234.tmp", out / "0000.png.abcd1234.tmp"]
    for p in (ours, *theirs):
        p.write_bytes(b"half an image")
    report, _ = predict(predict_cfg(tmp_path, tiny_ckpt, "images=demo", "input=hr"))
    assert report.ok and not ours.exists() and all(p.exists() for p in theirs)


def test_companion_images_are_read_as_what_they_mean_by_their_mode(tmp_path):
    """A 16-bit strength map of 32768 once gave strength 0, a mask one level off the palette edited nothing,
    and a palette PNG painted in the building colour was read as class 0."""
    import imagecodecs

    from sftgan_lit.categories import OUTDOOR_CLASSES, OUTDOOR_COLORS
    from sftgan_lit.config import ConfigError
    from sftgan_lit.inference.inputs import read_mask_image
    from sftgan_lit.inference.predict import StrengthMap
    from sftgan_lit.priors import PriorError, class_mask_from_image

    def mask_of(path):
        return class_mask_from_image(read_mask_image(path), OUTDOOR_CLASSES, OUTDOOR_COLORS, str(path))

    half16 = np.full((6, 8), 32768, np.uint16)
    (tmp_path / "s16.png").write_bytes(imagecodecs.png_encode(half16))
    assert np.allclose(StrengthMap.read(str(tmp_path / "s16.png")).values, 32768 / 65535)
    Image.fromarray(np.full((6, 8), 128, np.uint8)).save(tmp_path / "s8.png")
    assert np.allclose(StrengthMap.read(str(tmp_path / "s8.png")).values, 128 / 255)
    rgb = np.zeros((6, 8, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(tmp_path / "red.png")
    with pytest.raises(ConfigError, match=r"strength_map=.*red.png: 48 pixels are not grey"):
        StrengthMap.read(str(tmp_path / "red.png"))

    building = np.asarray(OUTDOOR_COLORS[5], np.uint8)
    off = np.full((4, 4, 3), 255, np.uint8)  # white: keep
    off[:2] = building + np.array([1, 0, 0], np.uint8)  # one level off the palette: still building
    Image.fromarray(off).save(tmp_path / "off.png")
    assert (mask_of(tmp_path / "off.png")[:2] == 5).all() and (mask_of(tmp_path / "off.png")[2:] == 255).all()
    pal = Image.new("P", (4, 4), 1)
    pal.putpalette([255, 255, 255, *building.tolist()] + [0] * 762)  # index 1 holds the building colour
    pal.save(tmp_path / "palette.png")
    assert (mask_of(tmp_path / "palette.png") == 5).all()
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[:, :2] = [*OUTDOOR_COLORS[1], 255]  # sky, opaque; the rest transparent: keep
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    assert (mask_of(tmp_path / "rgba.png")[:, :2] == 1).all() and (mask_of(tmp_path / "rgba.png")[:, 2:] == 255).all()
    far = np.full((4, 4, 3), 255, np.uint8)
    far[0, :3] = (0, 0, 0)
    Image.fromarray(far).save(tmp_path / "far.png")
    with pytest.raises(
        PriorError, match=r"far.png: 3 painted pixels are no class colour \(e.g. rgb\(0, 0, 0\), nearest"
    ):
        mask_of(tmp_path / "far.png")


def test_a_refused_run_leaves_no_log_in_the_folder_it_was_refused_for(tmp_path):
    """A refused run once wrote predict.log into out= (the input folder itself when out= pointed there)."""
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(src / "a.png")
    (src / "predict.log").write_text("an earlier run's log\n")
    run = run_script(tmp_path, "predict.py", f"images={src}", f"out={src}", "checkpoint=missing.pth")
    assert run.returncode == 2 and "checkpoint=missing.pth: file not found" in run.stderr
    assert sorted(p.name for p in src.iterdir()) == ["a.png", "predict.log"]
    assert (src / "predict.log").read_text() == "an earlier run's log\n"
