"""``train(cfg) -> (metrics, objects)``: the plain function under ``train.py``'s ``@hydra.main``.

This foundation builds the networks the config describes (and initialises the generator from an
SRGAN checkpoint when ``init_from_srgan`` is set); the Lightning training loop (SFTGANModule,
datamodule) plugs in here.
"""

from __future__ import annotations

import logging

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from .checkpoints import init_from_srgan

log = logging.getLogger(__name__)


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_models(cfg: DictConfig) -> dict[str, torch.nn.Module]:
    """Instantiate ``cfg.model``'s networks; the generator is initialised from ``cfg.init_from_srgan`` if set."""
    generator = instantiate(cfg.model.generator)
    if cfg.get("init_from_srgan"):
        init_from_srgan(generator, cfg.init_from_srgan)
        log.info("generator trunk initialised from %s", cfg.init_from_srgan)
    discriminator = instantiate(cfg.model.discriminator)
    return {"generator": generator, "discriminator": discriminator}


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, object]]:
    torch.manual_seed(cfg.seed)
    models = build_models(cfg)
    metrics = {f"params/{name}": float(count_parameters(m)) for name, m in models.items()}
    for key, value in metrics.items():
        log.info("%s = %d", key, value)
    return metrics, models
