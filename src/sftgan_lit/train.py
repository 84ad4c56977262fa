"""``train(cfg) -> (metrics, objects)``: the plain function under ``train.py``'s ``@hydra.main``.

Instantiates the prior, the datamodule (which follows the prior), the networks (initialised from an
SRGAN checkpoint when ``init_from_srgan`` is set), the LightningModule and the Trainer, and fits.
"""

from __future__ import annotations

import logging

import lightning as L
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
    L.seed_everything(cfg.seed, workers=True)
    prior = instantiate(cfg.prior)
    log.info("prior: %s", prior.describe())
    datamodule = instantiate(cfg.data, prior=prior)
    models = build_models(cfg)
    metrics = {f"params/{name}": float(count_parameters(m)) for name, m in models.items()}
    for key, value in metrics.items():
        log.info("%s = %d", key, value)
    module = instantiate(cfg.module, **models)
    trainer = instantiate(cfg.trainer)
    trainer.fit(module, datamodule=datamodule)
    metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1})
    return metrics, {**models, "prior": prior, "datamodule": datamodule, "module": module, "trainer": trainer}
