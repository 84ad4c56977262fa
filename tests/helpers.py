"""Helpers shared by the tests (one module; test modules import from here, never from each other).

Tiny config overrides, the released checkpoint layouts (from the shared notes or the fixture made from
them), random state dicts in those layouts, small image sets written to disk, a tiny segmenter file,
and composing the package's configs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from sftgan_lit.config import compose_config
from sftgan_lit.models import OutdoorSceneSeg, SFTGenerator
from sftgan_lit.priors import DenseProbs

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

# A small demo set and tiny networks: every config group still composes as in a real run.
TINY_DATA = [
    "data.demo.size=128",
    "data.demo.num_train=6",
    "data.demo.num_val=2",
    "data.demo.num_test=2",
    "data.demo.num_background=2",
    "data.batch_size=2",
    "data.val_batch_size=2",
    "data.num_workers=0",
    "data.crop_size=32",
]
TINY_MODEL = [
    "model.generator.num_features=8",
    "model.generator.num_blocks=2",
    "model.generator.cond_channels=4",
    "model.generator.cond_hidden_channels=8",
    "model.generator.sft_hidden_channels=4",
    "model.discriminator.base_channels=4",
    "model.discriminator.input_size=32",
]
# one stage (the demo's GAN stage from scratch) and no report: the staged recipe has tests of its own
TINY_TRAIN = [
    "stages=null",
    "report=null",
    "trainer.max_steps=2",
    "trainer.limit_train_batches=1",
    "trainer.limit_val_batches=1",
    "trainer.enable_progress_bar=false",
]
TINY = TINY_DATA + TINY_MODEL
# predict/eval on torch fp32 whatever the CPU (engine=auto / precision=auto depend on it): exact comparisons
EXACT_INFERENCE = ["engine=torch", "precision=fp32"]


FIXTURE_LAYOUTS = TESTS / "fixtures" / "released_layouts.json"


def notes_dir() -> Path | None:
    """The layout notes folder: ``$SFTGAN_LAYOUTS``, else ``shared/original_checkpoints`` beside the repo."""
    if "SFTGAN_LAYOUTS" in os.environ:
        path = Path(os.environ["SFTGAN_LAYOUTS"])
        if not path.is_dir():
            raise FileNotFoundError(f"SFTGAN_LAYOUTS={path} is not a folder; unset it or point it at the layout notes")
        return path
    path = TESTS.parent.parent / "shared" / "original_checkpoints"
    return path if path.is_dir() else None


def _note(name: str) -> dict:
    # The notes when present; otherwise the fixture generated from them (tests/fixtures/make_layout_fixture.py),
    # so a clone without shared/ still checks the released layouts.
    folder = notes_dir()
    if folder is not None:
        return json.loads((folder / f"{name}.json").read_text())
    return json.loads(FIXTURE_LAYOUTS.read_text())[name]


def layout(name: str) -> dict[str, list[int]]:
    """Key -> shape of a released checkpoint, in the checkpoint's order."""
    return _note(name)["keys"]


def layout_parameters(name: str) -> int:
    """Total parameter count recorded for a released checkpoint."""
    return _note(name)["parameters"]


def random_state_dict(name: str, seed: int = 0, std: float = 0.05) -> dict[str, torch.Tensor]:
    """A state dict with the released layout ``name`` and random values (BN statistics plausible)."""
    gen = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in layout(name).items():
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(1000, dtype=torch.long)
        elif key.endswith("running_var"):
            sd[key] = torch.rand(shape, generator=gen) + 0.5
        elif key.endswith("running_mean"):
            sd[key] = torch.randn(shape, generator=gen) * 0.1
        elif ".weight" in key and len(shape) == 1:  # BN scale
            sd[key] = torch.rand(shape, generator=gen) * 0.5 + 0.75
        else:
            sd[key] = torch.randn(shape, generator=gen) * std
    return sd


def compose(overrides=(), config_name: str = "train"):
    """``conf/<config_name>.yaml`` composed with ``overrides`` (schemas registered, as the CLI does)."""
    return compose_config(config_name, list(overrides))


def tiny_generator(seed: int = 0, blocks: int = 3, **kw) -> SFTGenerator:
    """A small SFT-Net whose weights are all random (not the near-identity init of the conditioning), so
    the prior visibly changes the output."""
    torch.manual_seed(seed)
    g = SFTGenerator(
        num_features=8, num_blocks=blocks, cond_channels=4, cond_hidden_channels=8, sft_hidden_channels=4, **kw
    )
    return randomize_(g)


@torch.no_grad()
def randomize_(net: torch.nn.Module, vector_std: float = 0.05) -> torch.nn.Module:
    """Every weight of ``net`` random from the current torch seed, at a variance-preserving scale (outputs stay
    O(1), so 1e-4 means something); biases and other vectors (PReLU slopes) at ``vector_std``. Eval mode."""
    for p in net.parameters():
        p.copy_(torch.randn_like(p) * (p[0].numel() ** -0.5 if p.dim() > 1 else vector_std))
    return net.eval()


