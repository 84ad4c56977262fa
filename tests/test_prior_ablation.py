"""The prior ablation's fast guard: with the prior, SFT draws textures the LR cannot show; without, it cannot."""

from __future__ import annotations

import numpy as np
import torch

from sftgan_lit.data.ambiguous import AMBIGUOUS_CLASSES, ambiguity, make_ambiguous_scene, pattern
from sftgan_lit.data.demo import _photo
from sftgan_lit.experiments.prior_ablation import run_ablation
from sftgan_lit.imresize import imresize


def test_classes_differ_at_hr_but_not_at_lr():
    report = ambiguity(_photo("camera"))
    assert report["hr"] > 20 and report["lr"] < 0.2 and report["ratio"] < 0.01  # grey levels, 0-255
    rng = np.random.default_rng(0)
    image, labels = make_ambiguous_scene(rng, 64, [_photo("camera")])
    assert set(np.unique(labels)) <= set(range(len(AMBIGUOUS_CLASSES)))
    # a period-2 pattern on a constant base vanishes exactly under MATLAB's x1/4 bicubic
    flat = torch.full((1, 1, 32, 32), 0.5, dtype=torch.float64)
    for c in range(1, len(AMBIGUOUS_CLASSES)):
        textured = flat * (1 + 0.3 * torch.from_numpy(pattern(c, 32, 32)).double())
        torch.testing.assert_close(imresize(textured, 0.25)[..., 2:-2, 2:-2], imresize(flat, 0.25)[..., 2:-2, 2:-2])


def test_sft_uses_the_prior_where_the_lr_is_ambiguous(tmp_path):
    # seed 0 at half the ablation's budget (900 iterations, deterministic on CPU): sft 42.6 dB, none 19.3 dB.
    # At this budget SFT does not leave the "no texture" solution on every seed (seed 2 needs ~1800, see
    # README), so the seed is pinned; a change that breaks conditioning cannot pass at any seed. Without a
    # prior the ambiguous regions are bounded by what the LR holds (about 19-20 dB however long it trains),
    # so `none` gets a third of the budget.
    variants = {
        "sft": ["sft=every_block", "trainer.max_steps=900", "module.scheduler.milestones=[600]"],
        "none": ["sft=none", "trainer.max_steps=300", "module.scheduler.milestones=[200]"],
    }
    results = run_ablation(tmp_path, ["seed=0"], variants=variants, gan=False)
    sft, none = results["models"]["sft"]["psnr_y"], results["models"]["none"]["psnr_y"]
    assert sft["ambiguous"] - none["ambiguous"] > 10.0
    swap = results["swap_test"]
    for a, row in swap.items():
        others = [v for b, v in row.items() if b != a]
        assert row[a] > 0.2 and max(abs(v) for v in others) < 0.05, swap
    assert (tmp_path / "report.md").is_file() and (tmp_path / "report.png").stat().st_size > 10_000
