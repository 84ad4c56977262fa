"""Losses: GAN formulations, perceptual (VGG19 features) and pixel terms."""

from .gan import GAN_TYPES, GANLoss, gradient_penalty
from .perceptual import PerceptualLoss, pixel_loss

__all__ = ["GAN_TYPES", "GANLoss", "PerceptualLoss", "gradient_penalty", "pixel_loss"]
