"""Test session set-up (threads, a private cache folder) and fixtures; shared helpers live in helpers.py."""

from __future__ import annotations

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


@pytest.fixture
def rng() -> torch.Generator:
    return torch.Generator().manual_seed(1234)
