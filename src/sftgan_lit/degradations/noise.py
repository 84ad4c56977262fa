"""Sensor noise on the device, as BasicSR's ``generate_gaussian_noise_pt`` / ``generate_poisson_noise_pt``
model it: additive Gaussian noise and Poisson (shot) noise, in colour (independent per channel) or grey (one
field for the three channels), one strength per image, drawn from a given ``torch.Generator`` so that an
image's noise depends on its own seed only.
"""

from __future__ import annotations

import torch

#: ITU-R 601 luma weights of ``torchvision``'s ``rgb_to_grayscale``, which BasicSR's grey Poisson noise uses
GREY_WEIGHTS = (0.2989, 0.587, 0.114)


def _per_image(value: torch.Tensor | float, n: int, like: torch.Tensor) -> torch.Tensor:
    """A number or ``(N,)`` values as ``(N, 1, 1, 1)`` on ``like``'s device and dtype."""
    return torch.as_tensor(value, dtype=like.dtype, device=like.device).expand(n).reshape(n, 1, 1, 1)


def gaussian_noise(
    image: torch.Tensor,
    sigma: torch.Tensor | float,
    gray: torch.Tensor | bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Gaussian noise for ``image`` ``(N, C, H, W)``: standard deviation ``sigma`` in 8-bit levels (``/255`` in
    [0, 1] units), ``(N,)`` or a number; ``gray`` (``(N,)`` or a bool): one field shared by the channels.

    Returns:
        The noise ``(N, C, H, W)`` (not added), ``image``'s dtype.
    """
    n, c, h, w = image.shape
    draw = lambda channels: torch.randn(
        (n, channels, h, w), generator=generator, device=image.device, dtype=image.dtype
    )
    return _mixed(draw(c) if gray is not True else None, draw(1) if gray is not False else None, gray, image) * (
        _per_image(sigma, n, image) / 255.0
    )


def _mixed(colour: torch.Tensor | None, grey: torch.Tensor | None, gray, like: torch.Tensor) -> torch.Tensor:
    """The colour field, the grey one (spread over the channels), or per image the one ``gray`` picks."""
    if grey is None:
        return colour
    if colour is None:
        return grey.expand_as(like)
    g = _per_image(gray, like.shape[0], like)
    return colour * (1 - g) + grey * g


def _levels_power(image8: torch.Tensor) -> torch.Tensor:
    """``2 ** ceil(log2(number of distinct 8-bit values))`` of each image ``(N, C, H, W)`` (values on the 8-bit
    grid): the photon-count scale BasicSR's Poisson noise takes from the image; ``(N, 1, 1, 1)``, counted on the
    device (no host round trip)."""
    n = image8.shape[0]
    levels = (image8 * 255).round().long().clamp(0, 255).reshape(n, -1)
    present = torch.zeros((n, 256), dtype=torch.bool, device=image8.device)
    present.scatter_(1, levels, True)
    count = present.sum(1).clamp(min=1).to(image8.dtype)
    return torch.exp2(torch.ceil(torch.log2(count))).reshape(n, 1, 1, 1)


def _shot(image: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    img = (image * 255).round().clamp(0, 255) / 255
    vals = _levels_power(img)
    return torch.poisson(img * vals, generator=generator) / vals - img


def poisson_noise(
    image: torch.Tensor,
    scale: torch.Tensor | float,
    gray: torch.Tensor | bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Poisson (shot) noise for ``image`` ``(N, 3, H, W)`` in [0, 1]: the image rounded to 8 bits, counted as
    ``vals`` photons at full scale (``vals``: the next power of two above its number of distinct levels),
    ``Poisson(img * vals) / vals - img``, times ``scale`` ``(N,)`` or a number; ``gray``: drawn on the image's
    grey version (``GREY_WEIGHTS``) and shared by the channels.

    Returns:
        The noise ``(N, 3, H, W)`` (not added), ``image``'s dtype.
    """
    n = image.shape[0]
    weights = torch.tensor(GREY_WEIGHTS, dtype=image.dtype, device=image.device).reshape(1, 3, 1, 1)
    colour = _shot(image, generator) if gray is not True else None
    grey = _shot((image * weights).sum(1, keepdim=True), generator) if gray is not False else None
    return _mixed(colour, grey, gray, image) * _per_image(scale, n, image)
