"""``SFTGANDataModule``: HR/LR/prior triplets from the demo data, OST-style, plain or paired folders.

Batches are dicts::

    hr        (N, 3, H, W)      RGB float in [0, 1]
    lr        (N, 3, H/s, W/s)  the degradation's LR (data.degradation; bicubic: imresize(hr, 1/s) clamped to [0, 1])
    hr_usm    (N, 3, H, W)      the target of the pixel/perceptual terms when it is not hr (Real-ESRGAN's gt_usm)
    prior     (N, C, H, W)      class probabilities, each pixel's row sums to 1
    category  (N,)              int64 image/crop category (0 = background)
    labels    (N, H, W)         int64 class indices, 255 = void (all void when the data has no labels)
    path      list[str]         source name of each sample

``prepare_data`` (rank 0 only) makes the demo set and the prepared stores that are missing;
``setup`` opens them (memory-mapped) and builds the datasets. ``on_after_batch_transfer`` runs on the
device: optional kornia augmentation, the degradation that makes the LR when the workers did not
(``degradations``: Real-ESRGAN's runs here, from the parameters each sample drew in its worker), the
training-pair pool, and the priors computed from the LR (online segmenters see the degraded LR).

A split is one of the layouts of ``splits.py`` (from ``conf/data/*.yaml``, typed by ``config.SplitSchema``)::

    {layout: folder, images: DIR, labels: DIR?, priors: DIR?}
    {layout: ost, root: DIR, labels: DIR?}
    {layout: paired, hr: DIR, lr: DIR, labels: DIR?, priors: DIR?, lr_suffix: ''}   # given LR, read as files
    {layout: demo}                                                     # the embedded demo split
and the training split may add ``background: {images: DIR}`` mixed in at ``bg_ratio``.

``store_format`` chooses the backend once (``backends.py``): ``mmap`` (default) reads each split's
memory-mapped store; ``litdata`` streams the training split from LitData chunks and reads the others by
index, from ``stream_root``, a folder or an ``s3://`` URL. Streams that are missing are made from the
memory-mapped stores (prepared first); a finished stream is used as it is, so a cluster job needs no
source images.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from ..choices import StoreFormat, choice
from ..config import ConfigError, DemoConfig, is_int, require, require_int
from ..degradations import DEGRADATIONS, make_degradation
from ..priors import Prior, PriorError
from .backends import make_backend
from .dataset import ORIGINAL_SCALES, PairedDataset, TripletDataset
from .demo import default_cache_dir, generate_demo
from .gpu_augment import GpuAugment
from .pool import TrainingPairPool
from .prepare import prepare
from .readers import FileReader
from .sources import SourceItem, usable_items
from .splits import Split, split_from_config
from .store import StoreError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def collate(samples: Sequence[dict]) -> dict:
    """Stack tensors, collate nested dicts key by key, keep anything else (``path``, plain numbers) as a list; a
    key missing from some samples is an error, not a silent drop."""
    keys = set(samples[0])
    for s in samples[1:]:
        if set(s) != keys:
            raise ValueError(f"samples in one batch have different keys: {sorted(keys)} vs {sorted(s)}")
    out = {}
    for k in keys:
        values = [s[k] for s in samples]
        if torch.is_tensor(values[0]):
            out[k] = torch.stack(values)
        elif isinstance(values[0], Mapping) and all(
            torch.is_tensor(v) or isinstance(v, Mapping) for v in values[0].values()
        ):
            out[k] = collate(values)
        else:
            out[k] = values
    return out


def holdout_indices(n: int, holdout: float | int) -> list[int]:
    """Which of ``n`` images (in name order) a validation holdout takes: ``holdout`` as a fraction (rounded,
    at least one) or a count, spread evenly over the list so that every part of it (each OST class
    folder, in order) is represented; at least one image stays for training."""
    k = max(1, round(holdout * n)) if isinstance(holdout, float) else int(holdout)
    if n < 2 or k >= n:
        raise ValueError(
            f"data.val_holdout={holdout}: cannot hold out {k} of the {n} training images for validation "
            "(at least one must stay for training); set data.val to a validation folder or lower data.val_holdout"
        )
    return [int((i + 0.5) * n / k) for i in range(k)]


class SFTGANDataModule(L.LightningDataModule):
    """HR/LR/prior triplets for training, validation and test (see the module docstring).

    Args:
        prior: a ``sftgan_lit.priors.Prior`` (``conf/prior/``): the class set and where probabilities come from.
        train: the training split, a ``splits.Split`` or its config mapping (``config.SplitSchema``).
        val: the validation split; None with a folder / ost training split validates on ``val_holdout``
            of its images.
        test: the test split.
        demo: the demo set's settings (``config.DemoConfig`` or its mapping), for ``layout: demo``.
        degradation: how the LR is made from the HR (``conf/degradation/``, ``degradations.DEGRADATIONS``;
            None or ``bicubic``: MATLAB's ``imresize(hr, 1/scale)``), for training and for the validation
            and test splits that have no given LR.
        scale: the SR factor; ``train()`` passes the generator's (``data.scale: null``); None here means 4.

    The other arguments are the ``data.*`` keys of the same names, described in ``config.DataSchema``.
    """

    def __init__(
        self,
        prior: Prior,
        train: Mapping | Split | None = None,
        val: Mapping | Split | None = None,
        test: Mapping | Split | None = None,
        demo: Mapping | DemoConfig | None = None,
        degradation: Mapping | None = None,
        store_root: str | None = None,
        cache_dir: str | None = None,
        use_store: bool = True,
        prepare_missing: bool = True,
        verify_store: bool = True,
        scale: int | None = 4,
        crop_size: int = 96,
        scales: Sequence[float] = ORIGINAL_SCALES,
        hflip: bool = True,
        rotate: bool = True,
        bg_ratio: float = 0.1,
        val_crop_size: int | None = None,
        val_holdout: float | int = 0.1,
        epoch_length: int | None = None,
        batch_size: int = 16,
        val_batch_size: int = 4,
        num_workers: int = 2,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        gpu_augment: Mapping | None = None,
        store_format: str = "mmap",
        stream_root: str | None = None,
        stream_cache: str | None = None,
        storage_options: Mapping | None = None,
    ) -> None:
        super().__init__()
        # the numeric data.* options in range, or a ConfigError naming the key and what it allows
        scale = 4 if scale is None else scale  # train() passes the generator's scale (data.scale: null)
        require_int("data.scale", scale, 1)
        for key, value, optional in (("crop_size", crop_size, False), ("val_crop_size", val_crop_size, True)):
            ok = (optional and value is None) or (is_int(value) and value >= scale and value % scale == 0)
            require(
                ok, f"data.{key}", value, f"a multiple of the scale {scale}" + (" or null (whole images)" * optional)
            )
        require_int("data.batch_size", batch_size, 1)
        require_int("data.val_batch_size", val_batch_size, 1)
        require_int("data.num_workers", num_workers, 0)
        require_int("data.epoch_length", epoch_length, 1, optional=True)
        require(isinstance(bg_ratio, int | float) and 0 <= bg_ratio < 1, "data.bg_ratio", bg_ratio, "in [0, 1)")
        ok = (is_int(val_holdout) and val_holdout >= 0) or (isinstance(val_holdout, float) and 0 < val_holdout < 1)
        require(ok, "data.val_holdout", val_holdout, "a fraction in (0, 1) or a number of images (0: no validation)")
        ok = len(scales) > 0 and all(isinstance(v, int | float) and 0 < v <= 1 for v in scales)
        require(ok, "data.scales", list(scales), "a non-empty list of numbers in (0, 1]")
        try:
            self.store_format = StoreFormat(choice(StoreFormat, store_format, "data.store_format"))
        except ValueError as err:
            raise ConfigError(str(err)) from None
        self.degradation = make_degradation(degradation, scale)
        if prior.cached_probs and not self.degradation.lr_is_bicubic:
            raise ConfigError(
                f"prior={prior.name} prior.mode=cached: its stored probabilities were computed from the bicubic LR, "
                f"but data.degradation.kind={self.degradation.name} makes another LR; set prior.mode=online (the "
                "prior from the degraded LR, per batch, as at inference)"
            )
        missing = [c.name for c in prior.continuous if c.name not in self.degradation.channels]
        if missing:
            knowing = [n for n, d in DEGRADATIONS.items() if set(missing) <= set(d.channels)]
            raise ConfigError(
                f"prior.continuous: {', '.join(missing)} cannot be trained on: data.degradation.kind="
                f"{self.degradation.name} does not say it per pixel; choose "
                + (" or ".join(f"degradation={n}" for n in knowing) or "a degradation that does")
            )
        pool = self.degradation.pool_size
        self.pool = TrainingPairPool(pool - pool % batch_size)
        if self.pool.size != pool:
            log.info(
                "data.degradation.pool_size=%d holds whole batches of data.batch_size=%d: %d samples",
                pool,
                batch_size,
                self.pool.size,
            )
        self.backend = make_backend(
            self.store_format, use_store, epoch_length, verify_store, stream_root, stream_cache, storage_options
        )
        self.prior = prior
        self.splits: dict[str, Split | None] = {
            "train": split_from_config(train, "data.train"),
            "val": split_from_config(val, "data.val"),
            "test": split_from_config(test, "data.test"),
        }
        train_split = self.splits["train"]
        if train_split is not None and train_split.given_lr and self.store_format is not StoreFormat.mmap:
            raise ConfigError(
                f"data.store_format={self.store_format.value}: a paired training split (given LR) is read from its "
                "files, not streamed; set data.store_format=mmap"
            )
        self.demo = DemoConfig(**demo) if isinstance(demo, Mapping) else demo
        if self.demo is None and self._uses_demo():
            raise ConfigError("layout: demo needs the data.demo settings (conf/data/demo.yaml)")
        self.store_root = store_root
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.use_store, self.prepare_missing = use_store, prepare_missing
        self.scale, self.crop_size, self.scales = scale, crop_size, tuple(scales)
        self.hflip, self.rotate, self.bg_ratio = hflip, rotate, bg_ratio
        self.val_crop_size, self.epoch_length = val_crop_size, epoch_length
        self.val_holdout = val_holdout
        self.batch_size, self.val_batch_size = batch_size, val_batch_size
        self.num_workers, self.pin_memory = num_workers, pin_memory
        self.persistent_workers = persistent_workers and num_workers > 0
        self.gpu_augment = GpuAugment(**gpu_augment) if gpu_augment else None
        self.datasets: dict[str, Dataset] = {}

    # ------------------------------------------------------------------ sources and stores
    def _uses_demo(self) -> bool:
        return any(s is not None and s.generated for s in self.splits.values())

    def demo_root(self) -> Path:
        """The generated demo set (made on first use under ``cache_dir``)."""
        return generate_demo(self.cache_dir / "demo", self.demo)

    def _holdout(self) -> bool:
        """Validation held out of the training images: ``data.val`` not given, a training split that can give
        up images (folder, ost) and ``data.val_holdout`` > 0."""
        train = self.splits["train"]
        return self.splits["val"] is None and train is not None and train.can_hold_out and bool(self.val_holdout)

    def _source(self, split: str) -> Split | None:
        """What ``split`` reads: its own split (the demo's resolved into the generated folders), or, for a
        held-out validation, the training split."""
        spec = self.splits[split]
        if split == "val" and self._holdout():
            spec = self.splits["train"]
        return spec.resolve(self.demo_root(), split) if spec is not None and spec.generated else spec

    def _items(self, split: str, background: bool = False) -> list[SourceItem]:
        source = self._source(split)
        if background:
            return source.background_items()
        items = source.items(self.prior.class_names)
        if split not in ("train", "val") or not self._holdout():
            return items
        # the same (name-ordered) listing for both; each keeps its side of the deterministic holdout, which is
        # drawn among the images (the folder's other entries are reported with the training split)
        images = [item for item in items if not item.stray]
        held = set(holdout_indices(len(images), self.val_holdout))
        kept = [item for i, item in enumerate(images) if (i in held) == (split == "val")]
        return kept + ([item for item in items if item.stray] if split == "train" else [])

    def _usable(self, split: str, background: bool = False) -> list[SourceItem]:
        """What a split reads from files: images missing a partner file are named in the log and left out
        (``prepare`` records them as failures of the store instead)."""
        return usable_items(self._items(split, background), f"the {'background' if background else split} split")

    def _background(self, split: str) -> bool:
        """The training split mixes in background images."""
        return split == "train" and self.bg_ratio > 0 and self._source(split).has_background

    def _store_dir(self, split: str, background: bool = False) -> Path:
        if self.store_root is not None:
            root = Path(self.store_root).expanduser()
        elif self._uses_demo():
            root = self.demo_root() / "stores"
        else:
            raise ConfigError(
                "data.store_root is not set: give a folder for prepared stores, or set data.use_store=false"
            )
        # Label maps serve the labels/uniform/none priors alike; cached probabilities belong to one prior.
        key = self.prior.store_key if self.prior.cached_probs else "labels"
        if self.prior.cached_probs and self.scale != 4:  # the probabilities were made from the LR at this scale
            key += f"-x{self.scale}"
        name = "background" if background else split
        if not background and self._holdout():  # another partition of the images, another store
            name += f"-holdout{self.val_holdout}"
        return root / f"{name}-{key}"

    def _prepare_store(self, split: str, background: bool = False) -> None:
        out = self._store_dir(split, background)
        if (out / "complete.json").exists():
            return
        if not self.prepare_missing:
            raise StoreError(
                f"{out}: no prepared store; run sftgan-prepare for the {split} split or set data.prepare_missing=true"
            )
        items = self._items(split, background)
        log.info("preparing %s split (%d images) into %s", "background" if background else split, len(items), out)
        report = prepare(
            items,
            out,
            self.prior,
            background=background,
            min_size=min(self.crop_size, 8 * self.scale),
            scale=self.scale,
            modcrop_to=math.lcm(8, self.scale) if self.prior.cached_probs else 8,
        )
        if report.failures:
            log.warning("%s: %d files failed and are not in the store: %s", out, len(report.failures), report.failures)

    def _stored_splits(self) -> list[tuple[str, bool]]:
        """``(split, background)`` of every store this configuration reads."""
        out = []
        for split in SPLITS:
            source = self._source(split)
            if source is None or source.given_lr or not self.use_store:
                continue
            out.append((split, False))
            if self._background(split):
                out.append((split, True))
        return out

    def prepare_data(self) -> None:
        for split, background in self._stored_splits():
            self.backend.prepare(
                self._store_dir(split, background), lambda s=split, b=background: self._prepare_store(s, b)
            )

    def _reader(self, split: str, background: bool = False):
        if not self.use_store:
            return FileReader(self._usable(split, background), self.prior.num_classes, background=background)
        store_dir = self._store_dir(split, background)
        reader, failures = self.backend.reader(store_dir, self.prior.num_classes)
        if failures:
            log.warning(
                "%s: %d source files failed in sftgan-prepare and are missing: %s",
                self.backend.location(store_dir),
                len(failures),
                list(failures)[:5],
            )
        return reader

    def _log_holdout(self) -> None:
        """Say once which share of data.train validates, from the readers (a node that streams has no sources)."""
        if self._holdout() and "val" in self.datasets and not getattr(self, "_holdout_logged", False):
            self._holdout_logged = True
            k = len(self.datasets["val"].reader)
            n = k + len(self.datasets["train"].reader)
            log.info(
                "data.val is not set: validating on %d of the %d images of data.train, held out of training "
                "(data.val_holdout=%s; every %s-th image in name order)",
                k,
                n,
                self.val_holdout,
                f"{n / k:.1f}",
            )

    def setup(self, stage: str | None = None) -> None:
        self.prior.check_ready()
        for split in SPLITS:
            source = self._source(split)
            if source is None or split in self.datasets:
                continue
            if source.given_lr:
                train = split == "train"
                self.datasets[split] = PairedDataset(
                    self._usable(split),
                    self.prior,
                    self.scale,
                    self.crop_size if train else self.val_crop_size,
                    train=train,
                    hflip=self.hflip,
                    rotate=self.rotate,
                    epoch_length=self.epoch_length if train else None,
                )
                continue
            reader = self._reader(split)
            if split == "train":
                bg = self._reader(split, background=True) if self._background(split) else None
                self.datasets[split] = TripletDataset(
                    reader,
                    self.prior,
                    self.scale,
                    self.crop_size,
                    train=True,
                    scales=self.scales,
                    hflip=self.hflip,
                    rotate=self.rotate,
                    background=bg,
                    bg_ratio=self.bg_ratio if bg else 0.0,
                    make_lr_on_device=self.gpu_augment is not None,
                    epoch_length=self.epoch_length,
                    degradation=self.degradation,
                )
            else:
                self.datasets[split] = TripletDataset(
                    reader, self.prior, self.scale, self.val_crop_size, train=False, degradation=self.degradation
                )
        self._log_holdout()

    # ------------------------------------------------------------------ loaders
    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            raise RuntimeError(f"no {split} data: configure data.{split} (and call setup first)")
        train = split == "train"
        batch_size = self.batch_size if train else self.val_batch_size
        if not train and batch_size > 1 and self.val_crop_size is None:
            sizes = self.datasets[split].output_sizes()
            if sizes is None or len(set(sizes)) > 1:
                # whole images of different sizes cannot share a batch
                log.info("%s: whole images of different (or unknown) sizes: validated one per batch", split)
                batch_size = 1
        common = {
            "batch_size": batch_size,
            "num_workers": self.num_workers,
            "pin_memory": self.pin_memory and torch.cuda.is_available(),
            "persistent_workers": self.persistent_workers and self.num_workers > 0,
            "collate_fn": collate,
        }
        if not train:
            return DataLoader(self.datasets[split], shuffle=shuffle, **common)
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))  # what L.seed_everything(cfg.seed) set
        return self.backend.train_loader(self.datasets[split], seed, self.trainer, self._batches_done, **common)

    def _batches_done(self) -> int:
        """Batches of the current epoch the trainer has finished (what a checkpoint taken now has trained on)."""
        trainer = self.trainer
        return trainer.fit_loop.epoch_loop.batch_progress.current.processed if trainer else 0

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    # ------------------------------------------------------------------ checkpointed state
    def state_dict(self) -> dict:
        """The training-pair pool's samples (Lightning keeps them in every checkpoint: an exact resume)."""
        pool = self.pool.state_dict()
        return {"pool": pool} if pool else {}

    def load_state_dict(self, state: dict) -> None:
        self.pool.load_state_dict(state.get("pool", {}))

    # ------------------------------------------------------------------ on the device
    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        training = self.trainer is not None and self.trainer.training
        batch["labels"] = batch["labels"].long()  # shipped from the workers as uint8
        if training and self.gpu_augment is not None:
            # its random parameters drawn from the batch's own seed: the same on a resume, whatever ran before
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(batch["seed"][0]))
                batch = self.gpu_augment(batch)
        params = batch.pop("degradation", {})
        made_here = "lr" not in batch
        if made_here:
            batch["lr"], target = self.degradation(batch["hr"], params, training)
            if target is not None:
                batch["hr_usm"] = target
        if self.prior.continuous:  # the per-pixel degradation, pooled with its sample; stacked after the classes below
            if not made_here:
                raise PriorError(
                    f"prior={self.prior.name} has continuous channels, but this batch's LR was given "
                    f"({batch['path'][:3]}...), so its degradation per pixel is unknown: train on data the "
                    "degradation makes the LR of (data.layout=folder, degradation=mapped)"
                )
            batch["prior_maps"] = self.prior.continuous_maps(self.degradation.maps(params, batch["lr"].shape[-2:]))
        if training and self.pool.size:
            batch = self.pool(batch, int(batch["seed"][0]))
        batch = self.prior.on_device(batch)
        if "prior" not in batch:
            raise RuntimeError(f"prior={self.prior.name} produced no prior for this batch ({batch['path'][:3]}...)")
        if "prior_maps" in batch:
            batch["prior"] = torch.cat([batch["prior"], batch.pop("prior_maps").to(batch["prior"])], dim=1)
        return batch
