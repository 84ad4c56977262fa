"""Hydra config tree: composition, instantiation, overrides, the train.py entry point, sftgan-inspect."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from sftgan_lit.cli import inspect_main
from sftgan_lit.train import build_models, count_parameters, data_scale

from helpers import (
    ROOT,
    TINY,
    TINY_MODEL,
    TINY_TRAIN,
    compose,
    layout,
    layout_parameters,
    random_state_dict,
    tiny_segmenter_file,
    write_folder,
)


def _cfg(overrides):
    return compose(config_name="train", overrides=overrides)


@pytest.mark.parametrize("model,layout_name", [("sftgan", "SFTGAN_noBN_OST_bg"), ("sftgan_torch7", "SFTGAN_torch")])
def test_released_model_configs_build_the_released_layouts(model, layout_name):
    objects = build_models(_cfg(["~experiment", f"model={model}"]))
    g = objects["generator"]
    assert {k: list(v.shape) for k, v in g.state_dict().items()} == layout(layout_name)
    assert count_parameters(g) == layout_parameters(layout_name)
    assert count_parameters(objects["discriminator"]) == layout_parameters("ACD_VGG_BN_96")


def test_overrides_reach_the_constructor():
    objects = build_models(_cfg(["sft=none", "model.generator.num_blocks=3", "model.discriminator.input_size=32"]))
    g = objects["generator"]
    assert g.config.conditioning == "none" and g.config.num_blocks == 3 and g.CondNet is None
    assert objects["discriminator"].input_size == 32


def test_init_from_srgan_config(tmp_path):
    torch.save(random_state_dict("SRGAN_bicx4_noBN_DIV2K", seed=1), tmp_path / "srgan.pth")
    objects = build_models(_cfg(["~experiment", f"init_from_srgan={tmp_path / 'srgan.pth'}"]))
    sd = torch.load(tmp_path / "srgan.pth", weights_only=True)
    torch.testing.assert_close(objects["generator"].conv0.weight, sd["model.0.weight"])


def test_train_py_runs_under_hydra(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "sft=none", *TINY, *TINY_TRAIN, f"hydra.run.dir={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    log = (tmp_path / "train.log").read_text()
    assert "params/generator" in log


def test_inspect_cli(tmp_path, capsys):
    torch.save(random_state_dict("SFTGAN_torch"), tmp_path / "SFTGAN_torch.pth")
    assert inspect_main([str(tmp_path / "SFTGAN_torch.pth")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["config"]["upsampler"] == "nearest" and info["parameters"] == 1612195
    assert inspect_main([str(tmp_path / "missing.pth")]) == 1
    assert "missing.pth" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------
# Every option of every config group composes and builds at toy size
# ---------------------------------------------------------------------------------------------------

CONF = ROOT / "conf"
# groups composed inside other configs, not options of train.py's own groups
NOT_TRAIN_GROUPS = {"classes"}
GROUP_OPTIONS = [
    (group.name, option.stem)
    for group in sorted(p for p in CONF.iterdir() if p.is_dir() and p.name not in NOT_TRAIN_GROUPS)
    for option in sorted(group.glob("*.yaml"))
]


def _needs(group: str, option: str, tmp_path) -> list[str]:
    """The keys an option leaves to the user (files, folders), filled with small generated ones."""
    images, labels = write_folder(tmp_path / "folder", 2)
    seg_arch = tiny_segmenter_file(tmp_path / "seg.pth")
    needs = {
        ("data", "folder"): [f"data.train.images={images}", f"data.store_root={tmp_path / 'stores'}"],
        ("data", "ost"): [
            f"data.train.root={tmp_path / 'ost'}",
            f"data.train.background.images={images}",
            f"data.val.hr={images}",
            f"data.val.lr={images}",
            f"data.store_root={tmp_path / 'stores'}",
        ],
        ("prior", "ade_outdoor"): [f"prior.weights={tmp_path / 'seg.pth'}"]
        + [f"+prior.arch.{k}={v}".replace(" ", "") for k, v in seg_arch.items()],
        ("sft", "first_k"): ["model.generator.num_cond_blocks=1"],
        ("experiment", "sftgan"): [
            "data=demo",
            "prior=labels",
            f"init_from_srgan={tmp_path / 'srgan.pth'}",
            "module.objective.perceptual.random_weights=true",
            "module.objective.perceptual.layer=8",
        ],
    }
    # the segmenter's options belong to its experiment (an SFTGAN run has a generator, a loss and an optim)
    segmenter_run = ["experiment=segmenter"]
    for key in (("module", "segmenter"), ("model", "segmenter_lraspp"), ("callbacks", "segmenter")):
        needs[key] = segmenter_run
    for key in (("module", "estimator"), ("model", "estimator"), ("callbacks", "estimator")):
        needs[key] = ["experiment=degradation_estimator"]
    needs[("degradation", "mapped")] = ["prior=[labels,degradation]"]
    needs[("prior", "degradation")] = ["degradation=mapped"]
    needs[("model", "segmenter_ost")] = [
        *segmenter_run,
        "model.segmenter.layers=[1,1,1,1]",
        "model.segmenter.base_width=8",
    ]
    if (group, option) == ("experiment", "sftgan"):
        torch.save(random_state_dict("SRGAN_bicx4_noBN_DIV2K", seed=1), tmp_path / "srgan.pth")
    if (group, option) == ("prior", "learned"):
        from sftgan_lit.models import LRASPPSegmenter, export_segmenter

        export_segmenter(LRASPPSegmenter(num_classes=4), tmp_path / "learned.pth", list("abcd"), [[0, 0, 0]] * 4)
        return [f"prior.weights={tmp_path / 'learned.pth'}"]
    return needs.get((group, option), [])


@pytest.mark.parametrize("group,option", GROUP_OPTIONS, ids=[f"{g}={o}" for g, o in GROUP_OPTIONS])
def test_every_option_of_every_group_composes_and_builds(group, option, tmp_path, monkeypatch):
    """``GROUP=OPTION`` composes with the default experiment (or as the experiment) and every object a run
    builds from it is built: the prior, the datamodule, the networks (toy size), the module, the loggers,
    the callbacks and the Trainer (on the CPU: a GPU option's other settings still apply)."""
    from hydra.utils import instantiate

    from sftgan_lit.train import build_trainer

    # a prior mixin (continuous channels) is chosen after a categorical prior
    chosen = f"{group}=[labels,{option}]" if (group, option) == ("prior", "degradation") else f"{group}={option}"
    overrides = [chosen, *_needs(group, option, tmp_path), f"paths.output_dir={tmp_path / 'run'}"]
    # no GPU and no cluster here: the trainer options' other settings (strategy, plugins, sync BN) still build
    overrides += ["trainer.accelerator=cpu", "trainer.precision=32-true", "trainer.devices=1", "trainer.num_nodes=1"]
    if (group, option) == ("logger", "wandb"):
        overrides.append("logger.wandb.offline=true")
    if (group, option) == ("trainer", "slurm"):  # what srun sets for one task
        for key, value in {"SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0"}.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("SLURM_NODELIST", "localhost")
        monkeypatch.setenv("SLURM_JOB_NAME", "sftgan")
    cfg = compose(overrides)
    if "generator" in cfg.model and not cfg.init_from_srgan:  # an SRGAN trunk fixes the size
        cfg = compose([*overrides, *TINY_MODEL])
    prior = instantiate(cfg.prior)
    models = build_models(cfg, prior)
    instantiate(cfg.data, prior=prior, scale=data_scale(cfg, models))
    module = instantiate(cfg.module, prior=prior, **models)
    assert module.prior is prior
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c]
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    trainer = build_trainer(cfg, callbacks, loggers)
    assert trainer.max_steps == (1 if cfg.trainer.fast_dev_run else cfg.trainer.max_steps)
    assert all(c in trainer.callbacks for c in callbacks)
