"""``sftgan-prepare``: check every source image, compute or convert its prior, write the compact store.

For each image (sorted order): decode with the checks of ``io.read_image``, read its label map /
prior file, modcrop to a multiple of 8, compute the prior when it is cached (a segmenter run on the
bicubic-downscaled LR, as the paper does; background sets get all-background), and append it to the
store. Every file that fails is reported with its reason and recorded in the store's ``complete.json``;
the rest is still prepared, and the return value (the CLI's exit code) says whether anything failed.
Rerunning continues where an interrupted run stopped (see ``store.StoreWriter``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..imresize import imresize
from ..priors import Prior, PriorError
from .io import DEFAULT_MAX_PIXELS, ImageError
from .readers import read_source
from .sources import SourceItem
from .store import StoreWriter, quantize_probs

log = logging.getLogger(__name__)


@dataclass
class PrepareReport:
    store: Path
    written: int = 0  # entries added by this run
    skipped_done: int = 0  # already in the store (resumed)
    total: int = 0  # entries in the store now
    failures: dict[str, str] = field(default_factory=dict)  # source name -> reason
    stopped: str | None = None  # why the run stopped early (the store could not be written: disk full...)

    @property
    def ok(self) -> bool:
        return not self.failures and not self.stopped


def _file_hash(path: Path) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def store_header(prior: Prior, background: bool, modcrop_to: int, store_probs: bool, scale: int) -> dict:
    header = {
        "num_classes": prior.num_classes,
        "class_names": list(prior.class_names),
        "prior": prior.name if store_probs else None,
        "background": background,
        "modcrop": modcrop_to,
        "scale": scale,
    }
    if store_probs and prior.cached_probs:
        # probabilities depend on the prior's source (e.g. the segmenter's weights): another source, another store
        header.update(prior.store_identity())
    return header


def prepare(
    items: Sequence[SourceItem],
    out: str | os.PathLike,
    prior: Prior,
    background: bool = False,
    modcrop_to: int = 8,
    min_size: int = 96,
    scale: int = 4,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    limit: int | None = None,
    progress: bool = True,
    device: str = "cpu",
) -> PrepareReport:
    """Prepare ``items`` into the store at ``out``; see the module docstring.

    Args:
        background: a background-only set (DIV2K-style): labels and prior all background.
        min_size: shorter side (after modcrop) below which an image is reported as too small.
        limit: at most this many new entries in this run (the rest on the next run).
    """
    if prior.cached_probs and not background:
        prior.check_ready()  # missing weights is a configuration error, not a failure of each file
    store_probs = prior.cached_probs or (not background and any(i.prior is not None for i in items))
    if store_probs and modcrop_to % scale:  # a prior computed from the LR needs whole LR pixels
        raise ValueError(f"modcrop ({modcrop_to}) must be a multiple of the SR scale ({scale})")
    writer = StoreWriter(out, store_header(prior, background, modcrop_to, store_probs, scale))
    report = PrepareReport(Path(out))
    done = writer.done()
    names = [i.name for i in items]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate image names in the input of {out}; every image needs a unique name")
    todo = [i for i in items if i.name not in done]
    # An entry already in the store must still be its source: an edited image is named, not trained on stale.
    recorded = {e.file: e.source_hash for e in writer.entries}
    for item in items:
        if item.name in done and recorded.get(item.name) and recorded[item.name] != _file_hash(item.image):
            report.failures[item.name] = (
                f"{item.image}: changed since it was prepared into {out} (its hash differs from the store's); "
                f"delete {out} to prepare the store again"
            )
            log.error("%s", report.failures[item.name])
    remaining = len(todo)
    report.skipped_done = len(items) - remaining
    if report.skipped_done:
        log.info("%s: resuming, %d of %d images already prepared", out, report.skipped_done, len(items))
    if limit is not None:
        todo = todo[:limit]
    try:
        for item in tqdm(todo, desc=f"prepare {Path(out).name}", unit="img", disable=not progress):
            try:
                image, labels, probs_f = read_source(item, prior.num_classes, background, modcrop_to, max_pixels)
                h, w = image.shape[:2]
                if min(h, w) < min_size:
                    raise ImageError(f"{item.image}: {w}x{h} after modcrop is smaller than min_size={min_size}")
                probs = None
                if store_probs:
                    if background:
                        p = torch.zeros(prior.num_classes, h, w)
                        p[0] = 1.0
                    elif probs_f is not None:
                        p = torch.from_numpy(np.ascontiguousarray(probs_f)).permute(2, 0, 1)
                    else:
                        hr = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255.0)
                        lr = imresize(hr[None].to(device), 1.0 / scale).clamp(0, 1)
                        p = prior.from_lr(lr)[0].cpu()
                    probs = quantize_probs(p)
                entry = (item.name, np.ascontiguousarray(image), labels, probs, item.category, _file_hash(item.image))
            except (ImageError, PriorError, FileNotFoundError) as err:
                report.failures[item.name] = str(err)
                log.error("%s", err)
                continue
            try:
                writer.add(*entry)
            except OSError as err:  # a full disk: the torn entry is dropped when the store is resumed
                report.stopped = (
                    f"could not write {item.name} into {out}: {err.strerror or err}; {report.written} entries were "
                    "added by this run; free space and rerun to continue where it stopped"
                )
                log.error("%s", report.stopped)
                break
            report.written += 1
        if len(todo) == remaining and not report.stopped:  # not cut short by ``limit`` or a write error
            writer.finish(report.failures)
    finally:
        writer.close()
    report.total = len(writer.entries)
    return report


def prepare_from_config(cfg) -> int:
    """``sftgan-prepare``'s work for a composed ``conf/prepare.yaml``: check the input's files, write the store
    (and the LitData stream for ``format=litdata``), print what was written and what failed by name.

    Args:
        cfg: the composed ``prepare`` config (``config.compose_config("prepare", overrides)``).

    Returns:
        The exit code: 0 when every file went in, 1 when some failed (each printed with its reason).
    """
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from ..choices import StoreFormat, choice
    from ..config import require, require_int
    from .splits import split_from_config

    prior = instantiate(cfg.prior)
    spec = split_from_config(OmegaConf.to_container(cfg.input, resolve=True), "input")
    if spec.given_lr or spec.generated:
        raise ValueError(f"input.layout={cfg.input.layout}: must be folder or ost")
    stream = StoreFormat(choice(StoreFormat, cfg.format, "format")) is StoreFormat.litdata
    store = cfg.out
    if stream:
        from ..extras import require as require_extra

        require_extra("litdata", "sftgan-prepare format=litdata")
        from .streaming import is_url, write_stream

        require(cfg.staging or not is_url(cfg.out), "staging", cfg.staging, "a local folder when out is a URL")
        store = cfg.staging or f"{cfg.out}-mmap"
        require_int("workers", cfg.workers, 1)
    local = Path(store)
    key = "out" if store == cfg.out else "staging"
    require(not local.exists() or local.is_dir(), key, store, "a folder (an existing file is there)")
    items = spec.items(prior.class_names, background=cfg.background)
    report = prepare(
        items,
        store,
        prior,
        background=cfg.background,
        modcrop_to=cfg.modcrop,
        min_size=cfg.min_size,
        scale=cfg.scale,
        max_pixels=cfg.max_pixels,
        limit=cfg.limit,
        progress=cfg.progress,
        device=cfg.device,
    )
    print(
        f"sftgan-prepare: {report.store}: {report.written} written, {report.skipped_done} already done, {report.total} in store"
    )
    for name, reason in report.failures.items():
        print(f"sftgan-prepare: FAILED {name}: {reason}", file=sys.stderr)
    if report.stopped:
        print(f"sftgan-prepare: STOPPED: {report.stopped}", file=sys.stderr)
    if report.failures:
        print(f"sftgan-prepare: {len(report.failures)} of {len(items)} files failed", file=sys.stderr)
    if stream and (Path(store) / "complete.json").exists():
        info = write_stream(store, cfg.out, cfg.chunk_bytes, cfg.workers, cfg.storage_options, progress=cfg.progress)
        print(f"sftgan-prepare: {cfg.out}: LitData stream of {info['entries']} entries, made from {store}")
        if not cfg.keep_staging:
            shutil.rmtree(store)
    return 0 if report.ok else 1
