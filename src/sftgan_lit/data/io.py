"""Reading untrusted image and label files, and writing files atomically.

Every check names the file and the reason, so that ``sftgan-prepare`` can report each bad file instead
of skipping it silently. Conversions to RGB happen only where they lose nothing (8-bit grayscale,
palette without transparency, alpha that is fully opaque, 16-bit whose values are exact multiples of
257); anything else is an ``ImageError``.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from ..categories import VOID_LABEL
from ..files import atomic_write_bytes

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")
# Default upper bound on pixels per image (PIL's own bomb limit is ~89 MP): far above any SR training
# photo (DIV2K is ~2.8 MP), far below what would exhaust memory when decoded.
DEFAULT_MAX_PIXELS = 64_000_000


class ImageError(ValueError):
    """A file that cannot be used as an image or label map; the message names the file and the reason."""


def open_image(path: Path, max_pixels: int) -> Image.Image:
    if not path.is_file():
        raise ImageError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():
            # PIL warns (and later raises) on its own limit; we check our limit ourselves below.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(f"{path}: decompression bomb refused ({err})") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"{path}: unreadable image ({type(err).__name__}: {err})") from err
    w, h = img.size
    if w * h > max_pixels:
        img.close()
        raise ImageError(
            f"{path}: {w}x{h} = {w * h / 1e6:.1f} MP exceeds the limit of {max_pixels / 1e6:.1f} MP "
            "(decompression-bomb guard); raise max_pixels if the file is trusted"
        )
    frames = getattr(img, "n_frames", 1)
    if frames > 1:  # reading the first alone would drop the others without a word
        img.close()
        raise ImageError(
            f"{path}: holds {frames} frames or pages; this reads single images: save each one as its own file"
        )
    return img


def decode_image(img: Image.Image, path: Path) -> None:
    """Decode ``img`` now, or an ``ImageError`` naming ``path``: a truncated file or corrupt image data."""
    try:
        img.load()
    except (OSError, SyntaxError, ValueError) as err:
        # PIL reports a cut-off file as "image file is truncated (N bytes not processed)".
        reason = "truncated file" if "truncat" in str(err).lower() else "corrupt image data"
        raise ImageError(f"{path}: {reason} ({err})") from err


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS, min_size: int = 1) -> np.ndarray:
    """Read an image as RGB uint8 ``(H, W, 3)``, converting only where no information is lost.

    Raises ``ImageError`` for unreadable, truncated, too large (``max_pixels``), too small
    (``min_size`` on the shorter side), transparent, CMYK or truly 16-bit images (16-bit grey whose
    values are multiples of 257 is 8-bit in disguise and is read). The EXIF orientation is applied, as
    image viewers do, so a phone photo comes out the way it was shot.
    """
    path = Path(path)
    img = open_image(path, max_pixels)
    try:
        if _is_rgb16(img):
            # PIL would hand out the high byte of each 16-bit sample without a word
            raise ImageError(
                f"{path}: 16-bit RGB ({img.format}); sftgan_lit reads 8-bit images: convert it to 8-bit RGB "
                "yourself (the tone mapping is your choice)"
            )
        decode_image(img, path)
        img = upright(img)
        w, h = img.size
        if min(w, h) < min_size:
            raise ImageError(f"{path}: {w}x{h} is too small (shorter side must be at least {min_size} px)")
        mode = img.mode
        if mode == "RGB":
            arr = np.asarray(img)
        elif mode == "L":
            arr = np.repeat(np.asarray(img)[..., None], 3, axis=2)
        elif mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            alpha = np.asarray(rgba)[..., 3]
            if alpha.min() < 255:
                raise ImageError(
                    f"{path}: {mode} image with transparent pixels ({int((alpha < 255).sum())} of {alpha.size}); "
                    "flatten it onto a background first, SR needs RGB"
                )
            arr = np.asarray(rgba)[..., :3]
        elif mode == "P":
            arr = np.asarray(img.convert("RGB"))
        elif mode in ("I;16", "I;16B", "I;16L", "I"):
            raw = np.asarray(img).astype(np.int64)
            if raw.min() < 0 or raw.max() > 65535 or np.any(raw % 257):
                raise ImageError(
                    f"{path}: 16-bit image ({mode}) with values that do not fit 8 bits losslessly; "
                    "convert it to 8-bit RGB yourself (the tone mapping is your choice)"
                )
            arr = np.repeat((raw // 257).astype(np.uint8)[..., None], 3, axis=2)
        elif mode == "1":
            arr = np.repeat((np.asarray(img).astype(np.uint8) * 255)[..., None], 3, axis=2)
        else:
            raise ImageError(f"{path}: unsupported colour mode {mode!r} (e.g. CMYK); convert it to 8-bit RGB")
        return np.ascontiguousarray(arr, dtype=np.uint8)
    finally:
        img.close()


def _is_rgb16(img: Image.Image) -> bool:
    """True for images whose samples are 16-bit colour that PIL decodes as 8-bit RGB (e.g. 48-bit PNGs)."""
    raw = [t.args for t in img.tile if isinstance(t.args, str)] if img.tile else []
    return img.mode in ("RGB", "RGBA") and any(";16" in r for r in raw)


def upright_size(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """``(H, W)`` of an image file as ``read_image`` returns it (EXIF orientation applied), from its header only."""
    img = open_image(Path(path), max_pixels)
    try:
        w, h = img.size
        turned = img.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # the orientations that swap the axes
        return (w, h) if turned else (h, w)
    finally:
        img.close()


def upright(img: Image.Image) -> Image.Image:
    """The image turned as its EXIF orientation says (a new image when it is turned)."""
    from PIL import ImageOps

    if img.getexif().get(0x0112, 1) == 1:
        return img
    turned = ImageOps.exif_transpose(img)
    img.close()
    return turned


def read_label_map(path: str | os.PathLike, num_classes: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read a label map (8-bit grayscale or palette PNG of class indices) as uint8 ``(H, W)``.

    Values must be in ``[0, num_classes)`` or 255 (void, ignored).
    """
    path = Path(path)
    img = open_image(path, max_pixels)
    try:
        decode_image(img, path)
        img = upright(img)
        if img.mode not in ("L", "P"):
            raise ImageError(
                f"{path}: label maps must be single-channel 8-bit PNGs of class indices (mode L or P), got {img.mode!r}"
            )
        labels = np.array(img, dtype=np.uint8)
    finally:
        img.close()
    bad = (labels >= num_classes) & (labels != VOID_LABEL)
    if bad.any():
        values = sorted(int(v) for v in np.unique(labels[bad]))[:8]
        raise ImageError(f"{path}: label values {values} outside [0, {num_classes}) and not 255 (void)")
    return labels


