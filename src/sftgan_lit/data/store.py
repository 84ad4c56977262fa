"""A compact, memory-mappable store of prepared images, label maps and quantised priors.

Layout of a store folder::

    header.json     format version, class names, the prior that made the probabilities, prepare settings
    images.bin      RGB uint8 (H, W, 3) of every entry, back to back
    labels.bin      uint8 (H, W) class indices (255 = void), when the source had label maps
    probs.bin       uint8 (H, W, C) quantised probabilities summing to exactly 255 per pixel, when cached
    manifest.jsonl  one line per committed entry: file, size, category, byte offsets, blake2b hashes
    complete.json   written last: the store is finished (entry count, failures)

Readers memory-map the ``.bin`` files and copy only the crop they need. Writing is append-only and
crash-safe: an entry's bytes are flushed before its manifest line, so a manifest line is the commit; a
reopened writer drops a half-written line and truncates the data files back to the last committed
entry, which is how ``sftgan-prepare`` resumes. Probabilities are stored as uint8 with the largest-
remainder rounding, so each pixel's row sums to exactly 255 (max error 1/255 per class): 8 bytes per
pixel instead of the original's 32 (one float32 ``.pth`` tensor per image), and a corrupted byte shows
up as a row that no longer sums to 255.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..files import atomic_write_bytes

STORE_VERSION = 1
QUANT_LEVELS = 255
VOID_LABEL = 255


class StoreError(ValueError):
    """A store that is missing, unfinished, inconsistent or corrupted; the message names the store and entry."""


def content_hash(data: bytes | np.ndarray) -> str:
    view = memoryview(np.ascontiguousarray(data)).cast("B") if isinstance(data, np.ndarray) else data
    return hashlib.blake2b(view, digest_size=16).hexdigest()


def quantize_probs(probs: torch.Tensor) -> np.ndarray:
    """Probabilities ``(C, H, W)`` (rows summing to 1) -> uint8 ``(H, W, C)`` rows summing to exactly 255.

    Largest-remainder rounding: floor every value, then give the missing units to the classes with the
    largest fractional parts, so no value is off by more than 1/255.
    """
    p = probs.detach().double().clamp_(0, 1).movedim(0, -1)  # (H, W, C)
    p = p / p.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    scaled = p * QUANT_LEVELS
    base = scaled.floor()
    missing = (QUANT_LEVELS - base.sum(dim=-1, keepdim=True)).long()  # in [0, C)
    rank = torch.argsort(torch.argsort(scaled - base, dim=-1, descending=True, stable=True), dim=-1)
    q = base.long() + (rank < missing).long()
    return q.to(torch.uint8).numpy()


def dequantize_probs(q: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W, C)`` -> float32 probabilities ``(C, H, W)``."""
    return torch.from_numpy(np.ascontiguousarray(q)).permute(2, 0, 1).float().div_(QUANT_LEVELS)


def check_probs(q: np.ndarray, where: str) -> None:
    """Rows of a (crop of a) stored prior ``(H, W, C)`` uint8 must sum to exactly 255; anything else is corruption."""
    sums = q.sum(axis=-1, dtype=np.int32)
    if (sums != QUANT_LEVELS).any():
        raise StoreError(
            f"{where} has corrupted probabilities ({int((sums != QUANT_LEVELS).sum())} pixels do not sum to 1); "
            "prepare the store again"
        )


def check_labels(lab: np.ndarray, num_classes: int, where: str) -> None:
    """Stored class indices must be classes or void."""
    bad = (lab >= num_classes) & (lab != VOID_LABEL)
    if bad.any():
        raise StoreError(f"{where} has corrupted labels (values {np.unique(lab[bad])[:8].tolist()})")


@dataclass
class StoreEntry:
    file: str  # source path as given to sftgan-prepare (relative to its input root)
    height: int
    width: int
    category: int  # image-level category (OST folder), -1 when the source has none
    image_offset: int
    labels_offset: int  # -1 when there is no label map
    probs_offset: int  # -1 when no probabilities are cached
    image_hash: str
    labels_hash: str
    probs_hash: str
    source_hash: str


class _Files:
    NAMES = {"image": "images.bin", "labels": "labels.bin", "probs": "probs.bin"}


def read_json(path: Path) -> dict:
    """A store's JSON metadata file, or a ``StoreError`` naming the file when it is not valid JSON."""
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise StoreError(
            f"{path}: corrupted store metadata ({err}); delete {path.parent} and prepare it again"
        ) from err


