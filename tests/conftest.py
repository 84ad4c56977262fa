"""Shared fixtures: state dicts in the released layouts, built from the shared notes' key/shape lists."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))

torch.set_num_threads(min(2, os.cpu_count() or 1))

# Tests never touch the user's cache: demo data and stores go to one folder per test session
# (subprocesses such as train.py inherit it).
if "SFTGAN_TEST_CACHE" not in os.environ:
    import tempfile

    os.environ["SFTGAN_TEST_CACHE"] = tempfile.mkdtemp(prefix="sftgan-test-cache-")
os.environ["SFTGAN_CACHE"] = os.environ["SFTGAN_TEST_CACHE"]

# A small demo set and tiny networks: every config group still composes as in a real run.
TINY_DATA = [
    "data.demo.size=128", "data.demo.num_train=6", "data.demo.num_val=2", "data.demo.num_test=2",
    "data.demo.num_background=2", "data.batch_size=2", "data.val_batch_size=2", "data.num_workers=0",
    "data.crop_size=32",
]  # fmt: skip
TINY_MODEL = [
    "model.generator.num_features=8", "model.generator.num_blocks=2", "model.generator.cond_channels=4",
    "model.generator.cond_hidden_channels=8", "model.generator.sft_hidden_channels=4",
    "model.discriminator.base_channels=4", "model.discriminator.input_size=32",
]  # fmt: skip
TINY_TRAIN = ["trainer.max_steps=2", "trainer.limit_train_batches=1", "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false"]
TINY = TINY_DATA + TINY_MODEL


FIXTURE_LAYOUTS = TESTS / "fixtures" / "released_layouts.json"


def notes_dir() -> Path | None:
    """The layout notes folder: ``$SFTGAN_LAYOUTS``, else ``shared/original_checkpoints`` beside the repo."""
    if "SFTGAN_LAYOUTS" in os.environ:
        path = Path(os.environ["SFTGAN_LAYOUTS"])
        if not path.is_dir():
            raise FileNotFoundError(f"SFTGAN_LAYOUTS={path} is not a folder; unset it or point it at the layout notes")
        return path
    path = TESTS.parent.parent / "shared" / "original_checkpoints"
    return path if path.is_dir() else None


def _note(name: str) -> dict:
    # The notes when present; otherwise the fixture generated from them (tests/fixtures/make_layout_fixture.py),
    # so a clone without shared/ still checks the released layouts.
    folder = notes_dir()
    if folder is not None:
        return json.loads((folder / f"{name}.json").read_text())
    return json.loads(FIXTURE_LAYOUTS.read_text())[name]


def layout(name: str) -> dict[str, list[int]]:
    """Key -> shape of a released checkpoint, in the checkpoint's order."""
    return _note(name)["keys"]


def layout_parameters(name: str) -> int:
    """Total parameter count recorded for a released checkpoint."""
    return _note(name)["parameters"]


def random_state_dict(name: str, seed: int = 0, std: float = 0.05) -> dict[str, torch.Tensor]:
    """A state dict with the released layout ``name`` and random values (BN statistics plausible)."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in layout(name).items():
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(1000, dtype=torch.long)
        elif key.endswith("running_var"):
            sd[key] = torch.rand(shape, generator=gen) + 0.5
        elif key.endswith("running_mean"):
            sd[key] = torch.randn(shape, generator=gen) * 0.1
        elif ".weight" in key and len(shape) == 1:  # BN scale
            sd[key] = torch.rand(shape, generator=gen) * 0.5 + 0.75
        else:
            sd[key] = torch.randn(shape, generator=gen) * std
    return sd


@pytest.fixture
def rng() -> torch.Generator:
    return torch.Generator().manual_seed(1234)
