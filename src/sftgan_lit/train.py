"""``train(cfg) -> (metrics, objects)``: the plain function under ``train.py``'s ``@hydra.main``.

A run is one stage, or the stages listed in ``cfg.stages`` (the paper's recipe: a fidelity stage with
the pixel loss, then the GAN stage starting from its generator), each the base config with the stage's
keys merged on top. A stage instantiates, in order: the prior (which fixes the class set), the
datamodule, the networks listed in ``cfg.model`` (optionally initialised from checkpoints or from an
earlier stage's export), the LightningModule (from ``cfg.module``, given the prior and the networks; its
objective comes from the ``loss`` group through the module config), loggers, callbacks and the Trainer;
fits; and asks the module to export itself. No task branches: an SFTGAN run and a segmenter run differ
only in their configs. Tests call it directly with a composed config.
"""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from .config import ConfigError, TrainerSchema, conf_dir
from .degradations import check_degradation
from .models import LIGHTNING_GENERATOR_PREFIXES, init_from_backbone, init_from_srgan
from .state_dict import load_checkpoint_file, load_state_dict_file, load_strict, unwrap_state_dict

log = logging.getLogger(__name__)


def count_parameters(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


#: which of the prior's sizes each network of the model group is built with (the rest: the class count)
MODEL_READS = {"generator": ("num_classes", "num_continuous"), "estimator": ("num_continuous",)}


def build_models(cfg: DictConfig, prior=None) -> dict[str, torch.nn.Module]:
    """Instantiate every network of ``cfg.model`` (generator + discriminator, or a segmenter), each sized by
    the prior's class count (``prior``: a ``priors.Prior``; None: ``cfg.prior``'s), the generator also by its
    continuous channels (what it reads; the discriminator's class head sees classes only); the generator starts from
    ``cfg.init_generator`` (all its weights, e.g. an earlier stage's export), ``cfg.init_from`` (a released
    unconditioned backbone: the trunk, conditioning layers the identity) or ``cfg.init_from_srgan`` (an
    SRResNet trunk, conditioning layers small), a segmenter from ``cfg.init_segmenter``, when set."""
    if prior is None:
        prior = instantiate(cfg.prior)
    facts = {"num_classes": prior.num_classes, "num_continuous": len(prior.continuous)}
    models = {
        name: instantiate(node, **{k: facts[k] for k in MODEL_READS.get(name, ("num_classes",))})
        for name, node in cfg.model.items()
        if node is not None
    }
    starts = [k for k in ("init_generator", "init_from", "init_from_srgan") if cfg.get(k)]
    if len(starts) > 1:
        raise ConfigError(f"{' and '.join(starts)} are all set; a generator starts from one of them: keep one")
    for key, name in (
        ("init_generator", "generator"),
        ("init_from", "generator"),
        ("init_from_srgan", "generator"),
        ("init_segmenter", "segmenter"),
    ):
        if cfg.get(key) and name not in models:
            raise ValueError(
                f"{key}={cfg.get(key)} is set but this run has no {name} (model: {', '.join(models)}); remove it"
            )
    if cfg.get("init_generator"):
        sd = load_state_dict_file(cfg.init_generator, prefixes=LIGHTNING_GENERATOR_PREFIXES)
        load_strict(models["generator"], sd, source=f"init_generator={cfg.init_generator}")
        log.info("generator initialised from %s", cfg.init_generator)
    if cfg.get("init_from"):
        init_from_backbone(models["generator"], cfg.init_from)
        log.info("generator trunk from %s; its conditioning layers start as the identity", cfg.init_from)
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


def data_scale(cfg: DictConfig, models: dict[str, torch.nn.Module]) -> int:
    """The SR factor the data is made at: the network's (the generator's, or a segmenter's); ``data.scale``,
    when set, must agree with it (a ``ConfigError`` naming both keys)."""
    net = models.get("generator", models.get("segmenter"))
    scale = net.scale if net is not None else cfg.data.get("scale") or 4
    given = cfg.data.get("scale")
    if given is not None and given != scale:
        raise ConfigError(
            f"data.scale={given}: must be the network's scale ({scale}, model.generator.scale); "
            "leave data.scale null to take it from the model"
        )
    return scale


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


def pinned_keys(cfg: DictConfig) -> list[str]:
    """The dotted keys whose values every stage keeps from ``cfg``: the values the command line set and the
    keys of the selected ``debug`` group (``conf/debug/``), read from Hydra's record of this run (set by
    ``@hydra.main`` and by ``config.compose_config``). Group choices (``loss=pixel``) are compositions,
    not values: they are not pinned. Keys under ``stages.NAME.`` are listed too: ``stage_configs`` lets
    such a key win in its own stage over the same key set for all."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not HydraConfig.initialized() or HydraConfig.get().job.config_name != "train":
        return []
    record = HydraConfig.get()
    groups = set(record.runtime.choices)
    keys = []
    for override in OverridesParser.create().parse_overrides(list(record.overrides.task)):
        key = override.key_or_group
        if override.is_delete() or override.package or key in groups or key.startswith("hydra."):
            continue
        keys.append(key)
    debug = record.runtime.choices.get("debug")
    if debug:
        node = OmegaConf.load(conf_dir() / "debug" / f"{debug}.yaml")
        keys += [k for k in _leaf_keys(node) if k != "defaults"]
    return keys


def _leaf_keys(node, prefix: str = "") -> list[str]:
    """The dotted keys of ``node``'s leaves (a list or an empty dict is a leaf)."""
    if not OmegaConf.is_dict(node) or not node:
        return [prefix]
    return [k for name, child in node.items() for k in _leaf_keys(child, f"{prefix}.{name}" if prefix else str(name))]


def stage_configs(cfg: DictConfig, pinned: list[str] | tuple[str, ...] = ()) -> list[tuple[str, DictConfig]]:
    """The run's stages: ``[("", cfg)]``, or one ``(name, config)`` per entry of ``cfg.stages``.

    A stage's config is ``cfg`` with the stage's keys merged on top (a key the base config does not have
    fails, as a typo would), then the ``pinned`` keys (``pinned_keys``: the command line and the debug
    group) set back to ``cfg``'s values, so that what the user set wins in every stage; it logs under
    ``<output_dir>/<name>/`` and exports into ``<output_dir>``; ``init_from_stage: NAME`` starts its
    generator from that earlier stage's generator.
    """
    if not cfg.get("stages"):
        return [("", cfg)]
    root = str(cfg.paths.output_dir)  # resolved once: all stages write under one run folder
    base = cfg.copy()
    base.stages = None
    out = []
    own = [k for k in pinned if k.startswith("stages.")]
    for name, stage in cfg.stages.items():
        if stage.get("init_from_stage") and stage.init_from_stage not in [n for n, _ in out]:
            raise ValueError(f"stages.{name}.init_from_stage={stage.init_from_stage} is not an earlier stage")
        stage_cfg = OmegaConf.merge(base, stage)
        for key in pinned:
            if key == "stages" or key.startswith("stages.") or any(_within(k, f"stages.{name}.{key}") for k in own):
                continue
            parts = key.split(".")
            nulled = next(
                (p for p in (".".join(parts[:i]) for i in range(1, len(parts))) if _is_null(stage_cfg, p)), None
            )
            if nulled:  # the stage sets the section to null (e.g. data.degradation: null, bicubic): none of its keys
                log.info("stage %s: %s is null in this stage; %s does not apply to it", name, nulled, key)
                continue
            value = OmegaConf.select(base, key, throw_on_missing=False)
            OmegaConf.update(stage_cfg, key, value, merge=False, force_add=True)
        stage_cfg.paths.output_dir = f"{root}/{name}"
        stage_cfg.export_dir = root
        out.append((str(name), stage_cfg))
    return out


_ABSENT = object()


def _is_null(cfg: DictConfig, key: str) -> bool:
    """``key`` is in ``cfg`` and set to null (an absent key is not)."""
    return OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False) is None


