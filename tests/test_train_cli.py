"""train.py from the command line: DDP on CPU, multirun, the Optuna sweep, W&B offline, config errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hydra.errors import ConfigCompositionException

from helpers import ROOT, TINY, TINY_TRAIN, compose


def _run(tmp_path, *args, timeout=600, env=None):
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "train.py"),
            *[a for a in args if a.startswith("-")],
            *TINY,
            *TINY_TRAIN,
            "trainer.enable_progress_bar=false",
            *[a for a in args if not a.startswith("-")],
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
    )
    assert out.returncode == 0, out.stderr[-4000:]
    return out


def test_ddp_four_cpu_processes_end_with_identical_weights(tmp_path):
    """On SFT-RRDBNet at x2 with EMA (the SFT-Net runs under DDP in the 2 x 2 tests below)."""
    _run(
        tmp_path,
        "trainer.devices=4",
        "data.num_workers=0",
        "model=sft_rrdb",
        "scale=x2",
        "model.generator.num_grow_ch=4",
        "module.ema_decay=0.999",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    report = json.loads(next((tmp_path / "run").rglob("weight_sync.json")).read_text())
    assert report["world_size"] == 4 and report["max_abs_diff"] == 0.0
    from sftgan_lit.models import SFTRRDBNet, load_generator

    g = load_generator(tmp_path / "run" / "generator.pth")
    assert isinstance(g, SFTRRDBNet) and g.scale == 2


def test_multirun_grid_runs_each_job_in_its_own_folder(tmp_path):
    _run(
        tmp_path,
        "-m",
        "module.objective.w_gan=5e-3,1e-2",
        "module.objective.w_percep=0",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    jobs = sorted(p for p in (tmp_path / "sweep").iterdir() if p.is_dir() and p.name.isdigit())
    assert [p.name for p in jobs] == ["0", "1"]
    values = sorted(
        float(
            next(
                iter(
                    line.split("=")[1]
                    for line in (j / ".hydra" / "overrides.yaml").read_text().split("\n")
                    if "w_gan" in line
                )
            )
        )
        for j in jobs
    )
    assert values == [5e-3, 1e-2]
    assert all((j / "generator.pth").is_file() for j in jobs)


def test_optuna_sweep_two_trials(tmp_path):
    _run(
        tmp_path,
        "hparams_search=loss_weights",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.n_startup_trials=1",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )
    results = (tmp_path / "sweep" / "optimization_results.yaml").read_text()
    assert "best_params" in results and "module.objective.w_gan" in results and "best_value" in results


def test_wandb_offline_run_files_hold_the_logged_keys(tmp_path):
    _run(
        tmp_path,
        "logger=wandb",
        "logger.wandb.offline=true",
        "trainer.log_every_n_steps=1",
        f"hydra.run.dir={tmp_path / 'run'}",
        env={"WANDB_MODE": "offline", "WANDB_SILENT": "true"},
    )
    files = list((tmp_path / "run").rglob("run-*.wandb"))
    assert len(files) == 1
    data = files[0].read_bytes()
    for key in (b"train/loss_g", b"train/loss_d", b"val/psnr_y", b"val/images", b"w_gan", b"generator"):
        assert key in data, key


def _compose(overrides):
    return compose(config_name="train", overrides=overrides)


@pytest.mark.parametrize(
    "override,error,match",
    [
        ("module.objective.w_gann=1", ConfigCompositionException, "w_gann"),
        ("module.objective.w_gan=abc", ConfigCompositionException, "abc"),
        ("module.objective.gan_type=wgan", ConfigCompositionException, "wgan"),
        ("model.generator.conditioning=sfft", ConfigCompositionException, "sfft"),
        ("trainer.max_step=3", ConfigCompositionException, "max_step"),
    ],
)
def test_config_typos_fail_at_composition(override, error, match):
    with pytest.raises(error, match=match):
        _compose([override])


@pytest.mark.parametrize(
    "prog,config,override,expected",
    [
        (
            "sftgan-predict",
            "predict",
            "tile=abc",
            "tile=abc; Value 'abc' of type 'str' could not be converted to Integer",
        ),
        ("sftgan-predict", "predict", "tiel=3", "Key 'tiel' not in 'PredictSchema'"),
        ("sftgan-predict", "predict", "prior=foo", "Could not find 'prior/foo'; Available options in 'prior': "),
        ("sftgan-predict", "predict", "batch_size=[1", "no viable alternative at input '[1'"),
        ("sftgan-eval", "eval", "num_crops=x", "num_crops=x; Value 'x'"),
        ("sftgan-eval", "eval", "lpips_net=[a", "no viable alternative"),
        ("sftgan-train", "train", "trainer.max_steps=x", "trainer.max_steps=x; Value 'x'"),
        ("sftgan-train", "train", "module.objective.w_gan=abc", "module.objective.w_gan=abc"),
        ("sftgan-train", "train", "data=foo", "Could not find 'data/foo'"),
        ("sftgan-prepare", "prepare", "prior=bar", "Could not find 'prior/bar'"),
    ],
)
def test_overrides_that_do_not_compose_exit_2_with_one_line(capsys, prog, config, override, expected):
    """Hydra itself prints a block and exits 1; the CLIs check composition first."""
    from sftgan_lit.cli import composition_check

    with pytest.raises(SystemExit) as exit_info:
        composition_check(prog, config, [override])
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: ") and expected in lines[0], lines
    assert "Config search path" not in lines[0]


def test_composition_check_leaves_valid_and_hydra_option_command_lines_to_hydra(capsys):
    from sftgan_lit.cli import composition_check

    composition_check("sftgan-predict", "predict", ["tile=128", "prior=uniform"])  # composes: returns
    composition_check("sftgan-train", "train", ["-m", "module.objective.w_gan=1e-3,abc"])  # a sweep: Hydra's business
    composition_check("sftgan-train", "train", ["hydra.searchpath=[file:///nowhere]", "experiment=mine"])
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    "override,expected",
    [
        ("trainer.max_steps=-5", "trainer.max_steps=-5: must be an integer >= -1"),
        ("trainer.devices=0", "trainer.devices=0: must be a count >= 1"),
        ("trainer.limit_val_batches=1.5", "trainer.limit_val_batches=1.5: must be a number of batches"),
        ("trainer.val_check_interval=0", "trainer.val_check_interval=0: must be null, a number of steps"),
    ],
)
def test_trainer_values_are_checked_before_any_stage_trains(capsys, override, expected):
    """In process (the CLI's error path without a process start; the subprocess cases above cover the rest)."""
    from sftgan_lit.cli import _setup_errors_exit
    from sftgan_lit.train import train

    cfg = compose([*TINY, *TINY_TRAIN, "stages=null", override])
    with pytest.raises(SystemExit) as exit_info:
        _setup_errors_exit("sftgan-train", train, cfg)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], lines


