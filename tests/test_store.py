"""The prepared store: round trip, memory-mapped reads, corruption detection, crash-safe appends."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sftgan_lit.data.store import Store, StoreError, StoreWriter, quantize_probs

HEADER = {"num_classes": 8, "class_names": list("abcdefgh"), "prior": "test"}


def _entries(n, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        h, w = 16 + 8 * i, 24
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        labels = rng.integers(0, 8, (h, w), dtype=np.uint8)
        probs = quantize_probs(torch.softmax(torch.from_numpy(rng.standard_normal((8, h, w))).float(), 0))
        yield f"img{i}.png", image, labels, probs


def _write(root, n=3, finish=True):
    w = StoreWriter(root, HEADER)
    data = list(_entries(n))
    for name, image, labels, probs in data:
        w.add(name, image, labels, probs, category=2)
    if finish:
        w.finish()
    else:
        w.close()
    return data


def test_round_trip_is_exact(tmp_path):
    data = _write(tmp_path / "s")
    s = Store(tmp_path / "s", num_classes=8, verify=True)
    assert len(s) == 3 and s.has_labels and s.has_probs
    for i, (name, image, labels, probs) in enumerate(data):
        assert s.entries[i].file == name and s.entries[i].category == 2
        np.testing.assert_array_equal(s.image(i), image)
        np.testing.assert_array_equal(s.labels(i), labels)
        np.testing.assert_array_equal(s.probs(i), probs)
    assert sum(s.nbytes().values()) == sum(e[1].nbytes + e[2].nbytes + e[3].nbytes for e in data)


def test_unfinished_and_mismatched_stores_are_refused(tmp_path):
    _write(tmp_path / "s", finish=False)
    with pytest.raises(StoreError, match="unfinished"):
        Store(tmp_path / "s")
    with pytest.raises(StoreError, match="different settings"):
        StoreWriter(tmp_path / "s", {**HEADER, "prior": "other"})
    _write(tmp_path / "t")
    with pytest.raises(StoreError, match="made for 8 classes"):
        Store(tmp_path / "t", num_classes=5)
    with pytest.raises(StoreError, match="no prepared store"):
        Store(tmp_path / "nothing")


@pytest.mark.parametrize("kind", ["images", "probs"])
def test_corrupted_entry_is_rejected(tmp_path, kind):
    _write(tmp_path / "s")
    path = tmp_path / "s" / f"{kind}.bin"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x5A
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match="corrupted"):
        Store(tmp_path / "s", verify=True)
    if kind == "probs":  # reading the damaged pixel's row is caught even without the hash check
        s = Store(tmp_path / "s", verify=False)
        with pytest.raises(StoreError, match="corrupted probabilities"):
            for i in range(len(s)):
                s.check_probs(i, s.probs(i))


def test_truncated_data_file_is_rejected(tmp_path):
    _write(tmp_path / "s")
    path = tmp_path / "s" / "images.bin"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(StoreError, match="damaged"):
        Store(tmp_path / "s")


def test_torn_write_is_dropped_on_resume(tmp_path):
    data = _write(tmp_path / "s", n=2, finish=False)
    # a crash after the data but before/during the manifest line of a third entry
    with open(tmp_path / "s" / "images.bin", "ab") as f:
        f.write(b"\x01" * 500)
    with open(tmp_path / "s" / "manifest.jsonl", "ab") as f:
        f.write(b'{"file": "img2.png", "height": 3')
    w = StoreWriter(tmp_path / "s", HEADER)
    assert w.done() == {"img0.png", "img1.png"}
    _, image, labels, probs = list(_entries(3))[2]
    w.add("img2.png", image, labels, probs, category=2)
    w.finish()
    s = Store(tmp_path / "s", verify=True)
    np.testing.assert_array_equal(s.image(2), image)
    np.testing.assert_array_equal(s.image(1), data[1][1])
    assert json.loads((tmp_path / "s" / "complete.json").read_text())["entries"] == 3


@pytest.mark.parametrize("name", ["header.json", "complete.json"])
def test_corrupted_metadata_names_the_file(tmp_path, name):
    from sftgan_lit.data.store import read_json

    root = tmp_path / "store"
    writer = StoreWriter(root, {"num_classes": 8})
    writer.add("a.png", np.zeros((8, 8, 3), np.uint8), None, None, 0)
    writer.finish()
    writer.close()
    (root / name).write_text('{"num_classes": 8, "ver')
    with pytest.raises(StoreError, match=f"{name}: corrupted store metadata"):
        Store(root) if name == "header.json" else read_json(root / name)