def _within(key: str, other: str) -> bool:
    """``other`` is ``key`` or a key inside it (``trainer`` holds ``trainer.max_steps``), or holds ``key``."""
    return key == other or key.startswith(other + ".") or other.startswith(key + ".")


class StageError(ValueError):
    """A stage's configuration that does not build: one line starting with ``stage <name>:``."""

    @classmethod
    def wrap(cls, name: str, err: BaseException) -> StageError:
        """The error of stage ``name`` from what its construction raised (Hydra's wrapper unwrapped)."""
        while isinstance(err, InstantiationException) and err.__cause__ is not None:
            err = err.__cause__  # Hydra's wrapper: the constructor's own message is the one to show
        first = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
        # a value the command line pinned may not fit every stage (e.g. module.objective.w_gan in a stage without D)
        return cls(f"stage {name}: {first} (a key for one stage only: stages.{name}.KEY=VALUE; one stage: stages=null)")


def train(cfg: DictConfig) -> tuple[dict[str, float], dict[str, object]]:
    """Run every stage (``stage_configs``); returns the last stage's metrics (and every stage's, prefixed
    ``<stage>/``) and its objects, with each stage's under ``objects["stages"]``.

    A stage that starts from an earlier one (``init_from_stage``) gets its export, or, when that stage
    exported nothing (a ``fast_dev_run``), its trained generator's weights in memory."""
    metrics: dict[str, float] = {}
    stages: dict[str, dict] = {}
    exports: dict[str, Path] = {}
    handoff: dict[str, dict[str, torch.Tensor]] = {}
    objects: dict[str, object] = {}
    TrainerSchema.check(cfg.trainer)
    stages_cfg = stage_configs(cfg, pinned_keys(cfg))
    started_from = {stage_cfg.get("init_from_stage") for _, stage_cfg in stages_cfg}
    for name, stage_cfg in stages_cfg:  # every stage's settings checked before the first one trains
        TrainerSchema.check(stage_cfg.trainer, f"stages.{name}.trainer")
        data = stage_cfg.get("data")
        if data is not None:
            check_degradation(data.get("degradation"))
    for name, stage_cfg in stages_cfg:
        init_state = None
        source = stage_cfg.get("init_from_stage")
        if source in exports:
            stage_cfg.init_generator = str(exports[source])
        elif source in handoff:
            init_state = handoff[source]
        elif source:
            raise StageError(f"stage {name}: stage {source} left no generator to start from")
        if name:
            log.info("=== stage %s ===", name)
        stage_metrics, objects = train_stage(stage_cfg, init_state=init_state, stage=name)
        metrics.update({f"{name}/{k}" if name else k: v for k, v in stage_metrics.items()})
        stages[name] = objects
        if "export" in objects:
            exports[name] = objects["export"]
        elif name in started_from and hasattr(objects["module"], "eval_generator"):
            handoff[name] = {k: v.detach().clone() for k, v in objects["module"].eval_generator.state_dict().items()}
    if len(stages) > 1:
        metrics.update(stage_metrics)
        objects = {**objects, "stages": stages, "exports": exports}
    return metrics, objects


