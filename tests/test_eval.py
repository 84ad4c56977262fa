"""eval.py: report numbers against an independent PSNR, option refusals, a full disk."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from sftgan_lit.data.io import read_image
from sftgan_lit.imresize import imresize
from sftgan_lit.inference import evaluate
from sftgan_lit.models import export_generator

from helpers import (
    FULL_DISK,
    TINY_DATA,
    compose_exact,
    psnr_y_np,
    tiny_generator,
)


def test_a_full_disk_ends_eval_with_one_line_naming_the_file(tmp_path, tiny_ckpt):
    run = subprocess.run(
        [sys.executable, "-c", FULL_DISK.format(main="eval_main"), f"checkpoints=[{tiny_ckpt}]", "out=ev"]
        + ["lpips_net=null", "hydra.run.dir=.", *TINY_DATA],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1, run.stderr
    lines = run.stderr.strip().splitlines()
    # the first write after the first: a demo file on a fresh cache, else a report file; named either way
    assert len(lines) == 1 and lines[0].startswith("sftgan-eval: could not write "), lines
    assert "No space left on device" in lines[0]


def test_eval_report_numbers_match_independent_psnr(tmp_path, tiny_ckpt):
    other = tmp_path / "runB" / "generator.pth"
    export_generator(tiny_generator(seed=1), other)
    cfg = compose_exact(
        "eval",
        [
            f"checkpoints=[{tiny_ckpt},{other}]",
            f"out={tmp_path / 'report'}",
            "compare_priors=[prior,uniform]",
            "lpips_net=null",
            "tile=10",
            *TINY_DATA,
        ],
    )
    result, objs = evaluate(cfg)
    out = tmp_path / "report"
    for name in ("per_image.csv", "summary.md", "summary.json", "report.png"):
        assert (out / name).is_file()
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert len(rows) == 2 * (1 + 4)  # 2 images x (bicubic + 2 checkpoints x 2 priors)
    run_a = tiny_ckpt.parent.name
    assert {r["variant"] for r in rows} == {
        "bicubic",
        f"{run_a}/prior",
        f"{run_a}/uniform",
        "runB/prior",
        "runB/uniform",
    }
    from sftgan_lit.models import load_generator

    g = load_generator(tiny_ckpt, channels_last=False)
    for f in objs["files"]:
        hr = read_image(f)
        hr_t = torch.from_numpy(hr.copy()).permute(2, 0, 1)[None].float() / 255
        lr = (imresize(hr_t, 0.25).clamp(0, 1) * 255).round() / 255
        bic = (imresize(lr, 4).clamp(0, 1) * 255).round().byte()[0].permute(1, 2, 0).numpy()
        labels = np.array(Image.open(f.parent.parent / "labels" / f.name))
        with torch.no_grad():
            sr = g(lr, torch.from_numpy(np.eye(8, dtype=np.float32)[labels]).permute(2, 0, 1)[None])
        sr = (sr.clamp(0, 1) * 255).round().byte()[0].permute(1, 2, 0).numpy()
        by_variant = {r["variant"]: r for r in rows if r["image"] == f.name}
        assert float(by_variant["bicubic"]["psnr_y"]) == pytest.approx(psnr_y_np(bic, hr), abs=1e-6)
        # eval runs the channels_last model in tiles, this reference the NCHW one whole: float rounding can move
        # a few 8-bit values by one level (a flip is ~3e-6 dB here); a real error (border, Y weights) is >1e-2
        assert float(by_variant[f"{run_a}/prior"]["psnr_y"]) == pytest.approx(psnr_y_np(sr, hr), abs=1e-4)
    summary = json.loads((out / "summary.json").read_text())["summary"]
    for variant in {r["variant"] for r in rows}:
        mean = np.mean([float(r["psnr_y"]) for r in rows if r["variant"] == variant])
        assert summary[variant]["overall"]["psnr_y"] == pytest.approx(mean, abs=1e-9)
        assert f"{mean:.2f}" in (out / "summary.md").read_text()


@pytest.mark.parametrize("override", ["num_crops=-1", "crop_size=0", "tile=-5"])
def test_eval_refuses_out_of_range_options(tmp_path, tiny_ckpt, override):
    from sftgan_lit.config import ConfigError

    cfg = compose_exact("eval", [f"checkpoints=[{tiny_ckpt}]", f"out={tmp_path / 'ev'}", override, *TINY_DATA])
    with pytest.raises(ConfigError, match=re.escape(override.split("=")[0] + "=")):
        evaluate(cfg)


def test_an_image_too_small_to_score_is_that_files_failure_and_the_rest_are_scored(tmp_path, tiny_ckpt):
    """SSIM's window once aborted the whole eval (exit 2) on one small image, without naming it."""
    folder = tmp_path / "hr"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, size in (("ok.png", 32), ("small.png", 12)):
        Image.fromarray((rng.random((size, size, 3)) * 255).astype(np.uint8)).save(folder / name)
    cfg = compose_exact(
        "eval",
        [f"images={folder}", f"checkpoints=[{tiny_ckpt}]", "prior=uniform", "lpips_net=null", f"out={tmp_path / 'r'}"],
    )
    result, _ = evaluate(cfg)
    assert list(result["failures"]) == [str(folder / "small.png")]
    assert (
        "12x12 is too small to score: SSIM needs 19x19 with a 4 px border (after cutting to the scale, x4)"
        in result["failures"][str(folder / "small.png")]
    )
    with open(tmp_path / "r" / "per_image.csv") as f:
        assert {row["image"] for row in csv.DictReader(f)} == {"ok.png"}


