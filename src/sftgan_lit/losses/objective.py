"""The SFTGAN objective as one object: which terms, their weights, the GAN formulation, the perceptual loss.

The LightningModule asks it for the generator's and the discriminator's loss terms and decides only
when to step what; adding a term is a change here (and in its schema, ``config.LossSchema``), nowhere
else. Terms come back as a dict ``{name: weighted scalar}`` (logged as ``train/g_<name>`` /
``train/d_<name>``).

Generator: pixel (``w_pix``, L1 or MSE) + perceptual (``w_percep``, VGG19 conv5_4 L1) + GAN
(``w_gan``) + category cross-entropy through D (``w_cls_g``, default ``w_gan`` as the original).
Discriminator: real/fake + category on HR and SR (``w_cls``; background ignored, as the original's
``ignore_index=0``) + gradient penalty (``w_gp``, ``wgan_gp`` only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..choices import GanType, PixelType, choice
from .gan import GANLoss, gradient_penalty
from .perceptual import PerceptualLoss, pixel_loss

log = logging.getLogger(__name__)

IGNORE = -100


def category_loss(logits: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of D's category head; background (0) is not a category (the original's ``ignore_index=0``)."""
    target = torch.where(category == 0, IGNORE, category)
    # the mean over the counted samples, and 0 when there are none, without asking the device which (a host
    # sync per loss term would stall a GPU's queue)
    total = F.cross_entropy(logits.float(), target, ignore_index=IGNORE, reduction="sum")
    return total / (target != IGNORE).sum().clamp(min=1)


class SFTGANObjective(nn.Module):
    """Args:
    w_pix, pixel_type: pixel term weight and kind (``l1`` / ``mse``).
    w_percep: perceptual term weight; ``perceptual`` builds the ``PerceptualLoss`` (a factory, e.g. a
        Hydra ``_partial_``, called only when ``w_percep`` is non-zero).
    w_gan, gan_type: GAN term weight and formulation (``choices.GanType``).
    w_cls: D's category term; ``w_cls_g``: G's category term through D (None: ``w_gan``, the original).
    w_gp: gradient penalty weight (``wgan_gp``).
    pixel_fallback: the pixel term's weight when the perceptual term was asked for but its VGG19 weights
        are missing (None: no stand-in). Without features to compare, the pixel term keeps the GAN's
        output tied to the content.
    """

    def __init__(
        self,
        w_pix: float = 0.0,
        pixel_type: str = "l1",
        w_percep: float = 1.0,
        w_gan: float = 5e-3,
        gan_type: str = "vanilla",
        w_cls: float = 1.0,
        w_cls_g: float | None = None,
        w_gp: float = 10.0,
        perceptual: Callable[[], PerceptualLoss] | None = None,
        pixel_fallback: float | None = None,
    ) -> None:
        super().__init__()
        self.w_pix, self.w_percep, self.w_gan, self.w_cls, self.w_gp = w_pix, w_percep, w_gan, w_cls, w_gp
        self.w_cls_g = w_gan if w_cls_g is None else w_cls_g
        self.pixel_type = choice(PixelType, pixel_type, "module.objective.pixel_type")
        self.gan_type = choice(GanType, gan_type, "module.objective.gan_type")
        self.gan = GANLoss(self.gan_type)
        self.perceptual: PerceptualLoss | None = None
        if w_percep and perceptual is not None:
            loss = perceptual()
            if loss.available:
                self.perceptual = loss
            elif pixel_fallback is not None:
                self.w_pix = pixel_fallback
                log.warning(
                    "the perceptual term is OFF (VGG19 weights not found, see above): the generator loss uses the "
                    "pixel term (L1 x %g) in its place, so the GAN's textures stay tied to the content",
                    pixel_fallback,
                )
            else:
                log.warning("the perceptual term is OFF for this run (VGG19 weights not found); see the warning above")
        terms = self.describe()
        log.info(
            "generator loss: %s",
            " + ".join(f"{k}={terms[k]}" for k in ("w_pix", "w_percep", "w_gan", "w_cls_g") if terms[k]),
        )

    @property
    def needs_discriminator(self) -> bool:
        """Whether the generator's terms read D (a run without D needs ``w_gan = w_cls_g = 0``)."""
        return bool(self.w_gan or self.w_cls_g)

    def describe(self) -> dict[str, float | str]:
        """The terms in use, with their weights (for logs and hyperparameters)."""
        terms = {
            "w_pix": self.w_pix,
            "pixel_type": self.pixel_type,
            "w_percep": self.w_percep if self.perceptual else 0.0,
            "w_gan": self.w_gan,
            "gan_type": self.gan_type,
            "w_cls": self.w_cls,
            "w_cls_g": self.w_cls_g,
            "w_gp": self.w_gp,
        }
        return terms

    def generator_terms(
        self, batch: dict, sr: torch.Tensor, discriminator: nn.Module | None
    ) -> dict[str, torch.Tensor]:
        """Weighted generator terms for SR ``(N, 3, H, W)``: the pixel and perceptual terms against
        ``batch['hr_usm']`` when the degradation sharpened the target (Real-ESRGAN's ``gt_usm``), else
        ``batch['hr']``; the GAN terms through D (which sees the unsharpened HR) and ``batch['category']``."""
        terms: dict[str, torch.Tensor] = {}
        target = batch.get("hr_usm", batch["hr"])
        if self.w_pix:
            terms["pix"] = self.w_pix * pixel_loss(sr, target, self.pixel_type)
        if self.perceptual is not None:
            terms["percep"] = self.w_percep * self.perceptual(sr, target)
        hr = batch["hr"]
        if self.needs_discriminator:
            fake_logit, fake_cls = discriminator(sr)
            real_logit = discriminator(hr)[0].detach() if self.gan_type == GanType.ragan.value else None
            if self.w_gan:
                terms["gan"] = self.w_gan * self.gan.generator(real_logit, fake_logit.float())
            if self.w_cls_g:
                terms["cls"] = self.w_cls_g * category_loss(fake_cls, batch["category"])
        return terms

    def discriminator_terms(self, batch: dict, sr: torch.Tensor, discriminator: nn.Module) -> dict[str, torch.Tensor]:
        """Weighted discriminator terms on ``batch['hr']`` (real) and the detached SR (fake)."""
        hr = batch["hr"]
        real_logit, real_cls = discriminator(hr)
        fake_logit, fake_cls = discriminator(sr)
        terms = {"gan": self.gan.discriminator(real_logit.float(), fake_logit.float())}
        if self.w_cls:
            terms["cls"] = self.w_cls * (
                category_loss(real_cls, batch["category"]) + category_loss(fake_cls, batch["category"])
            )
        if self.gan_type == GanType.wgan_gp.value and self.w_gp:
            terms["gp"] = self.w_gp * gradient_penalty(discriminator, hr, sr)
        return terms