def train_stage(
    cfg: DictConfig, init_state: dict[str, torch.Tensor] | None = None, stage: str = ""
) -> tuple[dict[str, float], dict[str, object]]:
    """One stage: instantiate, fit, export (module docstring).

    Args:
        cfg: the stage's composed config (``stage_configs``).
        init_state: the generator's starting weights (an earlier stage's, in memory), instead of
            ``cfg.init_generator``.
        stage: the stage's name; a config that does not build then raises ``StageError`` naming it.

    Returns:
        ``(metrics, objects)``: the logged scalars and the built objects (networks, prior, datamodule,
        module, trainer, and ``export``: the exported file, when there is one).
    """
    L.seed_everything(cfg.seed, workers=True)
    try:
        prior = instantiate(cfg.prior)
        log.info("prior: %s", prior.describe())
        models = build_models(cfg, prior)
        datamodule = instantiate(cfg.data, prior=prior, scale=data_scale(cfg, models))
        if init_state is not None:
            load_strict(models["generator"], init_state, source="the previous stage's generator")
        module = instantiate(cfg.module, prior=prior, **models)
        loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
        callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
        trainer = build_trainer(cfg, callbacks, loggers)
        if cfg.get("ckpt_path"):
            check_resume(module, cfg.ckpt_path)
    except (ValueError, TypeError, InstantiationException) as err:
        if not stage:
            raise
        raise StageError.wrap(stage, err) from err
    metrics = {f"params/{name}": float(count_parameters(m)) for name, m in models.items()}
    for key, value in metrics.items():
        log.info("%s = %d", key, value)
    container = OmegaConf.to_container(cfg, resolve=False)
    for logger in trainer.loggers:
        logger.log_hyperparams(container)
    # resuming reads the checkpoint as every other load does: tensors and plain containers only
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"), weights_only=True)
    metrics.update({k: float(v) for k, v in trainer.callback_metrics.items() if torch.is_tensor(v) and v.numel() == 1})
    objects = {**models, "prior": prior, "datamodule": datamodule, "module": module, "trainer": trainer}
    if cfg.export and trainer.global_step == 0:
        # untrained weights under the export's name would be what checkpoint=latest picks next
        log.warning(
            "%s: no optimizer step was taken (trainer.max_steps=%s): nothing is exported",
            f"stage {stage}" if stage else "this run",
            cfg.trainer.get("max_steps"),
        )
    elif cfg.export and not cfg.trainer.get("fast_dev_run"):
        # the last (validated) weights; checkpoints/ holds the best by the monitored metric
        path = Path(cfg.get("export_dir") or cfg.paths.output_dir) / (cfg.get("export_name") or module.export_name)
        if trainer.is_global_zero:
            module.export(path)
            _upload_artifact(trainer, path)
        trainer.strategy.barrier("export")  # a later stage on any rank starts from this file
        objects["export"] = path
    return metrics, objects


