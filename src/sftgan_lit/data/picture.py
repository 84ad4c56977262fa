"""The images people have, read at full precision for inference: 8- and 16-bit, grey or colour, with or
without alpha, as ``Picture`` (float colour, float alpha, and how the file stored them, so that the output is
written the same way: 16-bit in, 16-bit out; grey in, grey out; alpha in, alpha out).

PNG and TIFF are decoded by codecs that keep 16-bit samples (``imagecodecs`` for PNG, ``tifffile`` for TIFF;
PIL hands out the high byte of a 48-bit PNG or TIFF without a word); everything else through PIL, with its
decompression-bomb guard. The EXIF orientation is applied, as ``io.read_image`` does. What cannot be read is an
``ImageError`` naming the file and the reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .io import DEFAULT_MAX_PIXELS, ImageError, PngStripWriter, decode_image, open_image, upright

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Picture:
    """An image as inference reads it.

    ``rgb``: float32 ``(H, W, 3)`` in [0, 1] (a grey image's one channel repeated); ``alpha``: float32 ``(H, W)``
    in [0, 1], or None when the file has no alpha channel; ``bits``: 8 or 16, the precision of the file's
    samples; ``grey``: the file stores one colour channel.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    bits: int = 8
    grey: bool = False

    @property
    def levels(self) -> int:
        """The largest sample value of the file's depth: 255 or 65535."""
        return (1 << self.bits) - 1


def _orientation(path: Path) -> int:
    """The EXIF orientation tag (1: upright) from the file's header."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            return int(img.getexif().get(0x0112, 1))
    except (OSError, SyntaxError, ValueError):
        return 1


def _turned_array(array: np.ndarray, orientation: int) -> np.ndarray:
    """``array`` ``(H, W, ...)`` turned as EXIF orientation ``orientation`` says (PIL's ``exif_transpose``)."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: a.swapaxes(0, 1)[:, ::-1],
        7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
        8: lambda a: a.swapaxes(0, 1)[::-1],
    }
    return np.ascontiguousarray(ops[orientation](array)) if orientation in ops else array


def _png_depth(path: Path) -> int | None:
    """A PNG's bit depth from its IHDR chunk, or None for another format."""
    with path.open("rb") as f:
        head = f.read(26)
    if len(head) < 26 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    return head[24]


def _from_samples(samples: np.ndarray, path: Path, alpha_channel: bool | None = None) -> Picture:
    """A decoded array ``(H, W)``, ``(H, W, 1..4)`` of uint8 / uint16 samples as a ``Picture``."""
    if samples.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"{path}: {samples.dtype} samples; sftgan_lit reads 8- and 16-bit images")
    bits = 16 if samples.dtype == np.uint16 else 8
    if samples.ndim == 2:
        samples = samples[..., None]
    channels = samples.shape[-1]
    if channels not in (1, 2, 3, 4):
        raise ImageError(f"{path}: {channels} channels; sftgan_lit reads grey, grey+alpha, RGB and RGBA")
    has_alpha = channels in (2, 4) if alpha_channel is None else alpha_channel
    colour = samples[..., : channels - 1] if has_alpha else samples
    values = colour.astype(np.float32) / ((1 << bits) - 1)
    grey = values.shape[-1] == 1
    rgb = np.repeat(values, 3, axis=-1) if grey else values[..., :3]
    alpha = samples[..., -1].astype(np.float32) / ((1 << bits) - 1) if has_alpha else None
    return Picture(np.ascontiguousarray(rgb), alpha, bits, grey)


def _read_png16(path: Path) -> Picture:
    import imagecodecs

    try:
        samples = imagecodecs.png_decode(path.read_bytes())
    except Exception as err:  # the codec's own error types: a corrupt or truncated file
        raise ImageError(f"{path}: corrupt 16-bit PNG ({type(err).__name__}: {err})") from err
    return _from_samples(samples, path)


def _read_tiff(path: Path, max_pixels: int) -> Picture:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if len(tif.pages) > 1:  # reading the first alone would drop the others without a word
                raise ImageError(
                    f"{path}: holds {len(tif.pages)} frames or pages; this reads single images: "
                    "save each one as its own file"
                )
            page = tif.pages[0]
            h, w = page.shape[:2] if page.planarconfig != 2 or page.ndim < 3 else page.shape[1:3]
            if h * w > max_pixels:
                raise ImageError(
                    f"{path}: {w}x{h} = {w * h / 1e6:.1f} MP exceeds the limit of {max_pixels / 1e6:.1f} MP "
                    "(decompression-bomb guard); raise max_pixels if the file is trusted"
                )
            samples = page.asarray()
            if page.ndim == 3 and page.planarconfig == 2:  # separate planes: (S, H, W)
                samples = np.moveaxis(samples, 0, -1)
            photometric = int(page.photometric)
            alpha = bool(page.extrasamples)
    except ImageError:
        raise
    except Exception as err:  # tifffile's and its codecs' errors: an unreadable file
        raise ImageError(f"{path}: unreadable TIFF ({type(err).__name__}: {err})") from err
    if photometric not in (0, 1, 2):  # min-is-white, min-is-black, RGB
        raise ImageError(f"{path}: TIFF photometric {photometric} (e.g. CMYK, palette, YCbCr); convert it to RGB")
    if photometric == 0 and samples.dtype in (np.uint8, np.uint16):
        samples = np.iinfo(samples.dtype).max - samples  # white is zero: invert to grey levels
    return _from_samples(samples, path, alpha)


