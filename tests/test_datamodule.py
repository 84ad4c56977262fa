"""The datamodule end to end: demo data, every prior composes and trains a step, on-device paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sftgan_lit import imresize
from sftgan_lit.data import DemoConfig, SFTGANDataModule, generate_demo
from sftgan_lit.data.gpu_augment import GpuAugment
from sftgan_lit.priors import LabelPrior
from sftgan_lit.train import train

from helpers import TINY, TINY_TRAIN, compose, tiny_segmenter_file


def _cfg(overrides, tmp_path):
    return compose(config_name="train", overrides=[*TINY, *TINY_TRAIN, f"paths.output_dir={tmp_path}", *overrides])


def test_demo_generation_is_deterministic_and_labelled(tmp_path):
    cfg = DemoConfig(size=64, num_train=3, num_val=1, num_test=1, num_background=1, seed=5)
    a, b = generate_demo(tmp_path / "a", cfg), generate_demo(tmp_path / "b", cfg)
    files = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert len(files) == 2 * (3 + 1 + 1) + 1
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    other = generate_demo(
        tmp_path / "c", DemoConfig(size=64, num_train=3, num_val=1, num_test=1, num_background=1, seed=6)
    )
    assert (other / "train/images/0000.png").read_bytes() != (a / "train/images/0000.png").read_bytes()


@pytest.mark.parametrize("prior", ["labels", "none", "uniform"])
def test_each_prior_composes_and_trains_a_step(prior, tmp_path):
    metrics, objects = train(_cfg([f"prior={prior}"], tmp_path))
    assert objects["trainer"].global_step == 2  # one G and one D step
    assert np.isfinite(metrics["train/loss_g"]) and np.isfinite(metrics["val/psnr_y"])
    assert objects["datamodule"].prior.name == prior


@pytest.mark.parametrize("mode", ["cached", "online"])
def test_ade_outdoor_prior_trains_a_step_with_segmenter_weights(mode, tmp_path):
    arch = tiny_segmenter_file(tmp_path / "seg.pth")
    overrides = [
        "prior=ade_outdoor",
        f"prior.weights={tmp_path / 'seg.pth'}",
        f"prior.mode={mode}",
        f"+prior.arch.layers={arch['layers']}",
        f"+prior.arch.base_width={arch['base_width']}",
        f"data.store_root={tmp_path / 'stores'}",
    ]
    metrics, objects = train(_cfg(overrides, tmp_path))
    assert objects["trainer"].global_step == 2 and np.isfinite(metrics["train/loss_g"])
    stores = sorted(p.name for p in (tmp_path / "stores").iterdir())
    # cached: probabilities prepared per prior; online: the label stores suffice, the prior runs per batch
    assert any(s.startswith("train-ade_outdoor-") for s in stores) == (mode == "cached")  # keyed by the weights digest


def test_ade_outdoor_without_weights_names_the_config_key(tmp_path):
    with pytest.raises(FileNotFoundError, match="prior.weights"):
        train(_cfg(["prior=ade_outdoor", f"data.store_root={tmp_path / 'stores'}"], tmp_path))


def test_cached_segmenter_prior_equals_running_the_segmenter_on_the_lr(tmp_path):
    from sftgan_lit.priors import SegmenterPrior

    arch = tiny_segmenter_file(tmp_path / "seg.pth", seed=3)
    prior = SegmenterPrior(weights=str(tmp_path / "seg.pth"), arch=arch)
    dm = SFTGANDataModule(
        prior,
        val={"layout": "demo"},
        demo={"size": 64, "num_train": 1, "num_val": 2, "num_test": 1, "num_background": 1},
        store_root=str(tmp_path / "s"),
        num_workers=0,
        val_batch_size=2,
    )
    dm.prepare_data()
    dm.setup()
    batch = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    expected = prior.from_lr(imresize(batch["hr"], 1 / 4).clamp(0, 1))
    assert (batch["prior"] - expected).abs().max() <= 1 / 255 + 1e-6  # uint8 storage: one level at most


def test_gpu_augment_keeps_hr_prior_labels_aligned_and_remakes_lr():
    torch.manual_seed(0)
    labels = torch.randint(0, 8, (4, 8, 8)).repeat_interleave(4, 1).repeat_interleave(4, 2)
    hr = torch.rand(4, 3, 32, 32)
    hr[:, 0] = labels / 7.0  # channel 0 encodes the label, so alignment is checkable
    batch = {"hr": hr, "labels": labels, "prior": LabelPrior().from_labels(labels), "path": ["x"] * 4}
    out = GpuAugment(hflip=0.5, vflip=0.5, rot90=True, crop=24)(dict(batch))
    assert out["hr"].shape == (4, 3, 24, 24) and out["prior"].shape == (4, 8, 24, 24)
    torch.testing.assert_close(out["hr"][:, 0], out["labels"] / 7.0, atol=1e-5, rtol=0)
    torch.testing.assert_close(out["prior"], LabelPrior().from_labels(out["labels"]), atol=1e-5, rtol=0)
    assert not torch.equal(out["labels"], labels[:, :24, :24])  # something was applied
    dm = SFTGANDataModule(LabelPrior(), gpu_augment={"crop": 24})
    dm.trainer = type("T", (), {"training": True})()
    out = dm.on_after_batch_transfer(dict(batch), 0)
    torch.testing.assert_close(out["lr"], imresize(out["hr"], 1 / 4).clamp(0, 1))


def test_datamodule_with_workers_yields_batches(tmp_path):
    dm = SFTGANDataModule(
        LabelPrior(),
        train={"layout": "demo"},
        demo={"size": 64, "num_train": 4, "num_val": 1, "num_test": 1, "num_background": 2},
        store_root=str(tmp_path / "s"),
        num_workers=2,
        batch_size=4,
        crop_size=32,
        persistent_workers=False,
    )
    dm.prepare_data()
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["hr"].shape == (4, 3, 32, 32) and batch["lr"].shape == (4, 3, 8, 8)
    torch.testing.assert_close(batch["prior"].sum(1), torch.ones(4, 32, 32))


def test_ost_layout_with_background_and_paired_validation(tmp_path):
    from PIL import Image

    from sftgan_lit.data import ost_items

    from helpers import write_folder

    for cls in ("sky", "building"):
        write_folder(tmp_path / "tmp" / cls, 2, 64, 64, prefix=cls)
        (tmp_path / "OST").mkdir(exist_ok=True)
        (tmp_path / "tmp" / cls / "images").rename(tmp_path / "OST" / cls)
    bg, _ = write_folder(tmp_path / "DIV2K", 2, 64, 64, prefix="bg")
    hr, _ = write_folder(tmp_path / "Set5", 2, 64, 64, prefix="set")
    (tmp_path / "Set5_LR").mkdir()
    for p in sorted(hr.iterdir()):
        Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(tmp_path / "Set5_LR" / p.name)
    items = ost_items(tmp_path / "OST", LabelPrior().class_names)
    assert sorted({(i.name.split("/")[0], i.category) for i in items}) == [("building", 5), ("sky", 1)]
    cfg = compose(
        config_name="train",
        overrides=[
            "data=ost",
            f"data.train.root={tmp_path / 'OST'}",
            f"data.train.background.images={bg}",
            f"data.val.hr={hr}",
            f"data.val.lr={tmp_path / 'Set5_LR'}",
            f"data.store_root={tmp_path / 'stores'}",
            "prior=uniform",
            "data.crop_size=32",
            "data.num_workers=0",
            "data.batch_size=4",
            "data.bg_ratio=0.5",
        ],
    )
    from hydra.utils import instantiate

    dm = instantiate(cfg.data, prior=instantiate(cfg.prior))
    dm.prepare_data()
    dm.setup()
    torch.manual_seed(0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["hr"].shape == (4, 3, 32, 32) and set(batch["category"].tolist()) <= {0, 1, 5}
    val = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    assert (
        val["hr"].shape == (1, 3, 64, 64) and val["lr"].shape == (1, 3, 16, 16) and val["prior"].shape == (1, 8, 64, 64)
    )
    (tmp_path / "OST" / "cars").mkdir()
    with pytest.raises(ValueError, match=r"folders \['cars'\] are not classes"):
        ost_items(tmp_path / "OST", LabelPrior().class_names)