def _read_manifest(path: Path) -> tuple[list[StoreEntry], int]:
    """Committed entries, and the byte length of the manifest that holds them (a torn last line is not counted)."""
    entries: list[StoreEntry] = []
    good = 0
    if not path.exists():
        return entries, 0
    data = path.read_bytes()
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0:
            break  # torn last line: never committed
        try:
            entries.append(StoreEntry(**json.loads(data[pos:end])))
        except (json.JSONDecodeError, TypeError) as err:
            raise StoreError(f"{path}: manifest line {len(entries) + 1} is corrupted ({err})") from err
        pos = end + 1
        good = pos
    return entries, good


class StoreWriter:
    """Append entries to a store, resuming an interrupted one; see the module docstring for the protocol."""

    def __init__(self, root: str | os.PathLike, header: dict) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        header = {"version": STORE_VERSION, **header}
        header_path = self.root / "header.json"
        if header_path.exists():
            old = read_json(header_path)
            if old != json.loads(json.dumps(header)):
                diff = sorted(k for k in set(old) | set(header) if old.get(k) != json.loads(json.dumps(header)).get(k))
                raise StoreError(
                    f"{self.root}: an existing store was made with different settings ({', '.join(diff)}); "
                    "delete the folder or write to another one"
                )
        else:
            atomic_write_bytes(header_path, json.dumps(header, indent=1).encode())
        self.header = header
        (self.root / "complete.json").unlink(missing_ok=True)
        self.entries, manifest_len = _read_manifest(self.root / "manifest.jsonl")
        # Drop anything written after the last committed entry (a crash between data and manifest).
        with open(self.root / "manifest.jsonl", "ab") as f:
            f.truncate(manifest_len)
        self._ends = {k: 0 for k in _Files.NAMES}
        for e in self.entries:
            self._ends["image"] = max(self._ends["image"], e.image_offset + e.height * e.width * 3)
            if e.labels_offset >= 0:
                self._ends["labels"] = max(self._ends["labels"], e.labels_offset + e.height * e.width)
            if e.probs_offset >= 0:
                self._ends["probs"] = max(
                    self._ends["probs"], e.probs_offset + e.height * e.width * header["num_classes"]
                )
        self._files = {}
        for kind, name in _Files.NAMES.items():
            f = open(self.root / name, "ab")
            if f.tell() < self._ends[kind]:
                raise StoreError(
                    f"{self.root / name}: shorter than its committed manifest entries; the store is damaged, delete it"
                )
            f.truncate(self._ends[kind])
            self._files[kind] = f
        self._manifest = open(self.root / "manifest.jsonl", "ab")

    def done(self) -> set[str]:
        return {e.file for e in self.entries}

    def _append(self, kind: str, array: np.ndarray | None) -> tuple[int, str]:
        if array is None:
            return -1, ""
        f = self._files[kind]
        offset = self._ends[kind]
        data = np.ascontiguousarray(array, dtype=np.uint8)
        f.write(memoryview(data).cast("B"))
        self._ends[kind] = offset + data.nbytes
        return offset, content_hash(data)

    def add(
        self,
        file: str,
        image: np.ndarray,
        labels: np.ndarray | None = None,
        probs: np.ndarray | None = None,
        category: int = -1,
        source_hash: str = "",
    ) -> StoreEntry:
        """Append one entry: ``image`` uint8 (H, W, 3), ``labels`` uint8 (H, W), ``probs`` uint8 (H, W, C)."""
        h, w = image.shape[:2]
        if image.shape != (h, w, 3) or image.dtype != np.uint8:
            raise StoreError(f"{file}: image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        if labels is not None and labels.shape != (h, w):
            raise StoreError(f"{file}: label map {labels.shape} does not match image {(h, w)}")
        if probs is not None and probs.shape != (h, w, self.header["num_classes"]):
            raise StoreError(f"{file}: probabilities {probs.shape} do not match {(h, w, self.header['num_classes'])}")
        image_offset, image_hash = self._append("image", image)
        labels_offset, labels_hash = self._append("labels", labels)
        probs_offset, probs_hash = self._append("probs", probs)
        for f in self._files.values():
            f.flush()
            os.fsync(f.fileno())
        entry = StoreEntry(
            file,
            h,
            w,
            int(category),
            image_offset,
            labels_offset,
            probs_offset,
            image_hash,
            labels_hash,
            probs_hash,
            source_hash,
        )
        # The manifest line is the commit: written only once the entry's bytes are on disk.
        self._manifest.write((json.dumps(asdict(entry)) + "\n").encode())
        self._manifest.flush()
        os.fsync(self._manifest.fileno())
        self.entries.append(entry)
        return entry

    def finish(self, failures: dict[str, str] | None = None) -> None:
        """Mark the store complete (readers refuse unfinished stores)."""
        self.close()
        info = {"entries": len(self.entries), "failures": failures or {}}
        atomic_write_bytes(self.root / "complete.json", json.dumps(info, indent=1).encode())

    def close(self) -> None:
        for f in [*self._files.values(), self._manifest]:
            if not f.closed:
                f.close()


class Store:
    """Read-only view of a finished store; ``.bin`` files are memory-mapped lazily in each process."""

    def __init__(self, root: str | os.PathLike, num_classes: int | None = None, verify: bool = False) -> None:
        self.root = Path(root)
        if not (self.root / "header.json").exists():
            raise StoreError(f"{self.root}: no prepared store here; run sftgan-prepare to make one")
        self.header = read_json(self.root / "header.json")
        if self.header.get("version") != STORE_VERSION:
            raise StoreError(
                f"{self.root}: store format {self.header.get('version')}, this version reads {STORE_VERSION}; prepare it again"
            )
        if not (self.root / "complete.json").exists():
            raise StoreError(
                f"{self.root}: the store is unfinished (sftgan-prepare was interrupted); run it again to finish"
            )
        self.num_classes = int(self.header["num_classes"])
        if num_classes is not None and num_classes != self.num_classes:
            raise StoreError(
                f"{self.root}: store made for {self.num_classes} classes ({self.header.get('prior')}), "
                f"the configured prior has {num_classes}"
            )
        self.entries, _ = _read_manifest(self.root / "manifest.jsonl")
        if not self.entries:
            raise StoreError(f"{self.root}: the store has no entries")
        self.has_labels = all(e.labels_offset >= 0 for e in self.entries)
        self.has_probs = all(e.probs_offset >= 0 for e in self.entries)
        for kind, name in _Files.NAMES.items():
            need = max((self._span(e, kind)[1] for e in self.entries), default=0)
            size = (self.root / name).stat().st_size if (self.root / name).exists() else 0
            if size < need:
                raise StoreError(
                    f"{self.root / name}: {size} bytes, the manifest needs {need}; the store is damaged, prepare it again"
                )
        self._maps: dict[str, np.memmap] = {}
        self._pid = None
        if verify:
            self.verify()

    def _span(self, e: StoreEntry, kind: str) -> tuple[int, int]:
        per_pixel = {"image": 3, "labels": 1, "probs": self.num_classes}[kind]
        offset = {"image": e.image_offset, "labels": e.labels_offset, "probs": e.probs_offset}[kind]
        return (offset, offset + e.height * e.width * per_pixel) if offset >= 0 else (-1, 0)

    def _map(self, kind: str) -> np.memmap:
        if self._pid != os.getpid():  # a worker process: map the files itself
            self._maps, self._pid = {}, os.getpid()
        if kind not in self._maps:
            self._maps[kind] = np.memmap(self.root / _Files.NAMES[kind], dtype=np.uint8, mode="r")
        return self._maps[kind]

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_maps"], state["_pid"] = {}, None
        return state

    def __len__(self) -> int:
        return len(self.entries)

    def _array(self, i: int, kind: str) -> np.ndarray | None:
        e = self.entries[i]
        start, end = self._span(e, kind)
        if start < 0:
            return None
        shape = {
            "image": (e.height, e.width, 3),
            "labels": (e.height, e.width),
            "probs": (e.height, e.width, self.num_classes),
        }[kind]
        return self._map(kind)[start:end].reshape(shape)

    def image(self, i: int) -> np.ndarray:
        """Memory-mapped RGB uint8 ``(H, W, 3)`` of entry ``i`` (slice it; do not write)."""
        return self._array(i, "image")

    def labels(self, i: int) -> np.ndarray | None:
        return self._array(i, "labels")

    def probs(self, i: int) -> np.ndarray | None:
        return self._array(i, "probs")

    def check_probs(self, i: int, q: np.ndarray) -> None:
        check_probs(q, f"{self.root}: entry {i} ({self.entries[i].file})")

    def check_labels(self, i: int, lab: np.ndarray) -> None:
        check_labels(lab, self.num_classes, f"{self.root}: entry {i} ({self.entries[i].file})")

    def verify(self) -> None:
        """Check every entry's bytes against its hash (and its prior's rows); raise on the first bad entry."""
        for i, e in enumerate(self.entries):
            for kind, expected in (("image", e.image_hash), ("labels", e.labels_hash), ("probs", e.probs_hash)):
                arr = self._array(i, kind)
                if arr is not None and content_hash(arr) != expected:
                    raise StoreError(
                        f"{self.root}: entry {i} ({e.file}) {kind} bytes do not match their hash: corrupted; prepare the store again"
                    )
            if e.probs_offset >= 0:
                self.check_probs(i, self.probs(i))

    def categories(self) -> list[int]:
        return [e.category for e in self.entries]

    def nbytes(self) -> dict[str, int]:
        return {k: (self.root / n).stat().st_size for k, n in _Files.NAMES.items() if (self.root / n).exists()}