# --------------------------------------------------------------------------- benchmark sets


def write_set(folder, hr_names, lr=None, lr_name="{stem}", size=106, seed=0, bad_lr=()):
    """HR photos cut from skimage's astronaut (``size`` px, not a multiple of 4: modcrop matters) and, in ``lr``, their
    MATLAB-bicubic LR named ``lr_name``; ``bad_lr``: stems whose LR is the wrong size."""
    from skimage import data as skdata

    photo = skdata.astronaut()
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(hr_names):
        y, x = 37 * (i + seed) % 400, 53 * (i + seed) % 400
        hr = photo[y : y + size, x : x + size]
        Image.fromarray(hr).save(folder / name)
        if lr is not None:
            lr.mkdir(parents=True, exist_ok=True)
            cut = torch.from_numpy(hr[: size // 4 * 4, : size // 4 * 4]).permute(2, 0, 1).float() / 255
            small = (imresize(cut, 0.25).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
            stem = name.rsplit(".", 1)[0]
            if stem in bad_lr:
                small = small[:-2]
            Image.fromarray(small).save(lr / f"{lr_name.format(stem=stem, base=stem[:-3], scale=4)}.png")


def test_benchmark_sets_in_their_layouts_get_a_table_each_and_the_missing_are_named(tmp_path, tiny_ckpt):
    from scipy.io import savemat

    root = tmp_path / "sr"
    write_set(root / "Set5" / "GTmod12", ["baby.png", "bird.png"], root / "Set5" / "LRbicx4")  # BasicSR
    write_set(root / "Set14" / "HR", ["0801.png"], root / "Set14" / "LR_bicubic" / "X4", "{stem}x4")  # DIV2K names
    srf = root / "Urban100" / "image_SRF_4"  # SelfExSR: HR and LR side by side, other methods' files beside them
    write_set(srf, ["img_001_HR.png", "img_002_HR.png"], srf, "{base}_LR")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(srf / "img_001_SRCNN.png")
    write_set(root / "OST300" / "building", ["a.png"], seed=3)  # class folders, no LR: MATLAB bicubic of the HR
    write_set(root / "OST300" / "plant", ["b.png", "c.png"], seed=5)
    write_set(root / "General100" / "HR", ["ok.png", "off.png"], root / "General100" / "LR", bad_lr=("off",))
    rng = np.random.default_rng(0)
    a = rng.normal(size=(36, 36))
    savemat(tmp_path / "niqe.mat", {"mu_prisparam": rng.normal(size=(1, 36)), "cov_prisparam": a @ a.T / 36})
    cfg = compose_exact(
        "eval",
        [
            f"checkpoints=[{tiny_ckpt}]",
            "prior=uniform",
            "compare_priors=[prior]",
            f"out={tmp_path / 'r'}",
            "benchmark=[set5,set14,urban100,ost300,bsd100,general100]",
            f"benchmark_root={root}",
            "metrics=[niqe]",
            f"niqe_params={tmp_path / 'niqe.mat'}",
        ],
    )
    result, objs = evaluate(cfg)
    failures = result["failures"]
    assert set(failures) == {"set bsd100", "general100/off.png"}
    assert "no folder BSD100 or BSDS100 or B100 or bsd100 under" in failures["set bsd100"]
    assert "LR 26x24 does not match its HR" in failures["general100/off.png"]
    sets = {r["set"] for r in objs["rows"]}
    assert sets == {"set5", "set14", "urban100", "ost300", "general100"}
    # each set's images as its layout names them; the given LR is used where there is one
    images = {(r["set"], r["image"]) for r in objs["rows"] if r["variant"] == "bicubic"}
    assert ("urban100", "img_001_HR.png") in images and ("urban100", "img_001_SRCNN.png") not in images
    assert {r["category"] for r in objs["rows"] if r["set"] == "ost300"} == {"building", "plant"}
    # bicubic of the given LR, scored independently (the HR cut to 4, 4 px of border)
    hr = read_image(root / "Set5" / "GTmod12" / "baby.png")[:104, :104]
    lr = read_image(root / "Set5" / "LRbicx4" / "baby.png")
    lr_t = torch.from_numpy(lr.copy()).permute(2, 0, 1).float() / 255
    up = (imresize(lr_t, 4).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    row = next(r for r in objs["rows"] if r["set"] == "set5" and r["image"] == "baby.png" and r["variant"] == "bicubic")
    assert row["psnr_y"] == pytest.approx(psnr_y_np(up, hr, 4), abs=1e-6)
    assert row["niqe"] > 0 and np.isfinite(row["niqe"])
    summary = (tmp_path / "r" / "summary.md").read_text()
    for name in ("set5", "set14", "urban100", "ost300", "general100"):
        assert f"\n## {name}\n" in summary and (tmp_path / "r" / name / "per_image.csv").is_file()
    assert "| method | PSNR-Y ↑ | SSIM-Y ↑ | NIQE ↓ |" in summary
    assert "- bsd100: not evaluated" in summary and "| building | 1 |" in summary


def test_benchmark_options_that_cannot_work_are_configuration_errors(tmp_path, tiny_ckpt):
    from sftgan_lit.config import ConfigError

    base = [f"checkpoints=[{tiny_ckpt}]", "prior=uniform", f"out={tmp_path / 'r'}"]
    for extra, message in (
        (["benchmark=set6", f"benchmark_root={tmp_path}"], r"benchmark=set6: unknown set set6; choose from set5, "),
        (["benchmark=set5"], r"benchmark_root=None: must be the folder holding the sets"),
        (["benchmark=set5", f"benchmark_root={tmp_path / 'no'}"], r"benchmark_root=.*: not a folder"),
        (["metrics=[lpips,fid]"], r"metrics=\['lpips', 'fid'\]: must be auto or a list of lpips, dists, niqe, pi"),
    ):
        with pytest.raises(ConfigError, match=message):
            evaluate(compose_exact("eval", base + extra))


def test_the_papers_comma_form_of_benchmark_is_one_list_not_a_sweep(tmp_path, tiny_ckpt):
    from sftgan_lit.cli import sets_as_one_list
    from sftgan_lit.config import ConfigError

    argv = ["benchmark=set5,set6", "benchmark_root=/x", "checkpoints=[a,b]"]
    assert sets_as_one_list(argv) == ["benchmark=[set5,set6]", "benchmark_root=/x", "checkpoints=[a,b]"]
    assert sets_as_one_list(["benchmark=[set5,set14]"]) == ["benchmark=[set5,set14]"]
    args = sets_as_one_list(["benchmark=set5,set6", f"benchmark_root={tmp_path}"])
    cfg = compose_exact("eval", [*args, f"checkpoints=[{tiny_ckpt}]", "prior=uniform", f"out={tmp_path / 'r'}"])
    with pytest.raises(ConfigError, match=r"benchmark=\['set5', 'set6'\]: unknown set set6"):
        evaluate(cfg)
