"""Exponential moving average of a module's weights (the generator used for validation and export)."""

from __future__ import annotations

import copy

import torch
from torch import nn


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
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self._n: int | None = None  # host-side copy of num_updates: no device sync per update

    def train(self, mode: bool = True) -> EMA:  # the average is never in training mode
        super().train(False)
        return self

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        if self._n is None:
            self._n = int(self.num_updates)
        n = self._n
        decay = min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay
        ema_params = list(self.module.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1.0 - decay)
        for b_ema, b in zip(self.module.buffers(), model.buffers()):
            b_ema.copy_(b)
        self._n = n + 1
        self.num_updates.fill_(self._n)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._n = None  # re-read from the loaded buffer

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
