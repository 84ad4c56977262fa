"""Losses: GAN formulations, perceptual (VGG19 features) and pixel terms, and the SFTGAN objective."""

from .gan import GANLoss, gradient_penalty
from .objective import SFTGANObjective, category_loss
from .perceptual import PerceptualLoss, pixel_loss

__all__ = [
    "GANLoss",
    "PerceptualLoss",
    "SFTGANObjective",
    "category_loss",
    "gradient_penalty",
    "pixel_loss",
]
