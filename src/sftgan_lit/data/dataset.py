"""Datasets that turn readers into SFTGAN samples ``{'hr', 'lr', 'prior', 'category', 'path', 'labels'}``.

``hr`` (3, H, W) and ``lr`` (3, H/s, W/s) RGB float in [0, 1]; ``prior`` (C, H, W) rows summing to 1
(absent when an online prior computes it on the device); ``labels`` (H, W) uint8 class indices (255 =
void, all void when the source has no label maps; the datamodule makes them int64 on the device); ``category`` int64 (the OST folder's class, or the
most frequent class of the crop).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..categories import VOID_LABEL
from ..degradations import Bicubic, Degradation
from ..priors import Prior
from .io import ImageError, read_image, upright_size
from .readers import FileReader, Reader, Sample
from .sources import SourceItem
from .store import QUANT_LEVELS
from .transforms import dihedral, rescale_crop_image, rescale_crop_nearest, rescaled_size, to_float_chw

log = logging.getLogger(__name__)

ORIGINAL_SCALES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
# the degradation's parameters are drawn from their own stream of the sample's draw, so that the crop, flips
# and background draws are the same whichever degradation is chosen
DEGRADATION_STREAM = 1


def degradation_rng(draw: tuple[int, int, int]) -> np.random.Generator:
    """The generator of a sample's degradation parameters, from its draw ``(seed, epoch, position)``."""
    return np.random.default_rng([*(int(v) for v in draw), DEGRADATION_STREAM])


def random_dihedral(rng: np.random.Generator, hflip: bool, rotate: bool, *arrays: torch.Tensor | None) -> list:
    """The original's ``augment``: one horizontal flip (``hflip``), vertical flip and transpose (``rotate``) drawn
    from ``rng`` and applied alike to every tensor of ``arrays`` (on their last two dims; None stays None)."""
    flips = (hflip and rng.random() < 0.5, rotate and rng.random() < 0.5, rotate and rng.random() < 0.5)
    return [dihedral(a, *flips) if a is not None else None for a in arrays]


def _probs_tensor(probs: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(probs)).permute(2, 0, 1)
    return t.float().div_(QUANT_LEVELS) if probs.dtype == np.uint8 else t.float()


def _category(labels: torch.Tensor | None, prior: torch.Tensor | None, num_classes: int) -> int:
    """The crop's most frequent class (labels first, else the prior's mass); 0 (background) when unknown."""
    if labels is not None:
        counts = torch.bincount(labels[labels != VOID_LABEL].flatten().long(), minlength=num_classes)
        if counts.sum() > 0:
            return int(counts.argmax())
    if prior is not None:
        return int(prior.sum(dim=(-2, -1)).argmax())
    return 0