def test_tensorboard_and_csv_get_the_same_scalars_and_images(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _run(tmp_path, "logger=many", "trainer.log_every_n_steps=1", f"hydra.run.dir={tmp_path / 'run'}")
    events = EventAccumulator(str(next((tmp_path / "run" / "tensorboard").rglob("events.out.tfevents.*")).parent))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss_g", "train/loss_d", "val/psnr_y", "val/ssim_y"} <= scalars
    assert "val/images" in events.Tags()["images"]
    header = next((tmp_path / "run" / "csv").rglob("metrics.csv")).read_text().split("\n")[0].split(",")
    assert {"train/loss_g", "train/loss_d", "val/psnr_y", "val/ssim_y"} <= set(header)
    assert list((tmp_path / "run" / "csv").rglob("images/val_step*.png"))


@pytest.mark.parametrize(
    "override,expected",
    [
        ("data.batch_size=-1", "data.batch_size=-1: must be an integer >= 1"),
        ("data.crop_size=7", "data.crop_size=7: must be a multiple of the scale 4"),
        ("model.generator.num_features=abc", "model.generator.num_features=abc: must be an integer >= 1"),
        # the paper's recipe leaves its data to the user: the first folder it needs is named
        ("experiment=sftgan", "data.train.background.images is not set: give the background images' folder"),
        ("prior=ade_outdoor", "prior.weights"),
        ("trainer.devices=[0,1]", "trainer: `devices` selected with `CPUAccelerator` should be an int > 0"),
    ],
)
def test_configuration_errors_exit_2_with_one_line(tmp_path, override, expected):
    tiny = [] if override.startswith("experiment=") else [*TINY, *TINY_TRAIN]  # the OST layout has no demo keys
    cmd = [sys.executable, str(ROOT / "train.py"), *tiny, override]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-3000:]
    lines = [line for line in out.stderr.splitlines() if line.startswith("sftgan-train:")]
    assert len(lines) == 1 and expected in lines[0], out.stderr[-3000:]
    assert "Traceback" not in out.stderr


