"""The second-order degradation model as training uses it: its defaults are Real-ESRGAN's, every range is
checked when the config is built, a sample's LR depends on its own draw only, the training-pair pool mixes
and resumes, the datamodule makes the LR (and the sharpened target) on the device, and real LR/HR pairs train."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from sftgan_lit.config import ConfigError
from sftgan_lit.data.datamodule import collate
from sftgan_lit.data.dataset import PairedDataset
from sftgan_lit.data.pool import TrainingPairPool
from sftgan_lit.data.sources import paired_items
from sftgan_lit.degradations import RealESRGANSchema, SecondOrder, make_degradation
from sftgan_lit.losses import SFTGANObjective
from sftgan_lit.priors import LabelPrior, UniformPrior

from helpers import TINY, TINY_MODEL, TINY_TRAIN, compose, tiny_demo_datamodule


def _params(degradation, seeds):
    return collate([degradation.draw(np.random.default_rng(s)) for s in seeds])


def test_defaults_are_real_esrgans_train_realesrnet_x4plus():
    """Real-ESRGAN v0.3.0, options/train_realesrnet_x4plus.yml, and the values its dataset and model hard-code."""
    c = RealESRGANSchema()
    first, second, final = c.first, c.second, c.final
    assert (first.resize_prob, first.resize_range, first.gaussian_noise_prob) == ([0.2, 0.7, 0.1], [0.15, 1.5], 0.5)
    assert (first.noise_range, first.poisson_scale_range, first.gray_noise_prob) == ([1, 30], [0.05, 3], 0.4)
    assert first.jpeg_range == [30, 95] and first.blur.prob == 1.0
    assert (second.blur.prob, second.resize_prob, second.resize_range) == (0.8, [0.3, 0.4, 0.3], [0.3, 1.2])
    assert (second.noise_range, second.poisson_scale_range, second.gray_noise_prob) == ([1, 25], [0.05, 2.5], 0.4)
    assert second.jpeg_range == [30, 95] and second.gaussian_noise_prob == 0.5
    for blur, sigma in ((first.blur, [0.2, 3]), (second.blur, [0.2, 1.5])):
        assert blur.kernel_list == [
            "iso",
            "aniso",
            "generalized_iso",
            "generalized_aniso",
            "plateau_iso",
            "plateau_aniso",
        ]
        assert blur.kernel_prob == [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]
        assert (blur.sigma, blur.betag_range, blur.betap_range, blur.sinc_prob) == (sigma, [0.5, 4], [1, 2], 0.1)
        assert blur.kernel_sizes == list(range(7, 22, 2))
    assert (final.sinc_prob, final.jpeg_first_prob, c.gt_usm, c.pool_size) == (0.8, 0.5, True, 180)


@pytest.mark.parametrize(
    "override, key",
    [
        ({"first": {"blur": {"sigma": [-1.0, 2.0]}}}, "data.degradation.first.blur.sigma"),
        ({"second": {"gray_noise_prob": 1.5}}, "data.degradation.second.gray_noise_prob"),
        ({"first": {"jpeg_range": [0, 95]}}, "data.degradation.first.jpeg_range"),
        ({"second": {"jpeg_range": [30, 101]}}, "data.degradation.second.jpeg_range"),
        ({"final": {"kernel_sizes": [7, 8]}}, "data.degradation.final.kernel_sizes"),
        ({"first": {"resize_prob": [0.5, 0.5, 0.5]}}, "data.degradation.first.resize_prob"),
        ({"second": {"blur": {"kernel_list": ["iso", "box"], "kernel_prob": [0.5, 0.5]}}}, "blur.kernel_list"),
        ({"first": {"noise_rang": [1, 2]}}, "data.degradation.first.noise_rang"),
        ({"pool_size": -1}, "data.degradation.pool_size"),
    ],
)
def test_a_value_out_of_range_is_refused_naming_its_key(override, key):
    with pytest.raises(ConfigError) as err:
        make_degradation({"kind": "realesrgan", **override}, 4)
    assert key in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (
            ["degradation=realesrgan", "data.degradation.first.blur.kernel_sizes=[7,10]"],
            "data.degradation.first.blur.kernel_sizes=[7, 10]: must be a non-empty list of odd kernel sizes",
        ),
        (["data.degradation.kind=jpeg"], "data.degradation.kind=jpeg: must be one of bicubic, realesrgan"),
    ],
)
def test_the_command_line_range_error_exits_2_before_training(capsys, overrides, expected):
    from sftgan_lit.cli import _setup_errors_exit
    from sftgan_lit.train import train

    cfg = compose([*TINY, *TINY_TRAIN, *overrides])
    with pytest.raises(SystemExit) as exit_info:
        _setup_errors_exit("sftgan-train", train, cfg)
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(lines) == 1 and expected in lines[0], lines


def test_each_sample_is_degraded_by_its_own_draw_only():
    """A sample's LR is the same alone or in any batch (the streaming store batches in another order) and again
    from the same draw (a resume); it is 8-bit and 1/scale of the HR."""
    d = SecondOrder(4)
    hr = torch.rand(3, 3, 48, 40, generator=torch.Generator().manual_seed(0))
    seeds = [[1, 0, 0], [1, 0, 1], [1, 0, 2]]
    lr, target = d(hr, _params(d, seeds), training=True)
    assert lr.shape == (3, 3, 12, 10) and target.shape == hr.shape  # gt_usm: the sharpened HR
    assert torch.equal(lr, (lr * 255).round() / 255) and lr.min() >= 0 and lr.max() <= 1
    for i in range(3):
        alone, _ = d(hr[i : i + 1], _params(d, [seeds[i]]), training=True)
        assert torch.equal(alone[0], lr[i])
    reversed_lr, _ = d(hr.flip(0), _params(d, seeds[::-1]), training=True)
    assert torch.equal(reversed_lr.flip(0), lr)
    again, _ = d(hr, _params(d, seeds), training=True)
    assert torch.equal(again, lr)
    assert not torch.equal(d(hr, _params(d, [[2, 0, 0], [2, 0, 1], [2, 0, 2]]), True)[0], lr)
    no_usm = make_degradation({"kind": "realesrgan", "gt_usm": False}, 4)
    assert no_usm(hr, _params(no_usm, seeds), training=True)[1] is None


def test_tiny_crops_survive_strong_downscales():
    """16 px crops downscaled to a few pixels: the 21-tap kernels still reflect (``filter2d``)."""
    d = make_degradation({"kind": "realesrgan", "first": {"resize_prob": [0, 1, 0]}, "gt_usm": False}, 4)
    params = _params(d, range(16))
    assert min(int(16 * st["resize1"]) for st in params["steps"]) < 5  # narrower than a kernel's half
    lr, _ = d(torch.rand(16, 3, 16, 16), params, training=True)
    assert lr.shape == (16, 3, 4, 4) and torch.isfinite(lr).all()


def test_the_pool_mixes_batches_and_resumes_exactly():
    def batch(k):
        return {"hr": torch.full((2, 1, 2, 2), float(k)), "path": [f"{k}a", f"{k}b"], "seed": torch.tensor([k, k])}

    pool = TrainingPairPool(4)
    assert pool(batch(1), 1)["path"] == ["1a", "1b"] and pool(batch(2), 2)["path"] == ["2a", "2b"]  # filling
    out = pool(batch(3), 3)
    assert set(out["path"]) <= {"1a", "1b", "2a", "2b"} and len(set(out["path"])) == 2
    assert torch.equal(out["hr"][:, 0, 0, 0], torch.tensor([float(p[0]) for p in out["path"]]))
    held = set(pool.entries["path"])
    assert held == {"1a", "1b", "2a", "2b", "3a", "3b"} - set(out["path"])
    resumed = TrainingPairPool(4)
    resumed.load_state_dict(pool.state_dict())
    a, b = pool(batch(4), 4), resumed(batch(4), 4)
    assert a["path"] == b["path"] and torch.equal(a["hr"], b["hr"])


def test_the_dataset_draws_in_the_worker_and_leaves_crops_as_they_were(tmp_path):
    dm = tiny_demo_datamodule(tmp_path)
    bicubic = dm.datasets["train"]
    real = copy.copy(bicubic)  # the same reader, background mix and settings
    real.degradation = SecondOrder(4)
    key = (7, (3, 1, 5))
    a, b = bicubic[key], real[key]
    assert torch.equal(a["hr"], b["hr"]) and "lr" in a and "lr" not in b  # same crop; LR made on the device
    assert set(b["degradation"]) == {"kernel1", "kernel2", "sinc", "steps"}
    assert b["degradation"]["steps"] == real[key]["degradation"]["steps"]
    assert b["degradation"]["steps"] != real[(7, (3, 1, 6))]["degradation"]["steps"]


def test_the_datamodule_degrades_on_the_device(tmp_path):
    dm = tiny_demo_datamodule(
        tmp_path,
        val={"layout": "demo"},
        degradation={"kind": "realesrgan", "pool_size": 0},
        batch_size=2,
        num_workers=0,
    )

    class Trainer:
        training = True
        world_size, global_rank = 1, 0
        fit_loop = None

    dm.trainer = Trainer()
    batch = next(iter(dm.train_dataloader()))
    out = dm.on_after_batch_transfer(batch, 0)
    assert out["lr"].shape == (2, 3, 8, 8) and out["hr_usm"].shape == (2, 3, 32, 32)
    assert out["prior"].shape == (2, 8, 32, 32) and "degradation" not in out
    Trainer.training = False
    val = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    assert "hr_usm" not in val and val["lr"].shape[-1] * 4 == val["hr"].shape[-1]


def test_a_cached_segmenter_prior_is_refused_with_a_degradation(tmp_path):
    from sftgan_lit.data import SFTGANDataModule
    from sftgan_lit.priors import SegmenterPrior

    with pytest.raises(ConfigError, match="set prior.mode=online"):
        SFTGANDataModule(SegmenterPrior(weights="x.pth", mode="cached"), degradation={"kind": "realesrgan"})


def test_the_pixel_and_perceptual_terms_compare_with_the_sharpened_target():
    objective = SFTGANObjective(w_pix=1.0, w_percep=0.0, w_gan=0.0, w_cls_g=0.0)
    sr, hr = torch.zeros(1, 3, 8, 8), torch.full((1, 3, 8, 8), 0.5)
    assert objective.generator_terms({"hr": hr}, sr, None)["pix"] == pytest.approx(0.5)
    terms = objective.generator_terms({"hr": hr, "hr_usm": torch.full_like(hr, 0.25)}, sr, None)
    assert terms["pix"] == pytest.approx(0.25)


# ------------------------------------------------------------------ real LR/HR pairs


def _pairs(root, sizes):
    """HR images that are the nearest x4 of their LR, so a crop's alignment can be read back."""
    (root / "hr").mkdir(parents=True)
    (root / "lr").mkdir()
    rng = np.random.default_rng(0)
    for name, (lh, lw), hr_extra in sizes:
        lr = rng.integers(0, 256, (lh, lw, 3), dtype=np.uint8)
        hr = np.repeat(np.repeat(lr, 4, 0), 4, 1)
        hr = np.pad(hr, ((0, hr_extra), (0, hr_extra), (0, 0)), mode="edge")
        Image.fromarray(hr).save(root / "hr" / f"{name}.png")
        Image.fromarray(lr).save(root / "lr" / f"{name}.png")


