"""Exponential moving average of a module's weights (the generator used for validation and export)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from .counters import HostCounter


class EMA(nn.Module):
    """``ema = decay * ema + (1 - decay) * current`` for parameters; buffers are copied.

    ``warmup``: the effective decay is ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so the
    average is not dominated by the random initialisation early in training.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, warmup: bool = True) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"ema decay must be in [0, 1), got {decay}")
        self.module = copy.deepcopy(model).requires_grad_(False).eval()
        self.decay = decay
        self.warmup = warmup
        self.updates = HostCounter(self, "num_updates")  # no device sync per update

    def train(self, mode: bool = True) -> EMA:  # the average is never in training mode
        super().train(False)
        return self

    @torch.no_grad()
    def update(self, model: nn.Module, skipped: torch.Tensor | None = None) -> None:
        """Average ``model``'s weights in; ``skipped``: a 0-d tensor on the device, 1 when ``model``'s last step was
        skipped (its weights are unchanged), which leaves the average unchanged too, with no host sync. The update
        count (for the warm-up) advances either way: it is host-side."""
        n = self.updates.value
        decay = min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay
        ema_params = list(self.module.parameters())
        params = [p.detach() for p in model.parameters()]
        if skipped is None:
            torch._foreach_lerp_(ema_params, params, 1.0 - decay)
        else:  # ema += (p - ema) * weight, weight 0 after a skipped step: a lerp by a tensor would read it back
            weight = (1 - skipped.to(ema_params[0].device, ema_params[0].dtype)) * (1.0 - decay)
            steps = torch._foreach_sub(params, ema_params)
            torch._foreach_mul_(steps, weight)
            torch._foreach_add_(ema_params, steps)
        for b_ema, b in zip(self.module.buffers(), model.buffers()):
            b_ema.copy_(b)
        self.updates.set(n + 1)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