def check_resume(module: L.LightningModule, path: str) -> None:
    """Fail in one line, before Lightning's key dump, when checkpoint ``path`` was written by a run whose
    networks differ from this run's: which network, how many keys, an example, and where the right config is."""
    sd = unwrap_state_dict(load_checkpoint_file(path), source=str(path))
    own = module.state_dict()
    problems = []
    for net in sorted({k.split(".", 1)[0] for k in own} | {k.split(".", 1)[0] for k in sd}):
        mine = {k: tuple(v.shape) for k, v in own.items() if k.split(".", 1)[0] == net}
        theirs = {k: tuple(v.shape) for k, v in sd.items() if k.split(".", 1)[0] == net}
        shaped = [f"{k} {theirs[k]} vs {mine[k]}" for k in mine if k in theirs and theirs[k] != mine[k]]
        missing, extra = sorted(set(mine) - set(theirs)), sorted(set(theirs) - set(mine))
        if shaped or missing or extra:
            example = (shaped or [f"{k} missing" for k in missing] or [f"{k} unexpected" for k in extra])[0]
            problems.append(
                f"{net}: {len(shaped)} mis-shaped, {len(missing)} missing, {len(extra)} unexpected keys (e.g. {example})"
            )
    if problems:
        raise ValueError(
            f"ckpt_path={path} was written by a run with other networks: {'; '.join(problems)}; resume with that "
            "run's config (its .hydra/config.yaml / overrides.yaml)"
        )


def _upload_artifact(trainer: L.Trainer, path: Path) -> None:
    from lightning.pytorch.loggers import WandbLogger

    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger):
            import wandb

            artifact = wandb.Artifact(name=f"{path.stem}-{logger.experiment.id}", type="model")
            artifact.add_file(str(path))
            logger.experiment.log_artifact(artifact)
