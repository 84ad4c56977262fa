"""Checking probability maps, and the error every prior raises."""

from __future__ import annotations

import torch

from ..tensors import probs_problem


class PriorError(ValueError):
    """A prior (stored, computed or configured) that cannot be used; the message says which and why."""


def validate_probs(
    probs: torch.Tensor,
    num_classes: int,
    size: tuple[int, int] | None = None,
    source: str = "prior",
    atol: float = 1e-3,
) -> None:
    """Check a probability map ``(C, H, W)`` or ``(N, C, H, W)``: class count, size, finite, in [0, 1], rows sum to 1."""
    if probs.dim() not in (3, 4):
        raise PriorError(f"{source}: expected (C, H, W) or (N, C, H, W) probabilities, got shape {tuple(probs.shape)}")
    c = probs.shape[-3]
    if c != num_classes:
        raise PriorError(f"{source}: {c} classes, but the configured prior has {num_classes}")
    if size is not None and tuple(probs.shape[-2:]) != tuple(size):
        raise PriorError(f"{source}: prior size {tuple(probs.shape[-2:])} does not match the image size {tuple(size)}")
    problem = probs_problem(probs, dim=-3, atol=atol)
    if problem:
        raise PriorError(f"{source}: {problem}")
