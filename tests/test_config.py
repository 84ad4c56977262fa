"""Hydra config tree: composition, instantiation, overrides, the train.py entry point, sftgan-inspect."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from sftgan_lit.cli import inspect_main
from sftgan_lit.train import build_models, count_parameters

from helpers import ROOT, TINY, TINY_TRAIN, compose, layout, layout_parameters, random_state_dict


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
    objects = build_models(
        _cfg(["model=srresnet", "model.generator.num_blocks=3", "model.discriminator.input_size=32"])
    )
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
        [sys.executable, str(ROOT / "train.py"), "model=srresnet", *TINY, *TINY_TRAIN, f"hydra.run.dir={tmp_path}"],
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
