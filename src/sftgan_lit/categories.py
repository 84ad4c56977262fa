"""The outdoor categories of SFTGAN's prior (OST data set / ADE20K outdoor classes), and the label constants.

One place for the class list and the colour table of the original code's segmentation maps, the void
label and the ImageNet normalisation, so that nothing downstream hard-codes "8", 255 or the order.
"""

from __future__ import annotations

import torch

OUTDOOR_CLASSES: tuple[str, ...] = (
    "background",
    "sky",
    "water",
    "grass",
    "mountain",
    "building",
    "plant",
    "animal",
)

# RGB 0-255, the lookup table of the original test_segmentation.py (255 = void is white).
OUTDOOR_COLORS: tuple[tuple[int, int, int], ...] = (
    (153, 153, 153),
    (0, 255, 255),
    (109, 158, 235),
    (183, 225, 205),
    (153, 0, 255),
    (17, 85, 204),
    (106, 168, 79),
    (224, 102, 102),
)
VOID_COLOR: tuple[int, int, int] = (255, 255, 255)
# The label of pixels without a class (label maps, masks): ignored by losses and metrics, white in colour maps.
VOID_LABEL = 255
# torchvision's ImageNet normalisation, used by the VGG19 features and the LR-ASPP backbone.
IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

NUM_OUTDOOR_CLASSES = len(OUTDOOR_CLASSES)


def colorize(labels: torch.Tensor, colors: tuple[tuple[int, int, int], ...] = OUTDOOR_COLORS) -> torch.Tensor:
    """Label map (N, H, W) or (H, W) of class indices -> RGB image (N, 3, H, W) / (3, H, W) in [0, 1].

    Indices outside the table (e.g. 255 = void) get ``VOID_COLOR``.
    """
    table = torch.tensor((*colors, VOID_COLOR), dtype=torch.float32, device=labels.device) / 255.0
    idx = labels.long().clone()
    idx[(idx < 0) | (idx >= len(colors))] = len(colors)
    rgb = table[idx]  # (..., H, W, 3)
    return rgb.movedim(-1, -3).contiguous()
