"""What a degradation model is: how a training (or validation) LR is made from its HR.

A degradation answers three questions, so that neither the dataset nor the datamodule asks which one it has:

- ``draw(rng)`` (in the data workers): the sample's random parameters (kernels, strengths, seeds), from a
  generator seeded by the sample's own draw (``data.sampling``): a sample is degraded the same way whichever
  worker, rank or store makes it, and again after a resume;
- ``worker_lr(hr)`` (in the data workers): the LR when it is cheap to make there (MATLAB bicubic), else None;
- ``__call__(hr, params, training)`` (on the device, per batch): the LR from the HR and the batch's
  parameters, and the HR the pixel and perceptual terms compare with (sharpened, for Real-ESRGAN's recipe);
- ``maps(params, lr_size)`` (on the device): what it did per pixel, for the continuous prior channels it
  knows (``channels``), which a prior stack such as ``prior=[labels,degradation]`` reads.

A new degradation is one module with a subclass and its typed config (``schema``), plus its entry in
``registry.DEGRADATIONS``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

KEY = "data.degradation"  # the config key the models' errors name


class Degradation:
    """Base class. ``name`` is the ``degradation=`` option (``conf/degradation/<name>.yaml``); ``schema`` the
    typed config whose fields are the constructor's keyword arguments; ``scale`` the SR factor."""

    name: ClassVar[str]
    schema: ClassVar[type]
    #: the LR is MATLAB bicubic of the HR (what priors cached from a bicubic LR assume)
    lr_is_bicubic: ClassVar[bool] = False
    #: samples in the training-pair pool (``data.pool``; 0: none)
    pool_size: int = 0
    #: the continuous prior channels (``priors.channels``) whose per-pixel values ``maps`` gives
    channels: ClassVar[tuple[str, ...]] = ()

    def __init__(self, scale: int) -> None:
        self.scale = int(scale)

    def draw(self, rng: np.random.Generator) -> dict:
        """One sample's parameters (tensors and plain numbers, in a dict), drawn from ``rng``; default: none."""
        return {}

    def worker_lr(self, hr: torch.Tensor) -> torch.Tensor | None:
        """The LR ``(3, H/s, W/s)`` of an HR crop ``(3, H, W)`` when it is made in the worker; None: on the device."""
        return None

    def __call__(self, hr: torch.Tensor, params: dict, training: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The LR ``(N, 3, H/s, W/s)`` in [0, 1] of HR ``(N, 3, H, W)`` in [0, 1] with the batch's ``params``
        (``draw``'s, collated), and the target HR of the pixel and perceptual terms when it is not ``hr``."""
        raise NotImplementedError

    def maps(self, params: dict, lr_size: tuple[int, int]) -> dict[str, torch.Tensor]:
        """The batch's degradation per pixel at HR size, ``{channel: (N, s*h, s*w)}`` in each channel's unit,
        for the channels in ``channels`` (a prior stack conditioned on them trains on these); default: none."""
        return {}

    def describe(self) -> str:
        return self.name
