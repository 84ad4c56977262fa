"""``SFTGANModule``: manual optimisation alternating a generator and a discriminator step.

This is the core loop (pixel + vanilla GAN + category terms). The perceptual loss, the other GAN
formulations, EMA, learning-rate schedules and the Y-channel metrics are built on it in the training
issue; the networks themselves are plain ``torch.nn`` modules passed in.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn


class SFTGANModule(L.LightningModule):
    """Args: ``generator`` (SFTGenerator), ``discriminator`` (ACDDiscriminator), loss weights, Adam settings.

    A batch is the datamodule's dict (``lr``, ``hr``, ``prior``, ``category``); background (class 0)
    is ignored by the category term, as in the original.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        w_pix: float = 1.0,
        w_gan: float = 5e-3,
        w_cls: float = 1.0,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.999),
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.save_hyperparameters(ignore=["generator", "discriminator"])
        self.generator = generator
        self.discriminator = discriminator

    def configure_optimizers(self):
        betas = tuple(self.hparams.betas)
        opt_g = torch.optim.Adam(self.generator.parameters(), lr=self.hparams.lr, betas=betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=self.hparams.lr, betas=betas)
        return opt_g, opt_d

    def forward(self, lr: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
        return self.generator(lr, prior)

    def _cls_loss(self, logits: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        target = torch.where(category == 0, -100, category)  # background is not a category to classify
        if (target == -100).all():
            return logits.sum() * 0.0
        return F.cross_entropy(logits, target, ignore_index=-100)

    def training_step(self, batch: dict, batch_idx: int) -> None:
        opt_g, opt_d = self.optimizers()
        hp = self.hparams
        with self.toggled_optimizer(opt_g):
            sr = self.generator(batch["lr"], batch["prior"])
            gan_logit, cls_logits = self.discriminator(sr)
            l_pix = F.l1_loss(sr, batch["hr"])
            l_gan = F.binary_cross_entropy_with_logits(gan_logit, torch.ones_like(gan_logit))
            l_cls_g = self._cls_loss(cls_logits, batch["category"])
            loss_g = hp.w_pix * l_pix + hp.w_gan * l_gan + hp.w_cls * l_cls_g
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(loss_g)
            opt_g.step()
        with self.toggled_optimizer(opt_d):
            real_logit, real_cls = self.discriminator(batch["hr"])
            fake_logit, _ = self.discriminator(sr.detach())
            l_real = F.binary_cross_entropy_with_logits(real_logit, torch.ones_like(real_logit))
            l_fake = F.binary_cross_entropy_with_logits(fake_logit, torch.zeros_like(fake_logit))
            loss_d = l_real + l_fake + hp.w_cls * self._cls_loss(real_cls, batch["category"])
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(loss_d)
            opt_d.step()
        self.log_dict(
            {"train/loss_g": loss_g.detach(), "train/l_pix": l_pix.detach(), "train/loss_d": loss_d.detach()},
            prog_bar=True, batch_size=batch["hr"].shape[0],
        )  # fmt: skip

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        sr = self.generator(batch["lr"], batch["prior"]).clamp(0, 1)
        mse = (sr - batch["hr"]).pow(2).flatten(1).mean(1).clamp_min(1e-10)
        self.log("val/psnr_rgb", (10 * torch.log10(1.0 / mse)).mean(), prog_bar=True, batch_size=sr.shape[0], sync_dist=True)
