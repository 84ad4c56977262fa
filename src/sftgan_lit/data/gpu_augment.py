"""On-device augmentation with kornia: the same flips, 90-degree rotations and crop for HR, prior and labels.

Used when CPU workers are the bottleneck: the workers then only slice the store, and the geometry
runs on the accelerator. HR, prior and labels are stacked along channels and go through one kornia
pipeline, so they get identical parameters by construction; the LR is made afterwards from the
augmented HR with ``imresize``, never warped separately.
"""

from __future__ import annotations

import torch
from torch import nn

from ..categories import VOID_LABEL


class GpuAugment(nn.Module):
    """Args: ``hflip``/``vflip`` probabilities, ``rot90`` (random multiples of 90 degrees), ``crop`` (HR size, or None)."""

    def __init__(self, hflip: float = 0.5, vflip: float = 0.0, rot90: bool = True, crop: int | None = None) -> None:
        super().__init__()
        import kornia.augmentation as K

        ops = []
        if hflip:
            ops.append(K.RandomHorizontalFlip(p=hflip))
        if vflip:
            ops.append(K.RandomVerticalFlip(p=vflip))
        if rot90:
            ops.append(K.RandomRotation90(times=(0, 3), p=1.0))
        if crop:
            ops.append(K.RandomCrop((crop, crop), p=1.0))
        self.pipeline = K.AugmentationSequential(*ops) if ops else None

    @torch.no_grad()
    def forward(self, batch: dict) -> dict:
        if self.pipeline is None:
            return batch
        hr = batch["hr"]
        parts = [hr]
        prior = batch.get("prior")
        if prior is not None:
            parts.append(prior.to(hr.dtype))
        labels = batch["labels"].to(hr.dtype).unsqueeze(1)
        parts.append(labels)
        out = self.pipeline(torch.cat(parts, dim=1))
        batch["hr"] = out[:, :3].clamp(0, 1)
        i = 3
        if prior is not None:
            c = prior.shape[1]
            batch["prior"] = out[:, i : i + c].clamp_min(0)
            batch["prior"] = batch["prior"] / batch["prior"].sum(dim=1, keepdim=True).clamp_min(1e-8)
            i += c
        lab = out[:, i].round().long()
        batch["labels"] = torch.where((lab < 0) | (lab > VOID_LABEL), VOID_LABEL, lab)
        return batch
