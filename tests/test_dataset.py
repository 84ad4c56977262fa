"""Triplets: crop/flip/rescale keep HR, labels and prior aligned; LR is imresize(HR); background mixing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sftgan_lit import imresize
from sftgan_lit.data import FileReader, PairedDataset, StoreReader, TripletDataset, folder_items, paired_items, prepare
from sftgan_lit.data.store import Store
from sftgan_lit.data.transforms import rescale_crop_image, rescale_crop_nearest
from sftgan_lit.priors import LabelPrior, UniformPrior

from helpers import PALETTE, block_scene, write_folder


@pytest.mark.parametrize("scale,top,left", [(0.5, 0, 0), (0.7, 13, 5), (0.9, 30, 41), (0.6, 0, 22), (1.0, 3, 7)])
def test_rescale_crop_equals_resizing_the_whole_image(scale, top, left):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (100, 130, 3), dtype=np.uint8)
    full = imresize(torch.from_numpy(image).permute(2, 0, 1).double() / 255, scale).clamp(0, 1)
    size = 24
    top, left = min(top, full.shape[1] - size), min(left, full.shape[2] - size)
    crop = rescale_crop_image(image, scale, top, left, size)
    torch.testing.assert_close(crop.double(), full[:, top : top + size, left : left + size], atol=2e-6, rtol=0)


def test_nearest_rescale_follows_pixel_centres():
    labels = np.arange(10, dtype=np.uint8)[None, :].repeat(4, 0)
    out = rescale_crop_nearest(labels, 0.5, 0, 0, 2)
    # output pixel x covers input [2x, 2x+2): its centre 2x+1 rounds to input index 2x+1
    assert out[0].tolist() == [1, 3]


def _store(tmp_path, n=4, h=64, w=80, block=16, prefix="", background=False):
    images, labels = write_folder(tmp_path / f"src{prefix}", n, h, w, block, prefix)
    items = folder_items(images, None if background else labels, category=0 if background else -1)
    prepare(items, tmp_path / f"store{prefix}", LabelPrior(), background=background, min_size=16, progress=False)
    return StoreReader(Store(tmp_path / f"store{prefix}", verify=True))


def test_training_triplets_stay_aligned_pixel_by_pixel(tmp_path):
    reader = _store(tmp_path, block=16)
    ds = TripletDataset(reader, LabelPrior(), crop_size=32, scales=(1.0, 0.8, 0.6, 0.5), rotate=True)
    torch.manual_seed(0)
    palette = torch.from_numpy(PALETTE).float() / 255
    for _ in range(40):
        s = ds[0]
        hr, lab, prior = s["hr"], s["labels"], s["prior"]
        assert hr.shape == (3, 32, 32) and s["lr"].shape == (3, 8, 8) and prior.shape == (8, 32, 32)
        # the prior is exactly the one-hot of the labels that came with this crop
        torch.testing.assert_close(prior, torch.nn.functional.one_hot(lab.long(), 8).permute(2, 0, 1).float())
        # away from block edges (bicubic mixes neighbours there, up to 2 output pixels at scale 0.5) and
        # from the crop's border (whose outside neighbours are unknown), the HR colour is the label's colour
        lab_f = lab[None, None].float()
        pool = torch.nn.functional.max_pool2d
        interior = (pool(lab_f, 7, 1, 3) == -pool(-lab_f, 7, 1, 3))[0, 0]
        interior[:3], interior[-3:], interior[:, :3], interior[:, -3:] = False, False, False, False
        assert interior.float().mean() > 0.1
        expected = palette[lab.long()].permute(2, 0, 1)
        assert (hr - expected).abs()[:, interior].max() < 2e-3
        torch.testing.assert_close(s["lr"], imresize(hr, 1 / 4).clamp(0, 1))
        assert s["category"] == torch.bincount(lab.flatten().long(), minlength=8).argmax()


def test_store_and_files_give_the_same_samples(tmp_path):
    reader = _store(tmp_path)
    images, labels = tmp_path / "src" / "images", tmp_path / "src" / "labels"
    files = FileReader(folder_items(images, labels), 8)
    for a, b in ((reader, files),):
        for seed in range(5):
            torch.manual_seed(seed)
            sa = TripletDataset(a, LabelPrior(), crop_size=32)[seed % 4]
            torch.manual_seed(seed)
            sb = TripletDataset(b, LabelPrior(), crop_size=32)[seed % 4]
            for k in ("hr", "lr", "prior", "labels", "category"):
                torch.testing.assert_close(sa[k], sb[k])


def test_background_mixing_ratio(tmp_path):
    reader = _store(tmp_path, n=3)
    bg = _store(tmp_path, n=2, prefix="bg", background=True)
    ds = TripletDataset(
        reader, LabelPrior(), crop_size=16, scales=(1.0,), background=bg, bg_ratio=0.25, epoch_length=2000
    )
    torch.manual_seed(0)
    from_bg = 0
    for i in range(len(ds)):
        s = ds[i]
        if s["path"].startswith("bg"):
            from_bg += 1
            assert s["category"] == 0 and (s["labels"] == 0).all() and (s["prior"][0] == 1).all()
    # binomial(2000, 0.25): std 0.0097, so +-0.035 is a 3.6-sigma band
    assert abs(from_bg / len(ds) - 0.25) < 0.035


def test_validation_is_deterministic_centre_crop_or_whole_image(tmp_path):
    reader = _store(tmp_path, h=64, w=84)  # 84 -> modcrop 80
    ds = TripletDataset(reader, UniformPrior("u"), crop_size=32, train=False)
    a, b = ds[1], ds[1]
    torch.testing.assert_close(a["hr"], b["hr"])
    src = torch.from_numpy(reader.store.image(1).astype(np.float32) / 255).permute(2, 0, 1)
    torch.testing.assert_close(a["hr"], src[:, 16:48, 24:56])
    torch.testing.assert_close(a["prior"], torch.full((8, 32, 32), 1 / 8))
    whole = TripletDataset(reader, UniformPrior("u"), crop_size=None, train=False)[0]
    assert whole["hr"].shape == (3, 64, 80) and whole["lr"].shape == (3, 16, 20)


def test_paired_layout_uses_the_given_lr(tmp_path):
    hr_dir, lr_dir = tmp_path / "HR", tmp_path / "LR"
    hr_dir.mkdir()
    lr_dir.mkdir()
    img, _ = block_scene(67, 50, 8, seed=3)  # not a multiple of 4: HR is cut to 4x the LR
    Image.fromarray(img).save(hr_dir / "baby.png")
    lr = np.full((16, 12, 3), 7, np.uint8)
    Image.fromarray(lr).save(lr_dir / "babyx4.png")
    ds = PairedDataset(paired_items(hr_dir, lr_dir, lr_suffix="x4"), UniformPrior("u"))
    s = ds[0]
    assert s["hr"].shape == (3, 64, 48) and s["lr"].shape == (3, 16, 12)
    torch.testing.assert_close(s["lr"], torch.full((3, 16, 12), 7 / 255))
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(lr_dir / "babyx4.png")
    with pytest.raises(ValueError, match="is not 1/4 of its HR"):
        ds[0]


def test_crop_larger_than_image_is_an_error_naming_the_file(tmp_path):
    reader = _store(tmp_path, h=32, w=40)
    with pytest.raises(ValueError, match="000.png.*smaller than the crop size 48"):
        TripletDataset(reader, LabelPrior(), crop_size=48)[0]


def test_labels_prior_without_label_maps_fails_at_setup_naming_the_key(tmp_path):
    images, _ = write_folder(tmp_path / "src", 2)
    with pytest.raises(ValueError, match=r"needs label maps.*data.train.labels"):
        TripletDataset(FileReader(folder_items(images), 8), LabelPrior())
    TripletDataset(FileReader(folder_items(images), 8), UniformPrior("none"))  # no labels needed