def write_png(path: str | os.PathLike, array: np.ndarray, compress_level: int = 6) -> None:
    """Write a uint8 ``(H, W)`` or ``(H, W, 3)`` array as PNG, atomically (``compress_level`` 1 for speed, 9 for size)."""
    import io

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array)).save(buf, format="PNG", compress_level=compress_level)
    atomic_write_bytes(path, buf.getvalue())


def scan_images(folder: str | os.PathLike) -> tuple[list[Path], dict[str, str]]:
    """``(image files directly in folder, sorted; every other entry -> why it is not one of them)``: a
    subfolder, a broken link, a file of another type. A missing folder is an error naming it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder not found: {folder}")
    files, skipped = [], {}
    for p in sorted(folder.iterdir()):
        reason = not_an_image(p)
        if reason is None:
            files.append(p)
        else:
            skipped[str(p)] = reason
    return files, skipped


def not_an_image(path: Path) -> str | None:
    """Why ``path`` is not an image file this package reads (judged by its type, not its content), or None."""
    if path.is_symlink() and not path.exists():
        return "a broken link"
    if path.is_dir():
        return "a folder (folders are not searched: point images= at it, or use a glob such as DIR/**/*.png)"
    if not path.is_file():
        return "not a regular file"
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return f"not an image type read here ({path.suffix or 'no extension'}; reads {', '.join(IMAGE_SUFFIXES)})"
    return None


class PngStripWriter:
    """A PNG written strip by strip (top to bottom), so an image never has to be held whole: grey
    ``(rows, W)`` / ``(rows, W, 1)``, grey+alpha ``(rows, W, 2)``, RGB ``(rows, W, 3)`` or RGBA ``(rows, W, 4)``
    strips of 8-bit (uint8) or 16-bit (uint16) samples, each row Sub-filtered and deflated into IDAT chunks as it
    arrives (``compress_level``: zlib's, 1 for speed, 9 for size). Atomic like ``write_png``
    (``files.AtomicFile``); use as a context manager, or ``close()``."""

    COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type: grey, grey+alpha, RGB, RGBA

    def __init__(
        self, path: str | os.PathLike, width: int, height: int, channels: int, bits: int = 8, compress_level: int = 6
    ) -> None:
        import struct
        import zlib

        from ..files import AtomicFile

        if channels not in self.COLOUR_TYPES or bits not in (8, 16):
            raise ValueError(f"PngStripWriter writes 1-4 channels of 8 or 16 bits, not {channels} x {bits}")
        self.width, self.height, self.channels, self.bits, self.rows = width, height, channels, bits, 0
        self.pixel_bytes = channels * bits // 8
        self.file = AtomicFile(path)
        self.deflate = zlib.compressobj(compress_level)
        self.pending = b""
        header = struct.pack(">IIBBBBB", width, height, bits, self.COLOUR_TYPES[channels], 0, 0, 0)
        self.file.write(b"\x89PNG\r\n\x1a\n" + self._chunk(b"IHDR", header))

    @staticmethod
    def _chunk(kind: bytes, data: bytes) -> bytes:
        import struct
        import zlib

        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    def write(self, strip: np.ndarray) -> None:
        """The next rows: ``(rows, W)`` or ``(rows, W, channels)``, uint8 for 8 bits, uint16 for 16."""
        dtype = ">u2" if self.bits == 16 else np.uint8  # PNG stores 16-bit samples big-endian
        rows = strip.shape[0]
        data = np.ascontiguousarray(strip, dtype=dtype).view(np.uint8).reshape(rows, self.width * self.pixel_bytes)
        if self.rows + rows > self.height:
            raise ValueError(f"{self.file.path}: more than {self.height} rows written")
        # Sub filter: each byte minus the same byte of the pixel to its left (mod 256)
        filtered = data.copy()
        filtered[:, self.pixel_bytes :] -= data[:, : -self.pixel_bytes]
        lines = np.concatenate([np.ones((rows, 1), np.uint8), filtered], axis=1)
        self.pending += self.deflate.compress(lines.tobytes())
        if len(self.pending) >= 1 << 20:
            self.file.write(self._chunk(b"IDAT", self.pending))
            self.pending = b""
        self.rows += rows

    def close(self) -> None:
        if self.rows != self.height:
            self.file.abort()
            raise ValueError(f"{self.file.path}: {self.rows} of {self.height} rows written")
        data = self.pending + self.deflate.flush()
        self.file.write(self._chunk(b"IDAT", data) + self._chunk(b"IEND", b""))
        self.file.commit()

    def abort(self) -> None:
        self.file.abort()

    def __enter__(self) -> PngStripWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
