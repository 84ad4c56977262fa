"""The main job (``python train.py``, experiment=demo) at toy size: two stages, both exports, the report."""

from __future__ import annotations

import json

from sftgan_lit.cli import report_hook
from sftgan_lit.experiments.demo_report import VARIANTS
from sftgan_lit.models import load_generator
from sftgan_lit.train import train

from helpers import TINY_DATA, compose

TOY = [
    *TINY_DATA,
    "model.generator.num_features=16",
    "model.generator.num_blocks=2",
    "model.generator.cond_channels=8",
    "model.generator.cond_hidden_channels=16",
    "model.generator.sft_hidden_channels=8",
    "model.discriminator.base_channels=4",
    "model.discriminator.input_size=32",
    "data.batch_size=8",
    "data.epoch_length=800",
    "trainer.limit_val_batches=1",
    "trainer.enable_progress_bar=false",
    "stages.fidelity.trainer.max_steps=700",
    "stages.fidelity.module.optimizer_g.lr=2e-3",
    "stages.fidelity.module.scheduler.milestones=[550]",
    "trainer.max_steps=20",
]


def test_two_stages_export_both_ends_and_report(tmp_path):
    cfg = compose([*TOY, f"paths.output_dir={tmp_path}"])
    metrics, objects = train(cfg)
    exports = objects["exports"]
    assert exports == {"fidelity": tmp_path / "generator_fidelity.pth", "gan": tmp_path / "generator.pth"}
    # stage 2 starts from stage 1's generator and trains it further, with D; stage 1 had no D
    first, final = load_generator(exports["fidelity"]), load_generator(exports["gan"])
    assert first.config_dict() == final.config_dict()
    assert "fidelity/train/loss_d" not in metrics and "gan/train/loss_d" in metrics
    report = report_hook(cfg, metrics, objects)
    for name in ("report.md", "report.json", "report.png"):
        assert (tmp_path / name).stat().st_size > 0
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["images"] == 2 and list(saved["metrics"]) == list(VARIANTS)
    assert {"psnr_y", "ssim_y", "psnr_y_ambiguous"} <= set(saved["metrics"]["stage 1"])
    assert set(saved["texture"]) == {"HR", *VARIANTS}
    assert [t["met"] for t in saved["targets"]] == [t["met"] for t in report["targets"]] and len(saved["targets"]) == 4
    # the recipe's first promise holds even at toy size: the fidelity stage beats bicubic
    gain = saved["metrics"]["stage 1"]["psnr_y"] - saved["metrics"]["bicubic"]["psnr_y"]
    assert gain > 0.5, saved["metrics"]


def test_demo_real_trains_both_models_and_reports_under_the_test_degradations(tmp_path):
    """experiment=demo_real at toy size: four stages, the bicubic and the degradation-trained exports, and the
    report under every test degradation (its targets are printed; at toy size they are not expected to hold)."""
    from sftgan_lit.experiments.real_report import TEST_DEGRADATIONS

    toy = [
        *TOY,
        "experiment=demo_real",
        "stages.fidelity.trainer.max_steps=20",
        "stages.real_fidelity.trainer.max_steps=6",
        "trainer.max_steps=4",
        "data.degradation.pool_size=16",
    ]
    cfg = compose([*toy, f"paths.output_dir={tmp_path}"])
    metrics, objects = train(cfg)
    assert set(objects["exports"]) == {"fidelity", "gan", "real_fidelity", "real_gan"}
    assert objects["stages"]["gan"]["datamodule"].degradation.name == "bicubic"
    assert objects["stages"]["real_gan"]["datamodule"].degradation.name == "realesrgan"
    report = report_hook(cfg, metrics, objects)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert list(saved["psnr_y"]) == list(TEST_DEGRADATIONS) and (tmp_path / "report.png").stat().st_size > 0
    assert [t["met"] for t in saved["targets"]] == [t["met"] for t in report["targets"]]
    # the test LRs differ from the clean one, and bicubic x4 of a degraded LR is further from the HR
    rows = saved["psnr_y"]
    assert all(rows[t]["bicubic"] < rows["clean"]["bicubic"] for t in ("JPEG q40", "noise 10", "blur", "draw 1"))