def _read_pil(path: Path, max_pixels: int) -> Picture:
    img = open_image(path, max_pixels)
    try:
        decode_image(img, path)
        img = upright(img)
        mode = img.mode
        if mode in ("I;16", "I;16B", "I;16L", "I"):
            raw = np.asarray(img).astype(np.int64)
            if raw.min() < 0 or raw.max() > 65535:
                raise ImageError(f"{path}: {mode} samples outside 0..65535; sftgan_lit reads 8- and 16-bit images")
            return _from_samples(raw.astype(np.uint16), path)
        if mode == "1":
            return _from_samples(np.asarray(img).astype(np.uint8) * 255, path)
        if mode == "P":
            img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        elif mode == "PA":
            img = img.convert("RGBA")
        if img.mode not in ("L", "LA", "RGB", "RGBA"):
            raise ImageError(f"{path}: unsupported colour mode {mode!r} (e.g. CMYK); convert it to RGB")
        return _from_samples(np.asarray(img), path)
    finally:
        img.close()


def read_picture(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS, min_size: int = 1) -> Picture:
    """Read an image for inference at the precision it was stored (``Picture``).

    Args:
        path: a PNG, TIFF, JPEG, WebP, BMP... file; 16-bit PNG and TIFF keep their 16 bits.
        max_pixels: the decompression-bomb guard.
        min_size: the shortest side allowed.

    Returns:
        The ``Picture``: ``rgb`` float32 ``(H, W, 3)`` in [0, 1], ``alpha`` ``(H, W)`` or None, ``bits``, ``grey``.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        picture = _read_tiff(path, max_pixels)
        picture = _turned(picture, _orientation(path))
    elif _png_depth(path) == 16:
        open_image(path, max_pixels).close()  # the bomb guard reads the header's size
        picture = _turned(_read_png16(path), _orientation(path))
    else:
        picture = _read_pil(path, max_pixels)
    h, w = picture.rgb.shape[:2]
    if min(h, w) < min_size:
        raise ImageError(f"{path}: {w}x{h} is too small (shorter side must be at least {min_size} px)")
    return picture


def _turned(picture: Picture, orientation: int) -> Picture:
    alpha = _turned_array(picture.alpha, orientation) if picture.alpha is not None else None
    return Picture(_turned_array(picture.rgb, orientation), alpha, picture.bits, picture.grey)


#: BT.601 luma weights: a grey file's output channel from the RGB the generator draws
LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class PictureFormat:
    """How an output is written: ``bits`` per sample (8 or 16), ``grey`` (one colour channel), ``alpha``."""

    bits: int = 8
    grey: bool = False
    alpha: bool = False

    @classmethod
    def of(cls, picture: Picture) -> PictureFormat:
        """The input's own format: what its output is written as."""
        return cls(picture.bits, picture.grey, picture.alpha is not None)

    @property
    def channels(self) -> int:
        return (1 if self.grey else 3) + int(self.alpha)

    def describe(self) -> str:
        kind = ("grey" if self.grey else "RGB") + ("A" if self.alpha else "")
        return f"{self.bits}-bit {kind}"

    def encode(self, rgb: np.ndarray, alpha: np.ndarray | None = None) -> np.ndarray:
        """``rgb`` ``(H, W, 3)``, float in [0, 1] or already 8-bit (uint8), and ``alpha`` ``(H, W)`` float in
        [0, 1] -> the samples of this format, ``(H, W, channels)`` uint8 or uint16, rounded (clamped first, as
        the original's ``tensor2img``). 8-bit RGB is passed through as it is."""
        if self.alpha != (alpha is not None):
            raise ValueError(f"a {self.describe()} output needs {'an' if self.alpha else 'no'} alpha channel")
        if rgb.dtype == np.uint8:
            if self.bits == 8 and not self.grey and alpha is None:
                return rgb
            rgb = rgb.astype(np.float32) / 255
        rgb = np.clip(rgb, 0, 1)  # a grey output is the luma of the RGB image the generator's output is
        colour = rgb @ np.asarray(LUMA, dtype=np.float32)[:, None] if self.grey else rgb
        parts = [colour] + ([alpha[..., None]] if alpha is not None else [])
        values = np.concatenate(parts, axis=-1) if len(parts) > 1 else colour
        top = (1 << self.bits) - 1
        return np.round(np.clip(values, 0, 1) * top).astype(np.uint16 if self.bits == 16 else np.uint8)


def write_picture(path: str | os.PathLike, samples: np.ndarray, compress_level: int = 6) -> None:
    """Write ``PictureFormat.encode``'s samples ``(H, W, C)`` (uint8 or uint16, C = 1-4) as a PNG, atomically."""
    h, w = samples.shape[:2]
    channels = samples.shape[2] if samples.ndim == 3 else 1
    bits = 16 if samples.dtype == np.uint16 else 8
    with PngStripWriter(path, w, h, channels, bits, compress_level) as out:
        out.write(samples)