class TripletDataset(Dataset):
    """HR crops, their LR (or the parameters that make it on the device) and their priors, from one reader
    (plus an optional background reader).

    ``degradation`` makes the LR (``degradations``; MATLAB bicubic by default): in the worker when it can
    (``worker_lr``), else on the device from the parameters it draws here (``sample['degradation']``), from
    the sample's draw in training and from its index in evaluation (the same LR at every validation).

    Training (``train=True``): the original recipe: a random source scale from ``scales`` (image,
    labels and stored prior resized consistently), a random ``crop_size`` crop, horizontal flip and,
    with ``rotate``, vertical flip / transpose; with probability ``bg_ratio`` the sample comes from
    ``background`` instead (prior all background, category 0). Evaluation: a deterministic centre
    crop of ``crop_size``, or (``crop_size=None``) the whole image cut to a multiple of ``multiple``.
    """

    def __init__(
        self,
        reader: Reader,
        prior: Prior,
        scale: int = 4,
        crop_size: int | None = 96,
        train: bool = True,
        scales: Sequence[float] = ORIGINAL_SCALES,
        hflip: bool = True,
        rotate: bool = True,
        background: Reader | None = None,
        bg_ratio: float = 0.0,
        multiple: int = 8,
        make_lr_on_device: bool = False,
        epoch_length: int | None = None,
        degradation: Degradation | None = None,
    ) -> None:
        if reader.num_classes != prior.num_classes:
            raise ValueError(f"data has {reader.num_classes} classes but prior={prior.name} has {prior.num_classes}")
        if prior.needs_labels and not reader.has_labels:
            raise ValueError(
                f"prior={prior.name} needs label maps but this data has none; set the split's labels folder "
                "(data.train.labels=..., then prepare again) or choose prior=ade_outdoor / prior=none"
            )
        if crop_size is not None and crop_size % scale:
            raise ValueError(f"crop_size={crop_size} must be a multiple of the SR scale {scale}")
        if not 0.0 <= bg_ratio < 1.0:
            raise ValueError(f"bg_ratio must be in [0, 1), got {bg_ratio}")
        if bg_ratio > 0 and background is None:
            raise ValueError("bg_ratio > 0 needs a background data source (data.train.background)")
        if any(not 0 < s <= 1 for s in scales):
            raise ValueError(f"scales must be in (0, 1], got {list(scales)}")
        self.reader, self.prior, self.scale = reader, prior, scale
        self.crop_size, self.train = crop_size, train
        self.scales = tuple(float(s) for s in scales) if train else (1.0,)
        self.hflip, self.rotate = hflip and train, rotate and train
        self.background, self.bg_ratio = background, bg_ratio
        self.multiple = math.lcm(multiple, scale)  # whole images cut so that the LR grid fits too
        self.make_lr_on_device = make_lr_on_device
        self.epoch_length = epoch_length
        self.degradation = degradation if degradation is not None else Bicubic(scale)

    def __len__(self) -> int:
        return self.epoch_length or len(self.reader)

    def output_sizes(self) -> list[tuple[int, int]] | None:
        """Each sample's HR size ``(H, W)`` in order, when known without decoding (a store); else None."""
        sizes = self.reader.sizes()
        if sizes is None:
            return None
        return [self._geometry(h, w, None, "")[3:] for h, w in sizes] if self.crop_size is None else None

    def _geometry(self, h: int, w: int, rng: np.random.Generator | None, name: str) -> tuple[float, int, int, int, int]:
        """(scale, top, left, out_h, out_w) of the crop in the rescaled source."""
        size = self.crop_size
        if size is None:
            m = self.multiple
            return 1.0, 0, 0, h - h % m, w - w % m
        if min(h, w) < size:
            raise ImageError(f"{name}: {w}x{h} is smaller than the crop size {size}; drop it or lower data.crop_size")
        if rng is None:
            return 1.0, (h - size) // 2, (w - size) // 2, size, size
        fitting = [s for s in self.scales if min(rescaled_size(h, w, s)) >= size] or [1.0]
        s = fitting[rng.integers(len(fitting))]
        rh, rw = rescaled_size(h, w, s)
        # Crops start on the LR grid (multiples of the scale), as the original cropped the LR and took
        # the HR at scale x the LR position: the HR/LR pixel phase is then the same in every sample.
        k = self.scale
        return s, k * int(rng.integers((rh - size) // k + 1)), k * int(rng.integers((rw - size) // k + 1)), size, size

    def __getitem__(self, key: int | tuple[int, tuple[int, int, int]]) -> dict:
        """``key``: ``(index, draw)`` from ``sampling.EpochSampler``, where the draw ``(seed, epoch, position)``
        seeds this sample's randomness (crop, rescale, flips, background), so it does not depend on which
        worker or rank makes it; a bare index (direct use) draws as position ``index`` of epoch 0, seed 0."""
        index, draw = key if isinstance(key, tuple) else (key, (0, 0, key))
        return self.make(index % len(self.reader), draw)

    def make(self, i: int, draw: tuple[int, int, int], loaded: Sample | None = None) -> dict:
        """The sample of entry ``i`` of the reader for ``draw``; ``loaded``: that entry, already read (a streaming
        store reads it in its own order, then asks for the sample its draw gives)."""
        rng = np.random.default_rng([int(v) for v in draw]) if self.train else None
        reader = self.reader
        if rng is not None and self.bg_ratio > 0 and rng.random() < self.bg_ratio:
            reader, loaded = self.background, None
            i = int(rng.integers(len(reader)))
        image, labels, probs, category, name = loaded if loaded is not None else reader.load(i)
        h, w = image.shape[:2]
        s, top, left, oh, ow = self._geometry(h, w, rng, name)
        if s == 1.0:  # a plain window, square (a crop) or not (a whole validation image)
            hr = to_float_chw(image[top : top + oh, left : left + ow])
            lab = np.array(labels[top : top + oh, left : left + ow]) if labels is not None else None
            pr = np.array(probs[top : top + oh, left : left + ow]) if probs is not None else None
        else:  # rescaled crops are square
            hr = rescale_crop_image(image, s, top, left, oh)
            lab = rescale_crop_nearest(labels, s, top, left, oh) if labels is not None else None
            pr = rescale_crop_nearest(probs, s, top, left, oh) if probs is not None else None
        reader.check(i, lab, pr)
        lab_t = torch.from_numpy(lab) if lab is not None else None  # uint8: 8x less to ship from workers
        pr_t = _probs_tensor(pr) if pr is not None else None
        if rng is not None and (self.hflip or self.rotate):
            hr, lab_t, pr_t = random_dihedral(rng, self.hflip, self.rotate, hr, lab_t, pr_t)
        size = tuple(hr.shape[-2:])
        prior = self.prior.for_sample(lab_t, pr_t, size)
        if category < 0:
            category = _category(lab_t, prior, self.prior.num_classes)
        sample = {
            "hr": hr,
            "category": torch.tensor(category, dtype=torch.int64),
            # seeds what is drawn for this sample on the device (data.gpu_augment), as ``rng`` seeds the rest
            "seed": torch.tensor(int(rng.integers(2**62)) if rng is not None else 0, dtype=torch.int64),
            "path": name,
            "labels": lab_t if lab_t is not None else torch.full(size, VOID_LABEL, dtype=torch.uint8),
        }
        lr = None if self.make_lr_on_device else self.degradation.worker_lr(hr)
        if lr is not None:
            sample["lr"] = lr
        params = self.degradation.draw(degradation_rng(draw))
        if params:
            sample["degradation"] = params
        if prior is not None:
            sample["prior"] = prior
        return sample


def _size_mismatch(item: SourceItem, hr: tuple[int, int], lr: tuple[int, int], s: int) -> str | None:
    (h, w), (lh, lw) = hr, lr
    if s * lh <= h < s * (lh + 1) and s * lw <= w < s * (lw + 1):
        return None
    return f"{item.lr}: LR {lw}x{lh} is not 1/{s} of its HR {item.image} ({w}x{h})"


def check_pair(item: SourceItem, scale: int, min_lr: int = 1) -> str | None:
    """Why the pair ``item`` (HR and its given LR) cannot be used at ``scale``, or None: the LR must be
    ``1/scale`` of the HR (an HR up to ``scale - 1`` pixels larger is cut), and at least ``min_lr`` LR pixels."""
    try:
        h, w = upright_size(item.image)
        lh, lw = upright_size(item.lr)
    except (ImageError, FileNotFoundError) as err:
        return str(err)
    mismatch = _size_mismatch(item, (h, w), (lh, lw), scale)
    if mismatch:
        return mismatch
    if min(lh, lw) < min_lr:
        return f"{item.lr}: LR {lw}x{lh} is smaller than the training crop ({min_lr} LR px)"
    return None


class PairedDataset(Dataset):
    """HR images with their given LR (``layout: paired``): the HR cut to ``scale`` x the LR size.

    Evaluation (``train=False``): whole images, in file order. Training: a random ``crop_size`` HR crop on the
    LR grid with the LR window under it, and the flips of ``TripletDataset``, from the sample's draw. Pairs whose
    LR is not ``1/scale`` of the HR (or is smaller than a crop) are refused by name when the dataset is built and
    the others go on. The prior comes from what the pair has: its label map, its prior file, or (a segmenter)
    the given LR on the device.
    """

    def __init__(
        self,
        items: Sequence[SourceItem],
        prior: Prior,
        scale: int = 4,
        crop_size: int | None = None,
        train: bool = False,
        hflip: bool = True,
        rotate: bool = True,
        epoch_length: int | None = None,
    ) -> None:
        if crop_size is not None and crop_size % scale:
            raise ValueError(f"crop_size={crop_size} must be a multiple of the SR scale {scale}")
        if prior.needs_labels and any(item.labels is None for item in items):
            raise ValueError(
                f"prior={prior.name} needs label maps but these pairs have none; set the split's labels folder "
                "(data.train.labels=...) or choose prior=ade_outdoor prior.mode=online / prior=none"
            )
        self.prior, self.scale, self.crop_size, self.train = prior, scale, crop_size, train
        self.hflip, self.rotate, self.epoch_length = hflip and train, rotate and train, epoch_length
        min_lr = crop_size // scale if crop_size else 1
        good, refused = [], {}
        for item in items:
            reason = check_pair(item, scale, min_lr)
            if reason:
                refused[item.name] = reason
            else:
                good.append(item)
        for name, reason in refused.items():
            log.error("pair %s refused: %s", name, reason)
        if not good:
            raise ImageError(f"no usable LR/HR pairs ({len(refused)} refused, e.g. {next(iter(refused.values()), '')})")
        self.items, self.refused = good, refused
        self.reader = FileReader(self.items, prior.num_classes, modcrop_to=1)

    def __len__(self) -> int:
        return self.epoch_length or len(self.items)

    def output_sizes(self) -> None:
        """Unknown without decoding every LR image (benchmark sets differ in size)."""
        return None

    def __getitem__(self, key: int | tuple[int, tuple[int, int, int]]) -> dict:
        index, draw = key if isinstance(key, tuple) else (key, (0, 0, key))
        index %= len(self.items)
        item = self.items[index]
        image, labels, probs, category, name = self.reader.load(index)
        lr_img = read_image(item.lr)
        lh, lw = lr_img.shape[:2]
        s = self.scale
        mismatch = _size_mismatch(item, image.shape[:2], (lh, lw), s)  # a file changed since the set-up
        if mismatch:
            raise ImageError(mismatch)
        top = left = 0
        rng = np.random.default_rng([int(v) for v in draw]) if self.train else None
        if self.crop_size is not None:
            c = self.crop_size // s
            if rng is not None:
                top, left = int(rng.integers(lh - c + 1)), int(rng.integers(lw - c + 1))
            else:
                top, left = (lh - c) // 2, (lw - c) // 2
            lh = lw = c
        window = (slice(s * top, s * (top + lh)), slice(s * left, s * (left + lw)))
        hr = to_float_chw(image[window])
        lr = to_float_chw(lr_img[top : top + lh, left : left + lw])
        lab_t = torch.from_numpy(np.array(labels[window])) if labels is not None else None
        pr_t = _probs_tensor(probs[window]) if probs is not None else None
        if rng is not None and (self.hflip or self.rotate):
            hr, lr, lab_t, pr_t = random_dihedral(rng, self.hflip, self.rotate, hr, lr, lab_t, pr_t)
        size = tuple(hr.shape[-2:])
        # None: computed from the given LR on the device (SFTGANDataModule.on_after_batch_transfer)
        prior = self.prior.for_sample(lab_t, pr_t, size, lr_given=True)
        sample = {
            "hr": hr,
            "lr": lr,
            "category": torch.tensor(category if category >= 0 else _category(lab_t, prior, self.prior.num_classes)),
            "path": name,
            "labels": lab_t if lab_t is not None else torch.full(size, VOID_LABEL, dtype=torch.uint8),
        }
        if self.train:
            sample["seed"] = torch.tensor(int(rng.integers(2**62)), dtype=torch.int64)
        if prior is not None:
            sample["prior"] = prior
        return sample