def test_prepare_configuration_error_exits_2_with_one_line(tmp_path):
    import numpy as np
    from PIL import Image

    (tmp_path / "images").mkdir()
    Image.fromarray(np.zeros((96, 96, 3), np.uint8)).save(tmp_path / "images" / "a.png")
    code = "from sftgan_lit.cli import prepare_main; prepare_main()"
    cmd = [
        sys.executable,
        "-c",
        code,
        "prior=ade_outdoor",
        f"input.images={tmp_path / 'images'}",
        f"out={tmp_path / 'store'}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-3000:]
    assert (
        "Traceback" not in out.stderr and "sftgan-prepare: prior=ade_outdoor needs the segmenter weights" in out.stderr
    )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_by_two(tmp_path, run_dir, overrides) -> None:
    """One training job as 2 nodes x 2 processes on this machine: two launchers (node ranks 0 and 1) that
    rendezvous on 127.0.0.1 over gloo; node ``r`` writes to ``run_dir / f"node{r}"``."""
    port = _free_port()
    nodes = []
    for rank in (0, 1):
        node = [f"hydra.run.dir={run_dir / f'node{rank}'}", f"paths.cache_dir={tmp_path / f'cache{rank}'}"]
        env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "NODE_RANK": str(rank)}
        nodes.append(
            subprocess.Popen(
                [sys.executable, str(ROOT / "train.py"), *overrides, *node],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for proc in nodes:
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-12000:]


@pytest.mark.slow
def test_two_nodes_of_two_processes_train_as_one_job(tmp_path):
    """2 nodes x 2 processes on this machine (two launchers, node ranks 0 and 1, rendezvous on 127.0.0.1,
    gloo): training finishes, all 4 ranks hold identical weights, and the validation PSNR-Y reduced over the
    ranks equals a 1-process computation with the exported generator on the same validation set."""
    import csv

    import torch
    from hydra.utils import instantiate

    from sftgan_lit.metrics import psnr_y
    from sftgan_lit.models import load_generator

    common = [
        *TINY,
        *TINY_TRAIN,
        "trainer.devices=2",
        "trainer.num_nodes=2",
        "data.num_workers=0",
        "data.demo.num_val=4",  # one validation image per rank: no padding by the distributed sampler
        "data.val_batch_size=1",
        "trainer.limit_val_batches=1.0",
    ]
    _two_by_two(tmp_path, tmp_path, common)
    report = json.loads(next((tmp_path / "node0").rglob("weight_sync.json")).read_text())
    assert report["world_size"] == 4 and report["max_abs_diff"] == 0.0
    rows = list(csv.DictReader(next((tmp_path / "node0").rglob("metrics.csv")).open()))
    logged = [float(r["val/psnr_y"]) for r in rows if r.get("val/psnr_y")][-1]

    cfg = compose([*common, f"paths.cache_dir={tmp_path / 'cache0'}", f"paths.output_dir={tmp_path / 'ref'}"])
    prior = instantiate(cfg.prior)
    dm = instantiate(cfg.data, prior=prior)
    dm.prepare_data()
    dm.setup()
    g = load_generator(tmp_path / "node0" / "generator.pth")
    scores = []
    with torch.no_grad():
        for batch in dm.val_dataloader():
            batch = dm.on_after_batch_transfer(batch, 0)
            scores += psnr_y(g(batch["lr"], batch["prior"]).float().clamp(0, 1), batch["hr"].float()).tolist()
    assert len(scores) == 4 and abs(logged - sum(scores) / len(scores)) < 1e-4, (logged, scores)


@pytest.mark.slow
def test_a_two_by_two_job_resumed_mid_epoch_equals_the_uninterrupted_one(tmp_path):
    """Stopped at a mid-epoch resume point and resumed, a 2 nodes x 2 processes job ends with the same weights,
    bit for bit, as the same job run through (each rank's share of each epoch and every sample's randomness
    follow from (seed, epoch, position); the loader's position is in the checkpoint)."""
    import torch

    common = [
        *TINY,
        "stages=null",
        "report=null",
        "trainer.enable_progress_bar=false",
        "trainer.devices=2",
        "trainer.num_nodes=2",
        "data.num_workers=0",
        "data.epoch_length=16",  # 4 samples per rank per epoch: 2 iterations (4 optimizer steps)
        "trainer.limit_val_batches=0",
        "callbacks.resume_point.every_n_train_steps=6",  # iteration 3: the middle of the second epoch
    ]
    _two_by_two(tmp_path, tmp_path / "full", [*common, "trainer.max_steps=12"])
    _two_by_two(tmp_path, tmp_path / "part", [*common, "trainer.max_steps=6"])
    point = tmp_path / "part" / "node0" / "checkpoints" / "resume.ckpt"
    state = torch.load(point, weights_only=True)["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
    assert (state["epoch"], state["batches"], state["num_replicas"]) == (1, 1, 4)
    _two_by_two(tmp_path, tmp_path / "part", [*common, "trainer.max_steps=12", f"+ckpt_path={point}"])
    from sftgan_lit.models import load_generator

    full = load_generator(tmp_path / "full" / "node0" / "generator.pth").state_dict()
    resumed = load_generator(tmp_path / "part" / "node0" / "generator.pth").state_dict()
    assert full.keys() == resumed.keys() and all(torch.equal(v, resumed[k]) for k, v in full.items())
