"""VGG19 feature extractor for the perceptual loss (the original: conv5_4 before its ReLU)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..categories import IMAGENET_MEAN, IMAGENET_STD

# torchvision's file name for the ImageNet VGG19 weights (IMAGENET1K_V1)
VGG19_FILENAME = "vgg19-dcbb9e9d.pth"
# index in torchvision's vgg19().features of conv5_4 (the original SRGAN/SFTGAN perceptual layer)
CONV5_4 = 34


def default_vgg19_path() -> Path:
    """Where torchvision caches the VGG19 weights: ``$TORCH_HOME/hub/checkpoints/vgg19-dcbb9e9d.pth``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILENAME


class VGGFeatureExtractor(nn.Module):
    """Frozen VGG19 ``features[: layer + 1]`` with ImageNet normalisation inside.

    Input: RGB in [0, 1], (N, 3, H, W). Output: (N, 512, H/16, W/16) for the default conv5_4.

    Args:
        layer: last index of torchvision's ``vgg19().features`` to keep (34 = conv5_4, pre-activation).
        weights_path: a local copy of torchvision's ``vgg19-dcbb9e9d.pth``; ``None`` looks in
            torchvision's cache. Nothing is downloaded.
        pretrained: ``False`` builds random weights (tests only: a perceptual loss needs real ones).
    """

    def __init__(self, layer: int = CONV5_4, weights_path: str | os.PathLike | None = None, pretrained: bool = True):
        super().__init__()
        from torchvision.models import vgg19

        path = None
        if pretrained:
            path = Path(weights_path) if weights_path is not None else default_vgg19_path()
            if not path.is_file():
                raise FileNotFoundError(
                    f"VGG19 weights not found at {path}. On a machine with internet run "
                    f"`python -c \"import torchvision; torchvision.models.vgg19(weights='IMAGENET1K_V1')\"` and copy "
                    f"{VGG19_FILENAME} from its torch hub cache (`python -c 'import torch; print(torch.hub.get_dir())'`"
                    f"/checkpoints) to {path}, or set the perceptual loss' weights_path to your copy."
                )
        net = vgg19(weights=None)
        if path is not None:
            from ..state_dict import load_state_dict_file, load_strict

            load_strict(net, load_state_dict_file(path), source=str(path))
        self.features = net.features[: layer + 1]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGGFeatureExtractor:
        # Always frozen and in eval mode, whatever the surrounding module does.
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - self.mean) / self.std)
