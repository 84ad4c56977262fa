"""OutdoorSceneSeg: the 8-class outdoor segmenter that produces SFTGAN's categorical prior."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..imresize import bicubic_kernel, upsample
from ..tensors import check_image

# Caffe-style VGG/ResNet preprocessing of the released weights: BGR, 0-255, minus these means.
BGR_MEANS = (103.939, 116.779, 123.68)


def _conv_bn(
    c_in: int, c_out: int, kernel: int, stride: int = 1, dilation: int = 1, relu: bool = True
) -> list[nn.Module]:
    padding = dilation * (kernel - 1) // 2
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation=dilation, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if relu:
        layers.append(nn.ReLU())
    return layers


class Res131(nn.Module):
    """ResNet bottleneck ``1x1 -> 3x3 (stride, dilation) -> 1x1`` with BN, projection when widths differ."""

    def __init__(self, c_in: int, c_mid: int, c_out: int, dilation: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.res = nn.Sequential(
            *_conv_bn(c_in, c_mid, 1),
            *_conv_bn(c_mid, c_mid, 3, stride, dilation),
            *_conv_bn(c_mid, c_out, 1, relu=False),
        )
        self.proj = nn.Sequential(*_conv_bn(c_in, c_out, 1, stride, relu=False)) if c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.proj is None else self.proj(x)
        return F.relu(shortcut + self.res(x))


class OutdoorSceneSeg(nn.Module):
    """ResNet-101-style segmenter with dilated conv4/conv5 (output stride 8) and an 8-class head,
    upsampled x8 by a fixed-size grouped transposed conv, softmax over classes.

    ``forward(lr)`` does the original's preprocessing itself: LR RGB in [0, 1], (N, 3, h, w) ->
    MATLAB-bicubic x``scale`` -> BGR 0-255 minus ``BGR_MEANS`` -> probabilities (N, num_classes,
    scale*h, scale*w). Inputs whose upsampled size is not a multiple of 8 (the network's stride) are
    padded by edge replication and the output cropped back. ``forward_preprocessed`` takes an already
    upsampled, mean-subtracted BGR image.

    ``layers``/``base_width`` shrink the trunk (tests, quick experiments); the defaults are the
    released model (``segmentation_OST_bic.pth``).
    """

    stride = 8

    def __init__(
        self,
        num_classes: int = 8,
        layers: tuple[int, int, int, int] = (3, 4, 23, 3),
        base_width: int = 64,
        scale: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self._config = {
            "num_classes": num_classes,
            "layers": list(layers),
            "base_width": base_width,
            "scale": scale,
            "dropout": dropout,
        }
        self.num_classes = num_classes
        self.scale = scale
        self.register_buffer("upsample_kernel", bicubic_kernel(scale).float(), persistent=False)
        w = base_width
        blocks: list[nn.Module] = [
            *_conv_bn(3, w, 3, stride=2),
            *_conv_bn(w, w, 3),
            *_conv_bn(w, 2 * w, 3),
            nn.MaxPool2d(3, stride=2, padding=0, ceil_mode=True),
        ]
        # (mid width, out width, blocks, dilation, stride of the first block)
        stages = [
            (w, 4 * w, layers[0], 1, 1),
            (2 * w, 8 * w, layers[1], 1, 2),
            (4 * w, 16 * w, layers[2], 2, 1),
            (8 * w, 32 * w, layers[3], 4, 1),
        ]
        c_in = 2 * w
        for c_mid, c_out, n, dilation, stride in stages:
            for i in range(n):
                blocks.append(Res131(c_in, c_mid, c_out, dilation, stride if i == 0 else 1))
                c_in = c_out
        blocks += [*_conv_bn(c_in, 8 * w, 3), nn.Dropout(dropout), nn.Conv2d(8 * w, num_classes, 1)]
        self.feature = nn.Sequential(*blocks)
        self.deconv = nn.ConvTranspose2d(
            num_classes, num_classes, 2 * self.stride, self.stride, self.stride // 2, groups=num_classes, bias=False
        )

    def config_dict(self) -> dict:
        """Constructor arguments (what ``export_segmenter`` records)."""
        return dict(self._config)

    def preprocess(self, lr: torch.Tensor) -> torch.Tensor:
        """LR RGB [0, 1] (N, 3, h, w) -> upsampled, mean-subtracted BGR 0-255 (N, 3, scale*h, scale*w)."""
        # in the network's own float type (float32, or float16 after .half() for an fp16 export)
        up = upsample(lr.to(self.upsample_kernel.dtype), self.scale, self.upsample_kernel) * 255.0
        means = torch.tensor(BGR_MEANS, dtype=up.dtype, device=up.device).view(1, 3, 1, 1)
        return up.flip(1) - means

    # Tiled prediction keeps the logits at stride 8 (small) and decodes probabilities per tile:
    # the x8 transposed conv reads at most 2 logit cells each side of a crop.
    coarse_stride = 8
    coarse_margin = 2

    def coarse_logits(self, lr: torch.Tensor) -> torch.Tensor:
        """LR RGB [0, 1] (N, 3, h, w) -> logits at 1/8 of HR resolution (N, C, ceil(scale*h/8), ceil(scale*w/8))."""
        if lr.dim() != 4 or lr.shape[1] != 3:
            raise ValueError(f"OutdoorSceneSeg expects LR RGB (N, 3, h, w) in [0, 1], got {tuple(lr.shape)}")
        return self._coarse(self.preprocess(lr))

    def _coarse(self, x: torch.Tensor) -> torch.Tensor:
        """Preprocessed (N, 3, H, W), padded by edge replication to a multiple of the stride -> stride-8 logits."""
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % self.stride, (-w) % self.stride
        # padded unconditionally (a zero pad is a no-op): a branch on the size would be frozen into exported graphs
        return self.feature(F.pad(x, (0, pad_w, 0, pad_h), mode="replicate"))

    def decode_coarse(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits (N, C, a, b) at stride 8 -> probabilities (N, C, 8a, 8b); a crop of the logits on the
        stride-8 grid decodes to the same crop of the whole map, away from its ``coarse_margin`` border."""
        return torch.softmax(self.deconv(logits), dim=1)

    def forward_preprocessed(self, x: torch.Tensor) -> torch.Tensor:
        """Mean-subtracted BGR (N, 3, H, W) -> class probabilities (N, num_classes, H, W)."""
        h, w = x.shape[-2:]
        return self.decode_coarse(self._coarse(x))[..., :h, :w]

    def logits(self, lr: torch.Tensor) -> torch.Tensor:
        """LR RGB [0, 1] (N, 3, h, w) -> logits before the softmax (N, num_classes, scale*h, scale*w) (training)."""
        check_image(lr, "lr (the segmenter's input)")
        h, w = lr.shape[-2] * self.scale, lr.shape[-1] * self.scale
        return self.deconv(self.coarse_logits(lr))[..., :h, :w]

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """LR RGB [0, 1] (N, 3, h, w) -> class probabilities (N, num_classes, scale*h, scale*w)."""
        return torch.softmax(self.logits(lr), dim=1)
