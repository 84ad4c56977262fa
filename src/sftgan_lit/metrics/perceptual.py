"""Learned perceptual distances: LPIPS (Zhang et al. 2018) and DISTS (Ding et al. 2020), offline.

Both compare deep features of an ImageNet backbone. Their learned parts ship inside torchmetrics (LPIPS's
linear heads, DISTS's alpha / beta); the backbone's ImageNet weights come from torchvision's cache
(``<torch.hub.get_dir()>/checkpoints/<torchvision's file name>``) or from a file the user names, and are never
downloaded: without them the metric is omitted with the places that were looked at. A backbone file is a
torchvision state dict (``features.*`` keys, the classifier ignored) in ``.pth`` (read with
``weights_only=True``) or ``.safetensors``.

Scores are per image, inputs RGB ``(N, 3, H, W)`` in [0, 1]; lower is more similar (0 for identical images).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import Metric

from ..state_dict import CheckpointError, load_state_dict_file

# torchvision's weight enums of the backbones: their file names are the cache's
BACKBONES = {"alex": "AlexNet_Weights", "vgg": "VGG16_Weights", "squeeze": "SqueezeNet1_1_Weights"}
# VGG16's features as torchvision numbers them: conv / ReLU, with max-pools at 4, 9, 16, 23 (DISTS replaces
# those by L2 pooling and reads the stages' last ReLUs)
_VGG16_STAGES = ((0, 4), (5, 9), (10, 16), (17, 23), (24, 30))
_DISTS_CHANNELS = (3, 64, 128, 256, 512, 512)
_IMAGENET_MEAN, _IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def lpips_backbone_path(net: str = "alex") -> Path:
    """Where torchvision keeps the backbone's ImageNet weights (``<hub dir>/checkpoints/<file>``)."""
    import torchvision

    if net not in BACKBONES:
        raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, got {net!r}")
    weights = getattr(torchvision.models, BACKBONES[net]).DEFAULT
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def backbone_file(net: str, given: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    """The backbone weights file: ``given`` when set, else torchvision's cache; ``(None, where it looked)``."""
    path = Path(given).expanduser() if given else lpips_backbone_path(net)
    return (path, str(path)) if path.is_file() else (None, str(path))


def _features(path: Path) -> dict[str, torch.Tensor]:
    """A backbone file's ``features.*`` tensors keyed by what follows ``features.`` (``0.weight`` ...)."""
    sd = load_state_dict_file(path)
    found = {k[len("features.") :]: v for k, v in sd.items() if k.startswith("features.")}
    return found or {k: v for k, v in sd.items() if k.split(".", 1)[0].isdigit()}


def _load_numbered(net: nn.Module, features: Mapping[str, torch.Tensor], source: Path) -> None:
    """Load torchvision ``features`` tensors into a network whose stages hold the backbone's layers under their
    torchvision numbers (LPIPS's ``slice1.0`` ... for AlexNet / VGG16, ``slices.0.0`` ... for SqueezeNet)."""
    stages = [m for m in net.children() if isinstance(m, nn.Sequential)]
    stages += [s for m in net.children() if isinstance(m, nn.ModuleList) for s in m]
    loaded = 0
    for stage in stages:
        for number, layer in stage.named_children():
            if not any(True for _ in layer.parameters()):
                continue
            sub = {k[len(number) + 1 :]: v for k, v in features.items() if k.startswith(f"{number}.")}
            try:
                layer.load_state_dict(sub)
            except RuntimeError as err:
                raise CheckpointError(f"{source}: not the backbone's weights (layer {number}: {err})") from None
            loaded += 1
    if not loaded:
        raise CheckpointError(f"{source}: holds no backbone features")


class LPIPS(nn.Module):
    """LPIPS with torchmetrics' linear heads and the backbone read from ``backbone`` (a torchvision state dict).

    Args:
        net: ``alex``, ``vgg`` or ``squeeze``.
        backbone: the backbone's weights file.
    """

    def __init__(self, net: str, backbone: str | os.PathLike) -> None:
        super().__init__()
        from torchmetrics.functional.image.lpips import _NoTrainLpips

        if net not in BACKBONES:
            raise ValueError(f"LPIPS net must be one of {sorted(BACKBONES)}, got {net!r}")
        self.lpips = _NoTrainLpips(net=net, pnet_rand=True)  # heads loaded from torchmetrics; backbone below
        _load_numbered(self.lpips.net, _features(Path(backbone)), Path(backbone))
        self.requires_grad_(False).eval()

    @torch.no_grad()
    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` RGB in [0, 1] twice -> ``(N,)`` LPIPS distances."""
        return self.lpips(sr.float(), hr.float(), normalize=True).flatten()


class _L2Pool(nn.Module):
    """DISTS's L2 pooling: sqrt of a Hanning-weighted 3x3 average of squares, stride 2 (replaces max-pooling)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        a = torch.from_numpy(np.hanning(5)[1:-1]).float()
        g = a[:, None] * a[None, :]
        self.register_buffer("filter", (g / g.sum()).expand(channels, 1, 3, 3).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.conv2d(x * x, self.filter, stride=2, padding=1, groups=x.shape[1])
        return (out + 1e-12).sqrt()


class DISTS(nn.Module):
    """DISTS: structure and texture similarity of VGG16 features, weighted by the learned alpha / beta.

    Args:
        backbone: VGG16's ImageNet weights (torchvision's ``vgg16-397923af.pth``, or its ``features.*``).
        alpha_beta: the ``{"alpha", "beta"}`` file; None: the one torchmetrics ships.
    """

    def __init__(self, backbone: str | os.PathLike, alpha_beta: str | os.PathLike | None = None) -> None:
        super().__init__()
        from torchvision.models.vgg import cfgs, make_layers

        features = make_layers(cfgs["D"])
        source = Path(backbone)
        try:
            features.load_state_dict(_features(source))
        except RuntimeError as err:
            raise CheckpointError(f"{source}: not VGG16's weights ({str(err).splitlines()[0]})") from None
        pools = [nn.Identity()] + [_L2Pool(c) for c in _DISTS_CHANNELS[1:5]]
        self.stages = nn.ModuleList(nn.Sequential(pool, *features[a:b]) for pool, (a, b) in zip(pools, _VGG16_STAGES))
        if alpha_beta is None:
            from torchmetrics.functional.image.dists import _PATH_WEIGHT_DISTS as alpha_beta
        weights = torch.load(alpha_beta, map_location="cpu", weights_only=True)
        self.register_buffer("alpha", weights["alpha"].float().flatten())
        self.register_buffer("beta", weights["beta"].float().flatten())
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats, h = [x], (x - self.mean) / self.std
        for stage in self.stages:
            h = stage(h)
            feats.append(h)
        return feats

    @torch.no_grad()
    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        """``(N, 3, H, W)`` RGB in [0, 1] twice -> ``(N,)`` DISTS distances in [0, 1]."""
        fx, fy = self._features(sr.float()), self._features(hr.float())
        total = self.alpha.sum() + self.beta.sum()
        alphas = torch.split(self.alpha / total, _DISTS_CHANNELS)
        betas = torch.split(self.beta / total, _DISTS_CHANNELS)
        score = torch.zeros(sr.shape[0], device=sr.device)
        c1 = c2 = 1e-6
        for x, y, a, b in zip(fx, fy, alphas, betas):
            mx, my = x.mean((2, 3)), y.mean((2, 3))
            vx, vy = x.var((2, 3), unbiased=False), y.var((2, 3), unbiased=False)
            cov = (x * y).mean((2, 3)) - mx * my
            structure = (2 * mx * my + c1) / (mx**2 + my**2 + c1)  # per channel: luminance-like term of the means
            texture = (2 * cov + c2) / (vx + vy + c2)
            score = score + (structure * a).sum(1) + (texture * b).sum(1)
        return 1 - score


def lpips_scorer(net: str = "alex", weights: str | os.PathLike | None = None) -> tuple[LPIPS | None, str]:
    """LPIPS with its backbone from ``weights`` or torchvision's cache, or ``(None, why)``: never a download."""
    path, looked = backbone_file(net, weights)
    if path is None:
        return None, (
            f"LPIPS omitted: the {net} backbone's ImageNet weights are not at {looked} (lpips_weights=PATH, or copy "
            "torchvision's file into torch.hub.get_dir()/checkpoints)"
        )
    return LPIPS(net, path), f"LPIPS ({net}) from {path}"


def dists_scorer(weights: str | os.PathLike | None = None) -> tuple[DISTS | None, str]:
    """DISTS with VGG16 from ``weights`` or torchvision's cache, or ``(None, why)``: never a download."""
    path, looked = backbone_file("vgg", weights)
    if path is None:
        return None, (
            f"DISTS omitted: VGG16's ImageNet weights are not at {looked} (dists_weights=PATH, or copy "
            "torchvision's vgg16-397923af.pth into torch.hub.get_dir()/checkpoints)"
        )
    return DISTS(path), f"DISTS (VGG16) from {path}"


def lpips_metric(net: str = "alex") -> tuple[Metric | None, str]:
    """torchmetrics' LPIPS (a ``Metric``: training's ``val/lpips``) when its backbone is in torchvision's cache,
    else ``(None, reason)``: never a download. Inputs are RGB in [0, 1] (``normalize=True``)."""
    if net not in BACKBONES:
        raise ValueError(f"LPIPS net must be one of {sorted(BACKBONES)}, got {net!r}")
    path = lpips_backbone_path(net)
    if not path.is_file():
        return None, (
            f"LPIPS skipped: backbone weights {path.name} not found at {path} (copy them there from a machine "
            "with internet: torchvision downloads them into torch.hub.get_dir()/checkpoints)"
        )
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    return LearnedPerceptualImagePatchSimilarity(net_type=net, normalize=True), f"LPIPS ({net}) from {path}"