def tiny_demo_datamodule(store_root, **kwargs):
    """A prepared and set-up ``SFTGANDataModule`` on a tiny demo set (4 training scenes of 64 px, labels prior,
    32 px crops); ``kwargs`` override its arguments."""
    from sftgan_lit.data import SFTGANDataModule
    from sftgan_lit.priors import LabelPrior

    args = {
        "train": {"layout": "demo"},
        "demo": {"size": 64, "num_train": 4, "num_val": 1, "num_test": 1, "num_background": 2},
        "store_root": str(store_root),
        "crop_size": 32,
        "persistent_workers": False,
    }
    dm = SFTGANDataModule(LabelPrior(), **{**args, **kwargs})
    dm.prepare_data()
    dm.setup()
    return dm


def tiny_segmenter_file(path, num_classes=8, seed=0):
    """A small random ``OutdoorSceneSeg`` state dict at ``path``; returns the ``prior.arch`` that fits it."""
    torch.manual_seed(seed)
    torch.save(OutdoorSceneSeg(num_classes=num_classes, layers=(1, 1, 1, 1), base_width=4).state_dict(), path)
    return {"layers": [1, 1, 1, 1], "base_width": 4}


# ---------------------------------------------------------------------------------------------------
# Small image sets written to disk for the data tests (independent of the demo generator)
# ---------------------------------------------------------------------------------------------------

# One colour per class: a block's class can be read back from its HR colour.
PALETTE = np.array(
    [
        [20, 20, 20],
        [40, 200, 240],
        [30, 90, 160],
        [90, 200, 60],
        [150, 60, 240],
        [200, 80, 40],
        [60, 140, 30],
        [240, 200, 120],
    ],
    np.uint8,
)


def block_scene(h: int, w: int, block: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels constant on ``block``-sized squares, image = the class colour: alignment is checkable per pixel."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, len(PALETTE), (-(-h // block), -(-w // block)))
    labels = np.kron(grid, np.ones((block, block), np.int64))[:h, :w].astype(np.uint8)
    return PALETTE[labels], labels


def write_folder(root: Path, n: int, h: int = 64, w: int = 80, block: int = 16, prefix: str = "") -> tuple[Path, Path]:
    images, labels = root / "images", root / "labels"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img, lab = block_scene(h, w, block, seed=i + 100 * len(prefix))
        Image.fromarray(img).save(images / f"{prefix}{i:03d}.png")
        Image.fromarray(lab).save(labels / f"{prefix}{i:03d}.png")
    return images, labels


class SigtermAt:
    """A callback (``+callbacks.kill._target_=helpers.SigtermAt``) that sends this process SIGTERM at the end
    of optimizer step ``step``, as a cluster preempting the job would."""

    def __new__(cls, step: int):
        import signal

        import lightning as L

        class _Kill(L.Callback):
            def on_train_batch_end(self, trainer, *args) -> None:
                if trainer.global_step == step:
                    os.kill(os.getpid(), signal.SIGTERM)

        return _Kill()


CLASSES = ["background", "sky", "water", "grass", "mountain", "building", "plant", "animal"]
COLORS = [[0, 0, 0]] * 8


def add_stray_entries(folder: Path) -> tuple[str, ...]:
    """Put into ``folder`` what a folder of images also holds: another file type (``notes.txt``), a subfolder
    (``sub``) and a broken link (``gone.png``); returns their names."""
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub").mkdir()
    (folder / "gone.png").symlink_to(folder.parent / "missing.png")
    return "notes.txt", "sub", "gone.png"


def random_prior(h: int, w: int, classes: int = 8, seed: int = 0) -> DenseProbs:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(1, classes, h // 4 + 1, w // 4 + 1, generator=gen) * 3
    probs = torch.nn.functional.interpolate(logits, size=(4 * h, 4 * w), mode="bilinear").softmax(1)
    return DenseProbs(probs[0], 4)


def psnr_y_np(sr: np.ndarray, hr: np.ndarray, border: int = 4) -> float:
    """PSNR on the BT.601 luma of 8-bit RGB, border cropped: the literature's convention, in numpy."""

    def y(img):
        img = img.astype(np.float64)
        return 16.0 + (65.481 * img[..., 0] + 128.553 * img[..., 1] + 24.966 * img[..., 2]) / 255.0

    a, b = y(sr)[border:-border, border:-border], y(hr)[border:-border, border:-border]
    return float(10 * np.log10(255.0**2 / np.mean((a - b) ** 2)))


def compose_exact(name: str, overrides: list[str]):
    """``conf/<name>.yaml`` composed for exact inference comparisons (torch fp32 whatever the CPU)."""
    return compose(config_name=name, overrides=[*EXACT_INFERENCE, *overrides])


def predict_cfg(tmp_path: Path, ckpt: Path, *overrides: str):
    return compose_exact(
        "predict", [f"checkpoint={ckpt}", f"out={tmp_path / 'out'}", "progress=false", *TINY_DATA, *overrides]
    )


def run_script(tmp_path, script, *args):
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args, *TINY_DATA],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HYDRA_FULL_ERROR": "0"},
    )


# predict/eval/prepare under a disk that fills up after the first output
FULL_DISK = """
import errno, os, sys
real, calls = os.fsync, []
def fsync(fd):  # the disk fills up after the first output
    calls.append(fd)
    if len(calls) > 1:
        raise OSError(errno.ENOSPC, "No space left on device")
    real(fd)
os.fsync = fsync
from sftgan_lit.cli import {main}
sys.exit({main}())
"""
