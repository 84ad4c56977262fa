"""The wheel: built from the repository, installed non-editable, its console scripts work from any folder
with the configs it carries (conf/ is shipped inside the package)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from sftgan_lit.models import SFTGenerator, export_generator

from helpers import ROOT, TINY_DATA


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The package built as a wheel and installed (no dependencies: they are this venv's) into a folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    # built from a copy of what the wheel is made of, so the build leaves nothing in the repository
    source = tmp / "source"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for part in ("src", "conf"):
        shutil.copytree(ROOT / part, source / part, ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp / "dist").glob("sftgan_lit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "sftgan_lit/conf/train.yaml" in names and "sftgan_lit/conf/prior/labels.yaml" in names
    assert len([n for n in names if n.endswith(".yaml")]) == len(list((ROOT / "conf").rglob("*.yaml")))
    target = tmp / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-compile",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    return target


def _run(target: Path, cwd: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = f"import sys; from sftgan_lit.cli import {script}; sys.argv[0] = {script!r}; {script}()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_the_wheel_runs_from_an_empty_folder(installed, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, "PYTHONPATH": str(installed)}
    where = subprocess.run(
        [sys.executable, "-c", "import sftgan_lit.config as c; print(c.__file__); print(c.conf_dir())"],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert where[0].startswith(str(installed)) and where[1] == str(installed / "sftgan_lit" / "conf")

    job = _run(installed, empty, "train_main", "--cfg", "job")
    assert job.returncode == 0, job.stderr
    assert "_target_: sftgan_lit.lit.SFTGANModule" in job.stdout and "objective:" in job.stdout

    torch.manual_seed(0)
    export_generator(
        SFTGenerator(num_features=8, num_blocks=1, cond_channels=4, cond_hidden_channels=8, sft_hidden_channels=4),
        tmp_path / "g.pth",
    )
    out = tmp_path / "sr"
    pred = _run(
        installed,
        empty,
        "predict_main",
        "images=demo",
        "input=hr",
        f"checkpoint={tmp_path / 'g.pth'}",
        f"out={out}",
        "progress=false",
        *TINY_DATA,
    )
    assert pred.returncode == 0, pred.stderr
    assert len(list(out.glob("*.png"))) == 2 and "2 written" in pred.stdout
    assert not list(empty.iterdir())  # nothing written into the folder it ran from


# What only one feature needs is an extra (pyproject.toml); without it the rest works and the feature says
# which extra to install. Simulated by making the extras' modules unimportable in a fresh interpreter.
EXTRA_MODULES = ["gradio", "openvino", "onnxruntime", "onnx", "onnxscript", "litdata", "spandrel", "tensorboard"]
BLOCK = (
    "import sys\nfor m in " + repr(EXTRA_MODULES + ["hydra_plugins.hydra_optuna_sweeper"]) + ": sys.modules[m] = None\n"
)


def _without_extras(code: str, tmp_path, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", BLOCK + code, *args], capture_output=True, text=True, timeout=300, cwd=tmp_path
    )


def test_the_package_imports_and_trains_without_any_extra(tmp_path):
    overrides = [
        *TINY_DATA,
        "stages=null",
        "report=null",
        "trainer.max_steps=2",
        "trainer.limit_val_batches=1",
        "trainer.enable_progress_bar=false",
        "model.generator.num_features=8",
        "model.generator.num_blocks=1",
        "model.discriminator.base_channels=4",
        "model.discriminator.input_size=32",
        f"paths.output_dir={tmp_path}",
    ]
    code = (
        "import importlib, pkgutil, sftgan_lit\n"
        "skip = {'sftgan_lit.data.streaming'}  # the streaming store itself: the 'stream' extra\n"
        "for mod in pkgutil.walk_packages(sftgan_lit.__path__, 'sftgan_lit.'):\n"
        "    if mod.name not in skip:\n"
        "        importlib.import_module(mod.name)\n"
        "from sftgan_lit.config import compose_config\n"
        "from sftgan_lit.train import train\n"
        f"metrics, _ = train(compose_config('train', {overrides!r}))\n"
        "print('trained', sorted(metrics)[:1])\n"
    )
    out = _without_extras(code, tmp_path)
    assert out.returncode == 0 and "trained" in out.stdout, out.stderr[-3000:]


@pytest.mark.parametrize(
    "entry,args,extra",
    [
        ("sftgan_lit.cli:app_main", ["--checkpoint", "x.pth"], "app"),
        ("sftgan_lit.cli:export_main", ["x.pth", "--format", "safetensors", "onnx-fp16"], "export"),
        ("sftgan_lit.cli:predict_main", ["images=demo", "engine=openvino", "checkpoint=x.pth"], "engines"),
        ("sftgan_lit.cli:train_main", ["data.store_format=litdata", "debug=fast_dev_run", "stages=null"], "stream"),
        ("sftgan_lit.cli:train_main", ["hparams_search=loss_weights"], "sweep"),
        ("sftgan_lit.cli:prepare_main", ["format=litdata", "input.images=.", "out=o"], "stream"),
    ],
    ids=["app", "export-onnx", "engine-openvino", "litdata-train", "sweep", "litdata-prepare"],
)
def test_a_feature_whose_extra_is_missing_exits_2_naming_the_extra(entry, args, extra, tmp_path):
    module, fn = entry.split(":")
    code = f"import sys; sys.argv = ['prog', *sys.argv[1:]]\nfrom {module} import {fn}\nsys.exit({fn}())"
    out = _without_extras(code, tmp_path, *args)
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 2, out.stderr[-3000:]
    assert f"needs the '{extra}' extra: pip install \"sftgan_lit[{extra}]\"" in lines[-1], lines[-3:]
