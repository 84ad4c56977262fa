"""``train(cfg) -> (metrics, objects)``: the plain function under ``train.py``'s ``@hydra.main``.

Instantiates, in order: the prior (which fixes the class set), the datamodule, the networks listed in
``cfg.model`` (optionally initialised from checkpoints), the LightningModule (from ``cfg.module``, given
the prior and the networks; its objective comes from the ``loss`` group through the module config),
loggers, callbacks and the Trainer; fits; and asks the module to export itself. No task branches: an
SFTGAN run and a segmenter run differ only in their configs. Tests call it directly with a composed config.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from .models import init_from_srgan
from .state_dict import load_state_dict_file, load_strict

log = logging.getLogger(__name__)


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build_models(cfg: DictConfig) -> dict[str, torch.nn.Module]:
    """Instantiate every network of ``cfg.model`` (generator + discriminator, or a segmenter); the
    generator starts from ``cfg.init_from_srgan`` and a segmenter from ``cfg.init_segmenter`` when set."""
    models = {name: instantiate(node) for name, node in cfg.model.items() if node is not None}
    for key, name in (("init_from_srgan", "generator"), ("init_segmenter", "segmenter")):
        if cfg.get(key) and name not in models:
            raise ValueError(
                f"{key}={cfg.get(key)} is set but this run has no {name} (model: {', '.join(models)}); remove it"
            )
    if cfg.get("init_from_srgan"):
        init_from_srgan(models["generator"], cfg.init_from_srgan)
        log.info("generator trunk initialised from %s", cfg.init_from_srgan)
    if cfg.get("init_segmenter"):
        load_strict(
            models["segmenter"],
            load_state_dict_file(cfg.init_segmenter, prefixes=("segmenter.", "model.")),
            source=f"init_segmenter={cfg.init_segmenter}",
        )
        log.info("segmenter initialised from %s", cfg.init_segmenter)
    return models


def _devices_count(trainer_cfg: DictConfig) -> int:
    devices = trainer_cfg.get("devices", 1)
    if isinstance(devices, int):
        return devices if devices > 0 else 2  # -1: all devices; treat as multi-process
    if isinstance(devices, str):
        return (
            len([d for d in devices.split(",") if d.strip()])
            if "," in devices
            else (int(devices) if devices.isdigit() else 2)
        )
    return len(devices)


def build_trainer(cfg: DictConfig, callbacks: list, loggers: list) -> L.Trainer:
    """The Trainer from ``cfg.trainer``; a multi-process run on ``strategy=auto`` gets DDP with
    ``find_unused_parameters`` (each manual G or D step leaves the other network's parameters unused)."""
    kwargs = {}
    if cfg.trainer.get("strategy", "auto") == "auto" and (
        _devices_count(cfg.trainer) > 1 or cfg.trainer.get("num_nodes", 1) > 1
    ):
        kwargs["strategy"] = "ddp_find_unused_parameters_true"
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, **kwargs)


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, object]]:
    L.seed_everything(cfg.seed, workers=True)
    prior = instantiate(cfg.prior)
    log.info("prior: %s", prior.describe())
    datamodule = instantiate(cfg.data, prior=prior)
    models = build_models(cfg)
    metrics = {f"params/{name}": float(count_parameters(m)) for name, m in models.items()}
    for key, value in metrics.items():
        log.info("%s = %d", key, value)
    module = instantiate(cfg.module, prior=prior, **models)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    trainer = build_trainer(cfg, callbacks, loggers)
    container = OmegaConf.to_container(cfg, resolve=False)
    for logger in trainer.loggers:
        logger.log_hyperparams(container)
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1})
    objects = {**models, "prior": prior, "datamodule": datamodule, "module": module, "trainer": trainer}
    if cfg.export and trainer.is_global_zero and not cfg.trainer.get("fast_dev_run"):
        # the last (validated) weights; checkpoints/ holds the best by the monitored metric
        objects["export"] = module.export(Path(cfg.paths.output_dir))
        log.info("exported %s", objects["export"])
        _upload_artifact(trainer, objects["export"])
    return metrics, objects


def _upload_artifact(trainer: L.Trainer, path: Path) -> None:
    for logger in trainer.loggers:
        if type(logger).__name__ == "WandbLogger":
            import wandb

            artifact = wandb.Artifact(name=f"{path.stem}-{logger.experiment.id}", type="model")
            artifact.add_file(str(path))
            logger.experiment.log_artifact(artifact)
