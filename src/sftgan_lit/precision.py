"""Inference precision: one name per autocast mode, shared by the generator's and the segmenter's passes."""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: torch.device | str, precision: str):
    """``torch.autocast`` for ``precision`` in {"fp32", "bf16", "fp16"} (fp32: no autocast)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)