def test_paired_training_crops_stay_aligned_and_bad_pairs_are_refused_by_name(tmp_path, caplog):
    _pairs(tmp_path, [("a", (12, 10), 0), ("b", (9, 11), 3), ("c", (10, 10), 4)])  # c: HR 44 is not 4 x 10
    items = paired_items(tmp_path / "hr", tmp_path / "lr")
    with pytest.raises(ValueError, match="needs label maps"):
        PairedDataset(items, LabelPrior(), 4, crop_size=16, train=True)
    ds = PairedDataset(items, UniformPrior("uniform"), 4, crop_size=16, train=True, epoch_length=20)
    assert [i.name for i in ds.items] == ["a.png", "b.png"] and "c.png" in ds.refused
    assert "c.png" in caplog.text and "is not 1/4 of its HR" in caplog.text
    for position in range(20):
        s = ds[(position % 2, (0, 0, position))]
        assert s["hr"].shape == (3, 16, 16) and s["lr"].shape == (3, 4, 4)
        up = s["lr"].repeat_interleave(4, 1).repeat_interleave(4, 2)
        assert torch.equal(up, s["hr"])  # the LR window under the HR crop, flipped alike


def test_a_paired_training_split_trains(tmp_path):
    from sftgan_lit.train import train

    _pairs(tmp_path, [(f"{k}", (16, 16), 0) for k in range(4)])
    overrides = [
        "data=paired",
        f"data.train.hr={tmp_path / 'hr'}",
        f"data.train.lr={tmp_path / 'lr'}",
        "prior=uniform",
        f"paths.output_dir={tmp_path / 'run'}",
    ]
    tiny_data = ["data.batch_size=2", "data.num_workers=0", "data.crop_size=32"]
    metrics, objects = train(compose([*TINY_MODEL, *tiny_data, *TINY_TRAIN, *overrides]))
    assert objects["trainer"].global_step == 2 and np.isfinite(metrics["train/loss_g"])
