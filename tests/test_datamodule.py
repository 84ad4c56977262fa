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

from helpers import TINY, TINY_TRAIN, compose, tiny_demo_datamodule, tiny_segmenter_file


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
    batch["seed"] = torch.arange(4)  # each training sample's own seed (what TripletDataset adds)
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
    dm = tiny_demo_datamodule(tmp_path / "s", num_workers=2, batch_size=4)
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


def _mixed_folder(root):
    from helpers import write_folder

    images, labels = write_folder(root, 3, 64, 80)
    for i, (h, w) in enumerate([(72, 96), (48, 64)]):  # other sizes in the same folder
        one, one_labels = write_folder(root / f"extra{i}", 1, h, w, prefix=f"x{i}")
        (one / f"x{i}000.png").rename(images / f"x{i}000.png")
        (one_labels / f"x{i}000.png").rename(labels / f"x{i}000.png")
    return images, labels


def test_holdout_indices_are_spread_and_leave_training_images():
    from sftgan_lit.data.datamodule import holdout_indices

    assert holdout_indices(10, 0.1) == [5]
    assert holdout_indices(10, 0.3) == [1, 5, 8]
    assert holdout_indices(5, 2) == [1, 3]
    assert holdout_indices(3, 0.01) == [1]  # at least one
    for bad in ((1, 0.1), (4, 4)):
        with pytest.raises(ValueError, match="data.val_holdout"):
            holdout_indices(*bad)


def test_readme_folder_layout_trains_with_a_held_out_val_split_of_mixed_sizes(tmp_path, caplog):
    """The README's ``data=folder prior=labels data.train.images=... data.train.labels=...`` with no val
    folder, images of three sizes: training runs, validation is the held-out images (said in the log),
    whole images of different sizes are validated one per batch, and no image is in both splits."""
    import logging

    from sftgan_lit.train import train

    from helpers import TINY_MODEL

    images, labels = _mixed_folder(tmp_path / "src")
    cfg = compose(
        config_name="train",
        overrides=[
            "data=folder",
            "prior=labels",
            f"data.train.images={images}",
            f"data.train.labels={labels}",
            f"data.store_root={tmp_path / 'stores'}",
            "data.val_holdout=2",
            "data.crop_size=32",
            "data.num_workers=0",
            "data.batch_size=2",
            "data.val_batch_size=4",
            *TINY_MODEL,
            *[o for o in TINY_TRAIN if not o.startswith("trainer.limit_val")],
            f"paths.output_dir={tmp_path / 'run'}",
        ],
    )
    with caplog.at_level(logging.INFO):
        metrics, objects = train(cfg)
    assert "validating on 2 of the 5 images of data.train, held out of training" in caplog.text
    assert "whole images of different (or unknown) sizes: validated one per batch" in caplog.text
    dm = objects["datamodule"]
    train_names = {e.file for e in dm.datasets["train"].reader.store.entries}
    val_names = {e.file for e in dm.datasets["val"].reader.store.entries}
    assert len(train_names) == 3 and len(val_names) == 2 and not train_names & val_names
    assert {(e.height, e.width) for e in dm.datasets["val"].reader.store.entries} == {
        (64, 80),
        (72, 96),
    }  # 001.png, x0000.png
    assert np.isfinite(metrics["val/psnr_y"])


def test_a_missing_label_map_leaves_that_image_out_of_a_file_split(tmp_path, caplog):
    import logging

    from hydra.utils import instantiate

    images, labels = _mixed_folder(tmp_path / "src")
    (labels / "001.png").unlink()
    cfg = compose(
        config_name="train",
        overrides=[
            "data=folder",
            f"data.train.images={images}",
            f"data.train.labels={labels}",
            "data.store_root=unused",
            "data.use_store=false",
            "data.val_holdout=0",
            "data.crop_size=32",
            "data.num_workers=0",
            "data.batch_size=2",
        ],
    )
    dm = instantiate(cfg.data, prior=instantiate(cfg.prior))
    with caplog.at_level(logging.ERROR):
        dm.setup()
    assert "001.png: left out of the train split" in caplog.text and "no label map file" in caplog.text
    assert [i.name for i in dm.datasets["train"].reader.items] == ["000.png", "002.png", "x0000.png", "x1000.png"]
    assert "val" not in dm.datasets  # val_holdout=0: no validation
