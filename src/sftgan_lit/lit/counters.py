"""A counter saved with a module (a buffer, so checkpoints carry it) and read on the host.

Reading a device buffer (``int(module.iteration)``) makes the host wait for the device's queue; a step that
does so every iteration stalls a GPU. ``HostCounter`` keeps a host-side copy, read from the buffer once after
creation or a load, and writes the buffer with ``fill_`` (a kernel launch, no sync).
"""

from __future__ import annotations

import torch
from torch import nn


class HostCounter:
    """The integer buffer ``name`` of ``module`` (registered here, same state-dict key), mirrored on the host.

    The buffer is looked up on each write, since ``module.to(device)`` replaces it."""

    def __init__(self, module: nn.Module, name: str) -> None:
        module.register_buffer(name, torch.zeros((), dtype=torch.long))
        self.module, self.name = module, name
        self._value: int | None = None
        module.register_load_state_dict_post_hook(self._loaded)

    def _loaded(self, _module: nn.Module, _keys) -> None:
        self._value = None  # load_state_dict wrote the buffer: read it again on the next access

    @property
    def value(self) -> int:
        if self._value is None:
            self._value = int(getattr(self.module, self.name))
        return self._value

    def set(self, value: int) -> None:
        self._value = int(value)
        getattr(self.module, self.name).fill_(self._value)
