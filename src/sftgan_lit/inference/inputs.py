"""What inference reads: the input files (a file, a folder, a glob or the demo scenes), each image as the
LR to super-resolve, and its companion files (label map, prior file, LR of a paired set, edit mask).

Every reader raises an error naming the file and the reason (``INPUT_ERRORS``), which the batch loops
report per file before going on with the others.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import ConfigError
from ..data.io import ImageError, not_an_image, open_image, read_label_map, scan_images
from ..data.picture import Picture, PictureFormat, read_picture
from ..data.readers import load_array_file, load_prior_file
from ..data.transforms import lr_from_image
from ..priors import Channel, PriorError

# Errors that belong to one input file: reported and skipped, never fatal for the batch.
INPUT_ERRORS = (ImageError, PriorError, FileNotFoundError)


def find_inputs(spec: str) -> tuple[list[Path], dict[str, str]]:
    """An image file, a folder (its images, sorted) or a glob pattern -> ``(files, skipped)``: every entry of
    the folder or match that is not an image file read here, with why (``data.io.not_an_image``), so that
    nothing the user pointed at goes uncounted. No image at all is an error."""
    path = Path(os.path.expanduser(spec))
    if path.is_dir():
        files, skipped = scan_images(path)
    elif path.is_file():
        files, skipped = [path], {}
    elif any(ch in spec for ch in "*?["):
        files, skipped = [], {}
        for p in sorted(Path(p) for p in glob.glob(os.path.expanduser(spec), recursive=True)):
            reason = not_an_image(p)
            if reason is None:
                files.append(p)
            elif not p.is_dir():  # a recursive glob matches the folders it walks through: they are not inputs
                skipped[str(p)] = reason
    else:
        raise FileNotFoundError(f"images={spec}: no such file or folder")
    if not files:
        extra = (
            f" ({len(skipped)} other entries: {', '.join(Path(k).name for k in list(skipped)[:5])})" if skipped else ""
        )
        raise FileNotFoundError(f"images={spec}: no image files found{extra}")
    return files, skipped


def input_files(
    images: str, labels: str | None, demo_split: str, data_cfg
) -> tuple[list[Path], Path | None, dict[str, str]]:
    """``images`` as files, the label folder (``labels``, or the demo split's labels for ``images=demo``: the
    demo set is generated on first use with ``data_cfg``'s settings), and the entries skipped with why."""
    labels_dir = Path(labels) if labels else None
    if images != "demo":
        files, skipped = find_inputs(str(images))
        return files, labels_dir, skipped
    from ..data.demo import DemoConfig, default_cache_dir, generate_demo

    cache = Path(data_cfg.cache_dir) if data_cfg.get("cache_dir") else default_cache_dir()
    root = generate_demo(cache / "demo", DemoConfig(**data_cfg.demo)) / demo_split
    files, skipped = find_inputs(str(root / "images"))
    return files, labels_dir or root / "labels", skipped


def companion(folder: Path, image: Path, suffixes: tuple[str, ...], what: str) -> Path:
    """The file of ``folder`` with ``image``'s stem and one of ``suffixes``, or a ``FileNotFoundError`` naming it."""
    for suffix in suffixes:
        candidate = folder / f"{image.stem}{suffix}"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{image}: no {what} {folder / image.stem}{{{','.join(suffixes)}}}")


@dataclass
class InputImage:
    """One input as inference uses it.

    ``lr``: ``(1, 3, h, w)`` in [0, 1] at the file's precision; ``hr``: the HR image cut to ``scale`` x the LR
    size (float32 ``(H, W, 3)`` in [0, 1]; only with ``mode="hr"`` or a paired LR); ``labels``: its label map
    ``(H, W)`` uint8 at the output size when asked for; ``probs``: its prior file ``(C, H, W)`` when a prior
    folder is given; ``alpha``: its alpha channel at the LR size ``(1, 1, h, w)``, or None; ``format``: how the
    file stored it (bits, grey, alpha), which its output keeps.
    """

    path: Path
    lr: torch.Tensor
    hr: np.ndarray | None = None
    labels: np.ndarray | None = None
    probs: torch.Tensor | None = None
    alpha: torch.Tensor | None = None
    format: PictureFormat = PictureFormat()
    #: continuous prior channels given as files, ``{name: (h, w) or (H, W)}`` in the channel's unit
    maps: dict[str, torch.Tensor] = field(default_factory=dict)


#: how a continuous channel's map may be stored (``<stem>.<channel><suffix>`` in the prior folder)
MAP_SUFFIXES = (".npy", ".pt", ".png")


def read_channel_map(
    path: Path, channel: Channel, lr_size: tuple[int, int], scale: int, hr_crop: tuple[int, int] | None = None
) -> torch.Tensor:
    """A continuous channel's map file -> float32 ``(h, w)`` (LR size) or ``(H, W)`` (output size), in the channel's unit.

    ``.npy`` / ``.pt``: ``(H, W)`` or ``(1, H, W)`` values in the channel's unit (``channel.unit``); ``.png``:
    grey levels (8- or 16-bit) spanning the channel's range (0: ``low``, white: ``high``). A map at the LR size
    covers each LR pixel's ``scale x scale`` outputs (``priors.ChannelMap``); at the HR size before modcrop it is cut.
    Wrong size, channel count, dtype, non-finite values or values outside the range: a ``PriorError`` or
    ``ImageError`` naming the file and what differs.
    """
    if path.suffix.lower() == ".png":
        try:
            fraction = read_fraction_map(path, f"{channel.name} map")
        except ConfigError as err:  # a bad map is this image's failure
            raise ImageError(str(err)) from None
        values = channel.physical(torch.from_numpy(fraction))
    else:
        values = load_array_file(path, "(H, W)")
        if values.dim() == 3 and values.shape[0] == 1:
            values = values[0]
        if values.dim() != 2:
            raise PriorError(f"{path}: a {channel.name} map is one channel (H, W), got shape {tuple(values.shape)}")
    channel.check(values, str(path))
    return fit_channel_map(values, path, channel, lr_size, scale, hr_crop)


def fit_channel_map(
    values: torch.Tensor,
    path: Path,
    channel: Channel,
    lr_size: tuple[int, int],
    scale: int,
    hr_crop: tuple[int, int] | None = None,
) -> torch.Tensor:
    """A map read from ``path`` for an image of LR size ``lr_size``: as it is at the LR or the output size, cut
    when it has the HR size before modcrop (``hr_crop``); any other size is a ``PriorError`` naming the file."""
    (h, w), s = lr_size, scale
    if hr_crop is not None and tuple(values.shape) == tuple(hr_crop):
        return values[: h * s, : w * s].contiguous()
    if tuple(values.shape) not in ((h, w), (h * s, w * s)):
        raise PriorError(
            f"{path}: {channel.name} map is {values.shape[1]}x{values.shape[0]}; it must be the size of its image "
            f"({w}x{h} LR) or of the output ({w * s}x{h * s})"
        )
    return values


@dataclass
class ChannelOverrides:
    """Continuous channels set for every input from the command line (``noise_level=``: a number; ``noise_map=``:
    a map, read once, in the channel's unit, with its file), which win over the maps in the prior folder."""

    values: dict[str, float] = field(default_factory=dict)
    files: dict[str, tuple[Channel, Path, torch.Tensor]] = field(default_factory=dict)

    def maps(self, item: InputImage, scale: int) -> dict[str, float | torch.Tensor]:
        """``item``'s continuous channels: its own map files, then these on top (a map must fit its size)."""
        lr_size = tuple(item.lr.shape[-2:])
        out: dict[str, float | torch.Tensor] = {**item.maps, **self.values}
        for name, (channel, path, values) in self.files.items():
            out[name] = fit_channel_map(values, path, channel, lr_size, scale)
        return out


def picture_lr(picture: Picture, mode: str, scale: int) -> tuple[torch.Tensor, torch.Tensor | None, tuple | None]:
    """A picture as the LR to super-resolve (``mode``: ``lr`` as it is, ``hr`` by the paper's protocol, at the
    file's sample depth): colour ``(1, 3, h, w)``, alpha ``(1, 1, h, w)`` or None, and for ``hr`` the HR size
    before modcrop."""
    lr, hr_crop = lr_from_image(picture.rgb, mode, scale, picture.levels)
    alpha = None
    if picture.alpha is not None:
        alpha, _ = lr_from_image(picture.alpha[..., None], mode, scale, picture.levels)
    return lr, alpha, hr_crop


@dataclass
class InputReader:
    """Reads inputs and their companions. ``mode``: ``hr`` (make the LR, the paper's protocol) or ``lr``;
    ``labels`` / ``priors`` / ``lr_folder``: companion folders (same stems). Inputs are read at the precision
    they were stored (``data.picture``): 8 or 16 bits, grey or colour, with or without alpha."""

    scale: int
    num_classes: int
    mode: str = "lr"
    labels: Path | None = None
    priors: Path | None = None
    lr_folder: Path | None = None
    max_pixels: int = 64_000_000
    #: the prior's continuous channels, whose maps the prior folder may hold (``<stem>.<channel>.npy|.pt|.png``)
    channels: tuple[Channel, ...] = ()
    #: names a given LR may have in ``lr_folder``: ``{stem}`` (the HR's), ``{base}`` (the stem without a trailing
    #: ``_HR``), ``{scale}``; e.g. DIV2K's ``{stem}x{scale}``
    lr_names: tuple[str, ...] = ("{stem}",)

    def lr_path(self, path: Path) -> Path:
        """The given LR of HR ``path`` in ``lr_folder`` (``lr_names``, the HR's suffix or .png), or a
        ``FileNotFoundError`` naming what was looked for."""
        base = path.stem[:-3] if path.stem.endswith("_HR") else path.stem
        stems = [n.format(stem=path.stem, base=base, scale=self.scale) for n in self.lr_names]
        for stem in stems:
            for suffix in dict.fromkeys((path.suffix, ".png")):
                if (self.lr_folder / f"{stem}{suffix}").is_file():
                    return self.lr_folder / f"{stem}{suffix}"
        raise FileNotFoundError(f"{path}: no LR image {self.lr_folder}/{{{','.join(stems)}}}{{{path.suffix},.png}}")

    def read(self, path: Path, with_labels: bool) -> InputImage:
        """Read ``path`` (and its label map when ``with_labels`` and a label folder is set)."""
        picture = read_picture(path, max_pixels=self.max_pixels)
        image = picture.rgb
        s = self.scale
        if self.lr_folder is not None:
            lr_path = self.lr_path(path)
            given = read_picture(lr_path, max_pixels=self.max_pixels)
            lr, alpha, _ = picture_lr(given, "lr", s)
            h, w = lr.shape[-2:]
            hr = image[: h * s, : w * s]
            if (image.shape[0] // s, image.shape[1] // s) != (h, w):  # the HR cut to the scale is LR x scale exactly
                raise ImageError(
                    f"{lr_path}: LR {w}x{h} does not match its HR {path} ({image.shape[1]}x{image.shape[0]}) at x{s}: "
                    f"expected {image.shape[1] // s}x{image.shape[0] // s}"
                )
            hr_crop, fmt = image.shape[:2], PictureFormat.of(given)
        else:
            lr, alpha, hr_crop = picture_lr(picture, self.mode, s)
            h, w = lr.shape[-2:]
            hr = image[: h * s, : w * s] if self.mode == "hr" else None
            fmt = PictureFormat.of(picture)
        H, W = h * s, w * s
        item = InputImage(path, lr, hr, alpha=alpha, format=fmt)
        if with_labels and self.labels is not None:
            item.labels = self._labels(path, (h, w), hr_crop)
        if self.priors is not None:
            for channel in self.channels:
                found = [self.priors / f"{path.stem}.{channel.name}{x}" for x in MAP_SUFFIXES]
                found = [f for f in found if f.is_file()]
                if len(found) > 1:
                    raise PriorError(
                        f"{path}: {len(found)} {channel.name} maps ({', '.join(f.name for f in found)}); keep one"
                    )
                if found:
                    item.maps[channel.name] = read_channel_map(found[0], channel, (h, w), s, hr_crop)
            try:
                prior_path = companion(self.priors, path, (".npy", ".pt", ".pth"), "prior file")
            except FileNotFoundError:
                if not item.maps:  # the folder holds this image's continuous maps only: its classes come from the prior
                    raise
                return item
            probs = load_prior_file(prior_path, self.num_classes, hr_crop or (H, W))[:H, :W]
            item.probs = torch.from_numpy(np.ascontiguousarray(probs)).permute(2, 0, 1)
        return item

    def _labels(self, path: Path, lr_size: tuple[int, int], hr_crop: tuple[int, int] | None) -> np.ndarray:
        """The label map at the output size: given at the HR size before modcrop, the LR size or the output size."""
        (h, w), s = lr_size, self.scale
        H, W = h * s, w * s
        label_path = companion(self.labels, path, (".png",), "label map")
        labels = read_label_map(label_path, self.num_classes)
        if hr_crop is not None and labels.shape == tuple(hr_crop):
            return labels[:H, :W]
        if labels.shape == (h, w):
            return np.repeat(np.repeat(labels, s, 0), s, 1)
        if labels.shape != (H, W):
            raise ImageError(
                f"{label_path}: label map is {labels.shape[1]}x{labels.shape[0]}; it must be the size of its image "
                f"({w}x{h} LR) or of the output ({W}x{H})"
            )
        return labels


def read_mask_image(path: str | os.PathLike, max_pixels: int = 64_000_000) -> np.ndarray:
    """A prior-edit mask file decoded by its mode into what it means (``priors.class_mask_from_image`` reads it):

    - single-channel grey (8- or 16-bit, mode L / I;16): class indices, 255 = keep, as an integer ``(H, W)``;
    - anything in colour (RGB, RGBA, palette, 16-bit RGB): ``(H, W, 4)`` uint8 RGBA, the palette resolved to
      its colours and a missing alpha opaque, so the colours (and transparency = keep) decide.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prior_mask={path}: file not found")
    img = open_image(path, max_pixels)
    try:
        if img.mode in ("L", "I", "I;16", "I;16B", "I;16L"):
            return np.asarray(img, dtype=np.int64)
    finally:
        img.close()
    picture = read_picture(path, max_pixels)
    rgb = np.round(picture.rgb * 255).astype(np.uint8)
    alpha = np.round((picture.alpha if picture.alpha is not None else np.ones(rgb.shape[:2])) * 255).astype(np.uint8)
    return np.concatenate([rgb, alpha[..., None]], axis=-1)


def read_fraction_map(path: str | os.PathLike, key: str, max_pixels: int = 64_000_000) -> np.ndarray:
    """A grey map of fractions (``strength_map=``) decoded by its precision: float32 ``(H, W)`` in [0, 1]
    (8-bit 0..255 and 16-bit 0..65535 both span [0, 1]). A colour that is not grey, or a pixel that is not
    opaque, is refused naming ``key``, the file and how many pixels."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{key}={path}: file not found")
    try:
        picture = read_picture(path, max_pixels)
    except ImageError as err:
        raise ConfigError(f"{key}={path}: {err}") from err
    rgb = picture.rgb
    coloured = int((np.ptp(rgb, axis=-1) > 0.5 / 255).sum())
    if coloured:
        raise ConfigError(f"{key}={path}: {coloured} pixels are not grey; the map is grey levels (0 to white)")
    if picture.alpha is not None and (see_through := int((picture.alpha < 1).sum())):
        raise ConfigError(f"{key}={path}: {see_through} pixels are not opaque; a map has no transparent pixels")
    return np.ascontiguousarray(rgb[..., 0], dtype=np.float32)
