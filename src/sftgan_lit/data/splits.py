"""A split's source files, one class per layout (``data.train`` / ``data.val`` / ``data.test``,
``sftgan-prepare input``): each knows its keys, lists its items and says what the datamodule does with it,
so no caller asks which layout it holds. Adding a layout is one class here and one ``choices.Layout``
member.

    FolderSplit   {layout: folder, images, labels?, priors?, background?}
    OSTSplit      {layout: ost, root, labels?, background?}
    PairedSplit   {layout: paired, hr, lr, labels?, priors?, lr_suffix?}   given LR (real pairs): any split
    DemoSplit     {layout: demo}                                     the embedded demo set
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, is_dataclass
from pathlib import Path
from typing import ClassVar

from ..choices import Layout
from ..config import ConfigError
from .sources import SourceItem, folder_items, ost_items, paired_items


@dataclass(frozen=True)
class Split:
    """What every layout answers. ``key`` is the config key quoted in errors (``data.train``)."""

    key: str
    #: the images come with their LR (read as files, never prepared into a store)
    given_lr: ClassVar[bool] = False
    #: a training split of this layout can give up a share of its images for validation
    can_hold_out: ClassVar[bool] = False
    #: the files are generated on first use (``resolve`` says where)
    generated: ClassVar[bool] = False

    def resolve(self, root: Path, split: str) -> Split:
        """The split whose files are read: itself, or a generated set's folders under ``root``."""
        return self

    def items(self, class_names: Sequence[str], background: bool = False) -> list[SourceItem]:
        """The split's source items in name order; ``background``: read as a background-only set (category 0)."""
        raise NotImplementedError

    def background_items(self) -> list[SourceItem]:
        """The background mix's items (category 0), or none."""
        return []

    @property
    def has_background(self) -> bool:
        return False


def _require(key: str, value, what: str) -> str:
    if not value:
        raise ConfigError(f"{key} is not set: give {what}")
    return str(value)


@dataclass(frozen=True)
class FolderSplit(Split):
    images: str | None = None
    labels: str | None = None
    priors: str | None = None
    background: str | None = None  # the background images' folder
    can_hold_out: ClassVar[bool] = True

    def items(self, class_names: Sequence[str], background: bool = False) -> list[SourceItem]:
        images = _require(f"{self.key}.images", self.images, "the folder of HR images")
        return folder_items(images, self.labels, self.priors, category=0 if background else -1)

    def background_items(self) -> list[SourceItem]:
        return folder_items(self.background, category=0) if self.background else []

    @property
    def has_background(self) -> bool:
        return bool(self.background)


@dataclass(frozen=True)
class OSTSplit(Split):
    root: str | None = None
    labels: str | None = None
    background: str | None = None
    can_hold_out: ClassVar[bool] = True

    def items(self, class_names: Sequence[str], background: bool = False) -> list[SourceItem]:
        root = _require(f"{self.key}.root", self.root, "the folder with one subfolder per class")
        return ost_items(root, class_names, self.labels)

    background_items = FolderSplit.background_items
    has_background = FolderSplit.has_background


@dataclass(frozen=True)
class PairedSplit(Split):
    hr: str | None = None
    lr: str | None = None
    labels: str | None = None
    priors: str | None = None
    lr_suffix: str = ""
    given_lr: ClassVar[bool] = True
    can_hold_out: ClassVar[bool] = True

    def items(self, class_names: Sequence[str], background: bool = False) -> list[SourceItem]:
        hr = _require(f"{self.key}.hr", self.hr, "the folder of HR images")
        lr = _require(f"{self.key}.lr", self.lr, "the folder of LR images")
        return paired_items(hr, lr, self.labels, self.lr_suffix or "", self.priors)


@dataclass(frozen=True)
class DemoSplit(Split):
    """Resolved by the datamodule into the generated set's folders (``resolve``)."""

    generated: ClassVar[bool] = True

    def resolve(self, root: Path, split: str) -> FolderSplit:
        """The ``FolderSplit`` of the generated demo set at ``root`` for ``split`` (train, val or test)."""
        background = str(root / "background" / "images") if split == "train" else None
        return FolderSplit(
            self.key, images=str(root / split / "images"), labels=str(root / split / "labels"), background=background
        )

    def items(self, class_names: Sequence[str], background: bool = False) -> list[SourceItem]:
        raise ConfigError(f"{self.key}.layout=demo is the generated demo set; the datamodule resolves it")


LAYOUTS: dict[Layout, type[Split]] = {
    Layout.folder: FolderSplit,
    Layout.ost: OSTSplit,
    Layout.paired: PairedSplit,
    Layout.demo: DemoSplit,
}


def split_from_config(spec, key: str) -> Split | None:
    """A config mapping (``config.SplitSchema``'s keys, or a plain dict) as its layout's ``Split``.

    Args:
        spec: ``{layout: ..., <the layout's keys>}`` (``layout`` defaults to ``folder``; a mapping or a
            ``config.SplitSchema``), a ``Split`` (returned as it is) or None (no split).
        key: the config key quoted in errors, e.g. ``data.train``.

    Returns:
        The layout's ``Split``, or None. A key that is set but belongs to another layout, or an unknown
        layout, is a ``ConfigError`` naming the key and the layout's own keys.
    """
    if spec is None or isinstance(spec, Split):
        return spec
    values = asdict(spec) if is_dataclass(spec) else dict(spec)
    layout = values.pop("layout", None) or Layout.folder
    name = getattr(layout, "value", layout)
    if name not in {m.value for m in Layout}:
        raise ConfigError(f"{key}.layout={name}: must be one of {', '.join(m.value for m in Layout)}")
    cls = LAYOUTS[Layout(name)]
    own = {f.name for f in fields(cls)} - {"key"}
    background = values.pop("background", None)
    if background is not None:
        # {images: DIR} in the configs; a section without its folder is a mistake, not "no background"
        extra = sorted(set(background) - {"images"}) if isinstance(background, Mapping) else ["(not a mapping)"]
        if extra:
            raise ConfigError(f"{key}.background.{extra[0]}: not a key of the background (its key: images)")
        values["background"] = _require(
            f"{key}.background.images",
            background.get("images"),
            f"the background images' folder, or {key}.background=null",
        )
    stray = sorted(k for k, v in values.items() if v not in (None, "") and k not in own)
    if stray:
        raise ConfigError(
            f"{key}.{stray[0]}={values[stray[0]]}: not a key of layout {name} (its keys: {', '.join(sorted(own))})"
        )
    return cls(key, **{k: v for k, v in values.items() if k in own and v is not None})
