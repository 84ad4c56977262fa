"""Data set layouts -> lists of source items (file paths and what is known about each image).

(a) ``ost_items``: the OST layout the original trained on, one folder per category (``sky/``,
    ``water/``...), the category taken from the folder name; background-only sets (DIV2K-style) are a
    plain folder marked ``background``.
(b) ``folder_items``: any folder of images, with an optional parallel folder of label maps (PNG, same
    stem) or priors (``.npy``/``.pt`` float ``(C, H, W)``, same stem).
(c) ``paired_items``: HR and LR folders of a benchmark set (Set5/Set14-style) where the LR is given.

A partner file that is missing is that image's failure: the item records the reason (``missing``),
reading it raises an error naming both files, and the other images go on; never a silently dropped image.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from .io import scan_images

PRIOR_SUFFIXES = (".npy", ".pt", ".pth")


@dataclass(frozen=True)
class SourceItem:
    image: Path
    name: str  # stable identifier: path relative to the layout's root
    labels: Path | None = None
    prior: Path | None = None
    category: int = -1  # image-level category when the layout defines one (OST folders, background)
    lr: Path | None = None  # given LR (paired layout)
    missing: str | None = None  # why it cannot be read (a partner file not found): reported when it is read
    stray: bool = False  # an entry of the folder that is no image (a subfolder, another type): reported, not an image


def usable_items(items: Sequence[SourceItem], where: str) -> list[SourceItem]:
    """``items`` without those missing a partner file, each of which is logged by name with its reason."""
    import logging

    bad = [i for i in items if i.missing]
    for item in bad:
        logging.getLogger(__name__).error("%s: left out of %s: %s", item.name, where, item.missing)
    good = [i for i in items if not i.missing]
    if not good:
        raise FileNotFoundError(f"{where}: no usable images ({len(bad)} miss a partner file, e.g. {bad[0].missing})")
    return good


def _partner(
    folder: Path, stem: str, suffixes: Sequence[str], what: str, image: Path
) -> tuple[Path | None, str | None]:
    """The partner file, or None and the reason naming both files."""
    for suffix in suffixes:
        candidate = folder / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate, None
    return None, f"{image}: no {what} file {folder / stem}{{{','.join(suffixes)}}}; every image needs one"


def folder_items(
    images: str | os.PathLike,
    labels: str | os.PathLike | None = None,
    priors: str | os.PathLike | None = None,
    category: int = -1,
) -> list[SourceItem]:
    """Layout (b): every image in ``images`` with its label map / prior file from the parallel folders
    (an image whose partner is missing carries the reason in ``missing``, and so does every other entry of the
    folder: a subfolder, a broken link, another file type, each reported by name where the items are used)."""
    images = Path(images)
    files, skipped = scan_images(images)
    if not files:
        raise FileNotFoundError(f"no images in {images}")
    items = []
    for path in files:
        label_path, no_labels = (
            _partner(Path(labels), path.stem, (".png",), "label map", path) if labels else (None, None)
        )
        prior_path, no_prior = (
            _partner(Path(priors), path.stem, PRIOR_SUFFIXES, "prior", path) if priors else (None, None)
        )
        items.append(
            SourceItem(
                image=path,
                name=path.name,
                labels=label_path,
                prior=prior_path,
                category=category,
                missing=no_labels or no_prior,
            )
        )
    strays = [
        SourceItem(Path(p), Path(p).name, category=category, missing=f"{p}: {why}", stray=True)
        for p, why in skipped.items()
    ]
    return items + strays


def ost_items(
    root: str | os.PathLike, class_names: Sequence[str], labels: str | os.PathLike | None = None
) -> list[SourceItem]:
    """Layout (a): ``root/<class name>/*.png``; the folder gives each image's category."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"OST root not found: {root}")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    strays = [p for p in sorted(root.iterdir()) if not p.is_dir()]  # reported with the items, never left out
    unknown = [p.name for p in folders if p.name not in class_names]
    if unknown:
        raise ValueError(
            f"{root}: folders {unknown} are not classes of the prior ({', '.join(class_names)}); rename or move them"
        )
    items = []
    for folder in folders:
        cat = list(class_names).index(folder.name)
        label_dir = Path(labels) / folder.name if labels else None
        items += [
            replace(item, name=f"{folder.name}/{item.name}")
            for item in folder_items(folder, labels=label_dir, category=cat)
        ]
    if not items:
        raise FileNotFoundError(f"no images in the class folders of {root}")
    return items + [
        SourceItem(
            p,
            p.name,
            None,
            None,
            0,
            missing=f"{p}: not a class folder (the OST layout is ROOT/<class>/*.png)",
            stray=True,
        )
        for p in strays
    ]


def paired_items(
    hr: str | os.PathLike,
    lr: str | os.PathLike,
    labels: str | os.PathLike | None = None,
    lr_suffix: str = "",
    priors: str | os.PathLike | None = None,
) -> list[SourceItem]:
    """Layout (c): ``hr/NAME.png`` with ``lr/NAME{lr_suffix}.png`` (e.g. ``lr_suffix=x4`` for ``babyx4.png``),
    and optional label maps / prior files (at the HR size) in parallel folders."""
    items = []
    for item in folder_items(hr, labels=labels, priors=priors):
        lr_path, no_lr = _partner(Path(lr), item.image.stem + lr_suffix, (item.image.suffix, ".png"), "LR", item.image)
        items.append(replace(item, lr=lr_path, missing=item.missing or no_lr))
    return items
