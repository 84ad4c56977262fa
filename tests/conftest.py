"""Test session set-up (threads, a private cache folder) and fixtures; shared helpers live in helpers.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(min(2, os.cpu_count() or 1))

# Tests never touch the user's cache: demo data and stores go to one folder per test session
# (subprocesses such as train.py inherit it).
if "SFTGAN_TEST_CACHE" not in os.environ:
    import tempfile

    os.environ["SFTGAN_TEST_CACHE"] = tempfile.mkdtemp(prefix="sftgan-test-cache-")
os.environ["SFTGAN_CACHE"] = os.environ["SFTGAN_TEST_CACHE"]


@pytest.fixture
def rng() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    """A tiny random SFT-Net exported as a generator file (predict, eval and strength tests)."""
    from sftgan_lit.models import export_generator

    from helpers import tiny_generator

    path = tmp_path_factory.mktemp("ckpt") / "generator.pth"
    export_generator(tiny_generator(), path)
    return path
