"""GAN formulations on the discriminator's real/fake logits.

``vanilla`` (the paper's, non-saturating BCE), ``lsgan`` (least squares), ``ragan`` (relativistic
average, ESRGAN), ``wgan_gp`` (Wasserstein with gradient penalty), ``hinge``. Each gives the
generator's loss from ``(real, fake)`` logits and the discriminator's loss from ``(real, fake.detach())``;
``real`` is only needed for ``ragan`` on the generator side.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..choices import GanType, choice


class GANLoss(nn.Module):
    def __init__(self, gan_type: str = "vanilla") -> None:
        super().__init__()
        self.gan_type = choice(GanType, gan_type, "module.objective.gan_type")

    @staticmethod
    def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))

    def generator(self, real: torch.Tensor | None, fake: torch.Tensor) -> torch.Tensor:
        t = self.gan_type
        if t == "vanilla":
            return self._bce(fake, 1.0)
        if t == "lsgan":
            return (fake - 1).pow(2).mean()
        if t == "ragan":
            real = real.detach()
            return (self._bce(real - fake.mean(), 0.0) + self._bce(fake - real.mean(), 1.0)) / 2
        return -fake.mean()  # wgan_gp, hinge

    def discriminator(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        t = self.gan_type
        if t == "vanilla":
            return self._bce(real, 1.0) + self._bce(fake, 0.0)
        if t == "lsgan":
            return (real - 1).pow(2).mean() + fake.pow(2).mean()
        if t == "ragan":
            return (self._bce(real - fake.mean(), 1.0) + self._bce(fake - real.mean(), 0.0)) / 2
        if t == "hinge":
            return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
        return fake.mean() - real.mean()  # wgan_gp (penalty added by the caller)


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP: ``E[(||grad critic(x_hat)||_2 - 1)^2]`` at random interpolates of real and fake images."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    out = critic(x_hat)
    out = out[0] if isinstance(out, tuple) else out
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()
