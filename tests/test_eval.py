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
        "12x12 (after cutting to the scale) is too small to score: SSIM needs 19x19 at x4"
        in result["failures"][str(folder / "small.png")]
    )
    with open(tmp_path / "r" / "per_image.csv") as f:
        assert {row["image"] for row in csv.DictReader(f)} == {"ok.png"}
