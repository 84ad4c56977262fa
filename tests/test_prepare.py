"""sftgan-prepare: every bad input is named with its reason, resuming equals an uninterrupted run."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sftgan_lit.data import ImageError, Store, folder_items, prepare, read_image
from sftgan_lit.priors import LabelPrior

from helpers import add_stray_entries, compose, write_folder


def _bad_folder(root):
    images, labels = write_folder(root, 2, 64, 64)

    def add(name, writer, label_shape=(64, 64)):
        writer(images / name)
        Image.fromarray(np.zeros(label_shape, np.uint8)).save(labels / (name.rsplit(".", 1)[0] + ".png"))

    add("garbage.png", lambda p: p.write_bytes(b"not an image at all"))
    good = images / "000.png"
    add("truncated.png", lambda p: p.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2]))
    add("small.png", lambda p: Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(p), (40, 40))
    add("gray.png", lambda p: Image.fromarray(np.full((64, 64), 90, np.uint8)).save(p))
    add("transparent.png", lambda p: Image.fromarray(np.full((64, 64, 4), 90, np.uint8)).save(p))
    add(
        "opaque.png",
        lambda p: Image.fromarray(
            np.dstack([np.full((64, 64, 3), 90, np.uint8), np.full((64, 64), 255, np.uint8)])
        ).save(p),
    )
    add("deep.png", lambda p: Image.fromarray(np.full((64, 64), 1000, np.uint16)).save(p))
    add("huge.png", lambda p: Image.fromarray(np.zeros((300, 300, 3), np.uint8)).save(p), (300, 300))
    add("mismatch.png", lambda p: Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(p), (64, 72))
    add("cmyk.jpg", lambda p: Image.new("CMYK", (64, 64)).save(p))
    Image.fromarray(np.full((64, 64), 9, np.uint8)).save(labels / "badlabel.png")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(images / "badlabel.png")
    return images, labels


EXPECTED_FAILURES = {
    "garbage.png": "unreadable image",
    "truncated.png": "truncated file",
    "small.png": "smaller than min_size=48",
    "transparent.png": "transparent pixels",
    "deep.png": "16-bit image",
    "huge.png": "exceeds the limit",
    "mismatch.png": "does not match|is 72x64",
    "cmyk.jpg": "unsupported colour mode 'CMYK'",
    "badlabel.png": r"label values \[9\] outside",
}


def test_every_bad_file_is_reported_with_its_reason_and_the_rest_is_prepared(tmp_path):
    images, labels = _bad_folder(tmp_path / "src")
    report = prepare(
        folder_items(images, labels), tmp_path / "store", LabelPrior(), min_size=48, max_pixels=80_000, progress=False
    )
    assert not report.ok
    assert set(report.failures) == set(EXPECTED_FAILURES)
    for name, pattern in EXPECTED_FAILURES.items():
        assert name in report.failures[name]
        assert re.search(pattern, report.failures[name]), (name, report.failures[name])
    store = Store(tmp_path / "store")
    assert sorted(e.file for e in store.entries) == ["000.png", "001.png", "gray.png", "opaque.png"]
    gray = store.image([e.file for e in store.entries].index("gray.png"))
    assert (gray == 90).all()  # lossless grayscale -> RGB


def test_a_missing_or_bad_companion_file_is_that_images_failure_and_the_rest_is_prepared(tmp_path):
    """A missing label map, a missing prior file and an unreadable prior file: each is its image's failure,
    named with its reason; the other images are prepared (before, one missing file aborted the whole run)."""
    images, labels = write_folder(tmp_path / "a", 3)
    (labels / "001.png").unlink()
    report = prepare(folder_items(images, labels), tmp_path / "s1", LabelPrior(), min_size=32, progress=False)
    assert list(report.failures) == ["001.png"] and "no label map file" in report.failures["001.png"]
    assert report.written == 2 and sorted(e.file for e in Store(tmp_path / "s1").entries) == ["000.png", "002.png"]

    images, _ = write_folder(tmp_path / "b", 4)
    priors = tmp_path / "b" / "priors"
    priors.mkdir()
    probs = np.full((8, 64, 80), 1 / 8, np.float32)
    np.save(priors / "000.npy", probs)
    (priors / "001.npy").write_bytes(b"\x93NUMPY garbage")  # unreadable
    np.save(priors / "002.npy", probs[:, :10])  # wrong size
    items = folder_items(images, priors=priors)  # 003 has none
    report = prepare(items, tmp_path / "s2", LabelPrior(), min_size=32, progress=False)
    assert sorted(report.failures) == ["001.png", "002.png", "003.png"], report.failures
    assert "001.npy" in report.failures["001.png"] and "003.png: no prior file" in report.failures["003.png"]
    assert "002.npy" in report.failures["002.png"]
    assert [e.file for e in Store(tmp_path / "s2").entries] == ["000.png"]


def test_decompression_bomb_guard(tmp_path):
    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(tmp_path / "a.png")
    with pytest.raises(ImageError, match="decompression-bomb guard"):
        read_image(tmp_path / "a.png", max_pixels=5000)


def test_resumed_prepare_equals_an_uninterrupted_run(tmp_path):
    images, labels = write_folder(tmp_path / "src", 7, 64, 72)
    items = folder_items(images, labels)
    full = prepare(items, tmp_path / "full", LabelPrior(), min_size=32, progress=False)
    assert full.ok and full.total == 7
    first = prepare(items, tmp_path / "resumed", LabelPrior(), min_size=32, progress=False, limit=3)
    assert first.written == 3 and not (tmp_path / "resumed" / "complete.json").exists()
    # an interruption in the middle of the next entry: data bytes written, manifest line torn
    with open(tmp_path / "resumed" / "images.bin", "ab") as f:
        f.write(b"\xff" * 1000)
    with open(tmp_path / "resumed" / "manifest.jsonl", "ab") as f:
        f.write(b'{"file": "003.png", "hei')
    with pytest.raises(Exception, match="unfinished"):
        Store(tmp_path / "resumed")
    second = prepare(items, tmp_path / "resumed", LabelPrior(), min_size=32, progress=False)
    assert second.skipped_done == 3 and second.written == 4 and second.total == 7
    for name in ("images.bin", "labels.bin", "manifest.jsonl", "header.json"):
        assert (tmp_path / "full" / name).read_bytes() == (tmp_path / "resumed" / name).read_bytes(), name
    Store(tmp_path / "resumed", verify=True)


def test_cli_exit_code_and_messages(tmp_path):
    images, labels = write_folder(tmp_path / "src", 2, 64, 64)
    cmd = [
        sys.executable,
        "-c",
        "from sftgan_lit.cli import prepare_main; prepare_main()",
        f"input.images={images}",
        f"input.labels={labels}",
        f"out={tmp_path / 'store'}",
        "min_size=32",
        "progress=false",
    ]
    ok = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "2 written" in ok.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src", "store"]  # no log file left where it ran
    # files get the permissions a plain write gives them (0666 less the umask), not mkstemp's 0600
    umask = os.umask(0)
    os.umask(umask)
    assert {oct(p.stat().st_mode & 0o777) for p in (tmp_path / "store").iterdir()} == {oct(0o666 & ~umask)}
    (images / "zz_bad.png").write_bytes(b"junk")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(labels / "zz_bad.png")
    (images / "zz_nolabel.png").write_bytes((images / "000.png").read_bytes())  # no label map
    bad = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert bad.returncode == 1
    assert "FAILED zz_bad.png" in bad.stderr and "unreadable image" in bad.stderr
    assert "FAILED zz_nolabel.png" in bad.stderr and "no label map file" in bad.stderr
    assert "2 of 4 files failed" in bad.stderr and "2 already done" in bad.stdout


def _png16(arr: np.ndarray) -> bytes:
    """A 48-bit RGB PNG (PIL cannot write one): IHDR bit depth 16, colour type 2, unfiltered rows."""
    import struct
    import zlib

    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_true_16bit_rgb_is_refused_by_name(tmp_path):
    path = tmp_path / "deep.png"
    path.write_bytes(_png16((np.arange(8 * 8 * 3).reshape(8, 8, 3) * 700 + 3).astype(np.uint16)))
    with pytest.raises(ImageError, match="deep.png: 16-bit RGB"):
        read_image(path)


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_exif_orientation_is_applied(tmp_path, suffix):
    img = np.zeros((16, 24, 3), np.uint8)
    img[:4, :4] = 255  # a white corner, top left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    path = tmp_path / f"phone{suffix}"
    Image.fromarray(img).save(path, exif=exif, **({"quality": 100} if suffix == ".jpg" else {}))
    out = read_image(path)
    assert out.shape == (24, 16, 3)  # shown upright: portrait
    expected = np.rot90(img, -1)
    assert np.abs(out.astype(int) - expected.astype(int)).mean() < 3


def test_a_finished_store_names_a_source_edited_since(tmp_path):
    images, labels = write_folder(tmp_path / "src", 3, 64, 64)
    items = folder_items(images, labels)
    assert prepare(items, tmp_path / "store", LabelPrior(), min_size=32, progress=False).ok
    again = prepare(items, tmp_path / "store", LabelPrior(), min_size=32, progress=False)
    assert again.ok and again.skipped_done == 3
    edited = np.asarray(Image.open(images / "001.png")).copy()
    edited[0, 0] ^= 255
    Image.fromarray(edited).save(images / "001.png")
    stale = prepare(items, tmp_path / "store", LabelPrior(), min_size=32, progress=False)
    assert list(stale.failures) == ["001.png"] and "changed since it was prepared" in stale.failures["001.png"]


def test_a_full_disk_stops_prepare_resumably(tmp_path, monkeypatch):
    import errno

    from sftgan_lit.data import Store, folder_items, prepare
    from sftgan_lit.data import store as store_module

    from helpers import write_folder

    images, labels = write_folder(tmp_path / "src", 4)
    real_fsync, real_add, adds = os.fsync, store_module.StoreWriter.add, []

    def add(self, *args):
        adds.append(args[0])
        return real_add(self, *args)

    def full(fd):
        if len(adds) >= 3:  # the third entry: its data cannot be made durable
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(store_module.StoreWriter, "add", add)
    monkeypatch.setattr(store_module.os, "fsync", full)
    report = prepare(folder_items(images, labels), tmp_path / "store", LabelPrior(), min_size=32, progress=False)
    assert not report.ok and report.written == 2 and not report.failures
    assert "could not write 002.png into" in report.stopped and "No space left on device" in report.stopped
    assert not (tmp_path / "store" / "complete.json").exists()  # unfinished: readers refuse it
    monkeypatch.setattr(store_module.os, "fsync", real_fsync)
    again = prepare(folder_items(images, labels), tmp_path / "store", LabelPrior(), min_size=32, progress=False)
    assert again.ok and again.total == 4
    assert [e.file for e in Store(tmp_path / "store").entries] == ["000.png", "001.png", "002.png", "003.png"]


def test_every_entry_of_a_training_folder_is_prepared_or_reported(tmp_path):
    """A subfolder, another file type and a broken link in a training folder were once left out without a word."""
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(images / "a.png")
    strays = add_stray_entries(images)
    report = prepare(folder_items(images), tmp_path / "s", LabelPrior(), min_size=32, progress=False)
    assert report.written == 1 and set(report.failures) == set(strays) == {"notes.txt", "sub", "gone.png"}
    assert "a broken link" in report.failures["gone.png"] and "not an image type" in report.failures["notes.txt"]


def test_an_out_that_is_a_file_is_a_configuration_error_naming_it(tmp_path):
    """It once ended as an operating-system error (exit 1, "File exists") after the inputs were listed."""
    from sftgan_lit.config import ConfigError
    from sftgan_lit.data.prepare import prepare_from_config

    images, _ = write_folder(tmp_path / "a", 1)
    (tmp_path / "taken").write_text("a file")
    cfg = compose([f"input.images={images}", "input.layout=folder", f"out={tmp_path / 'taken'}"], "prepare")
    with pytest.raises(ConfigError, match=r"out=.*taken: must be a folder \(an existing file is there\)"):
        prepare_from_config(cfg)
