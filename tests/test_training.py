"""SFTGANModule: G/D separation, param groups and freezing, schedules, non-finite handling, GAN types,
experiments, precision, resume and export (tiny models, CPU)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from sftgan_lit import load_generator
from sftgan_lit.lit import NonFiniteLossError, SFTGANModule
from sftgan_lit.losses import SFTGANObjective
from sftgan_lit.priors import LabelPrior
from sftgan_lit.train import train

from helpers import TINY, TINY_TRAIN, compose, random_state_dict


def _cfg(tmp_path, overrides, tiny_train=True):
    return compose(
        config_name="train",
        overrides=[
            *TINY,
            *(TINY_TRAIN if tiny_train else []),
            f"paths.output_dir={tmp_path}",
            "logger=csv",
            *overrides,
        ],
    )


def _record_updates(monkeypatch):
    """Snapshot both networks around every optimiser update."""
    events = []
    original = SFTGANModule._update

    def spy(self, opt, params, terms, frozen=()):
        net = "G" if opt.optimizer is self.trainer.optimizers[0] else "D"
        before = {
            k: v.detach().clone()
            for k, v in self.state_dict().items()
            if k.startswith(("generator.", "discriminator."))
        }
        skipped = original(self, opt, params, terms, frozen)  # 0-d tensor on the device: 1 = skipped
        after = {
            k: v.detach().clone()
            for k, v in self.state_dict().items()
            if k.startswith(("generator.", "discriminator."))
        }
        events.append((net, int(self.iteration), not skipped, before, after, [g["lr"] for g in opt.param_groups]))
        return skipped

    monkeypatch.setattr(SFTGANModule, "_update", spy)
    return events


def _changed(before, after, prefix, names=None):
    return {
        k
        for k in before
        if k.startswith(prefix) and (names is None or k in names) and not torch.equal(before[k], after[k])
    }


def test_g_step_leaves_d_unchanged_and_d_step_leaves_g_unchanged(tmp_path, monkeypatch):
    events = _record_updates(monkeypatch)
    train(_cfg(tmp_path, ["trainer.max_steps=4", "trainer.limit_train_batches=2"]))
    assert [e[0] for e in events] == ["G", "D", "G", "D"]
    for net, _, stepped, before, after, _ in events:
        assert stepped
        # D's BatchNorm running stats move in its own forward passes; parameters must not
        d_params = {
            k for k in before if k.startswith("discriminator.") and "running" not in k and "num_batches" not in k
        }
        if net == "G":
            assert _changed(before, after, "generator.") and not _changed(before, after, "discriminator.", d_params)
        else:
            assert _changed(before, after, "discriminator.", d_params) and not _changed(before, after, "generator.")


def test_conditioning_runs_at_5x_and_the_trunk_is_frozen_until_its_iteration(tmp_path, monkeypatch):
    events = _record_updates(monkeypatch)
    groups = (
        "[{name: conditioning, part: conditioning, lr_mult: 5.0, freeze_until: 0},"
        " {name: trunk, part: trunk, lr_mult: 1.0, freeze_until: 2}]"
    )
    overrides = [
        "trainer.max_steps=6",
        "trainer.limit_train_batches=3",
        "module.optimizer_g.lr=1e-3",
        f"module.param_groups={groups}",
        "module.ema_decay=null",
        "module.scheduler={_target_: torch.optim.lr_scheduler.MultiStepLR, _partial_: true, milestones: [2], gamma: 0.5}",
    ]
    _, objects = train(_cfg(tmp_path, overrides))
    module = objects["module"]
    names = {g["name"]: {"generator." + n for n in g["names"]} for g in module.groups}
    assert any("CondNet" in n for n in names["conditioning"]) and any("SFT_scale" in n for n in names["conditioning"])
    assert "generator.conv0.weight" in names["trunk"]
    g_events = [e for e in events if e[0] == "G"]
    assert [e[1] for e in g_events] == [0, 1, 2]
    for _, it, _, before, after, lrs in g_events:
        assert _changed(before, after, "generator.", names["conditioning"])
        assert bool(_changed(before, after, "generator.", names["trunk"])) == (it >= 2), it
        # 5x for conditioning; the MultiStepLR (milestone 2) is stepped before each iteration, as the
        # original's update_learning_rate(): the 2nd iteration (it = 1) already runs at half the rate
        expected = 1e-3 * (0.5 if it >= 1 else 1.0)
        assert lrs == pytest.approx([5 * expected, expected])


def test_d_init_iters_and_d_steps_per_g(tmp_path, monkeypatch):
    events = _record_updates(monkeypatch)
    train(
        _cfg(
            tmp_path,
            ["trainer.max_steps=4", "trainer.limit_train_batches=3", "module.d_init_iters=1", "module.d_steps_per_g=2"],
        )
    )
    # iteration 0: D only (warm-up); 1: D only (1 % 2); 2: G + D
    assert [(e[0], e[1]) for e in events] == [("D", 0), ("D", 1), ("G", 2), ("D", 2)]


class NaNAt(torch.nn.Module):
    """Wraps a generator; outputs NaN on the listed forward calls (counting training calls only)."""

    def __init__(self, generator, bad_calls):
        super().__init__()
        self.inner, self.bad, self.calls = generator, set(bad_calls), 0

    # what SFTGANModule asks of a generator
    scale = property(lambda self: self.inner.scale)
    uses_prior = property(lambda self: self.inner.uses_prior)
    config = property(lambda self: self.inner.config)

    def conditioning_modules(self):
        return self.inner.conditioning_modules()

    def forward(self, lr, prior):
        out = self.inner(lr, prior)
        if self.training:
            self.calls += 1
            if self.calls in self.bad or "all" in self.bad:
                out = out * float("nan")
        return out


def _tiny_module(bad_calls, max_nonfinite=3):
    from sftgan_lit.models import ACDDiscriminator, SFTGenerator

    g = SFTGenerator(num_features=8, num_blocks=1, cond_channels=4, cond_hidden_channels=8, sft_hidden_channels=4)
    d = ACDDiscriminator(base_channels=4, input_size=32)
    objective = SFTGANObjective(w_pix=1.0, w_percep=0)
    return SFTGANModule(NaNAt(g, bad_calls), d, objective, LabelPrior(), max_nonfinite=max_nonfinite, ema_decay=None)


def _fit(module, tmp_path, steps, **trainer_args):
    import lightning as L

    from sftgan_lit.data import SFTGANDataModule
    from sftgan_lit.priors import LabelPrior

    dm = SFTGANDataModule(
        LabelPrior(),
        train={"layout": "demo"},
        demo={"size": 128, "num_train": 6, "num_val": 2, "num_test": 2, "num_background": 2},
        num_workers=0,
        batch_size=2,
        crop_size=32,
    )
    trainer = L.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
        limit_val_batches=0,
        **trainer_args,
    )
    trainer.fit(module, datamodule=dm)
    return trainer


def test_a_nan_update_is_skipped_and_counted(tmp_path):
    module = _tiny_module(bad_calls={2})
    _fit(module, tmp_path, steps=6)
    # the NaN SR of iteration 1 spoils its G update and, through sr.detach(), its D update: both skipped
    assert int(module.nonfinite_total) == 2
    assert int(module.iteration) == 4  # and training went on: 6 steps = 2 + 0 + 2 + 2 updates
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_a_finite_loss_with_an_inf_gradient_is_skipped(tmp_path):
    module = _tiny_module(bad_calls=set())
    calls = []

    def poison(grad):  # the first generator update gets one inf in one gradient; its loss stays finite
        calls.append(1)
        if len(calls) == 1:
            grad = grad.clone()
            grad.view(-1)[0] = float("inf")
        return grad

    next(module.generator.parameters()).register_hook(poison)
    _fit(module, tmp_path, steps=4)
    assert int(module.nonfinite_total) == 1
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_consecutive_nans_stop_the_run_naming_step_and_terms(tmp_path):
    module = _tiny_module(bad_calls={"all"}, max_nonfinite=3)
    with pytest.raises(
        NonFiniteLossError,
        match=r"3 consecutive non-finite updates; last at iteration 1 \(global step 0\) with loss terms pix=nan",
    ):
        _fit(module, tmp_path, steps=20)
    assert all(torch.isfinite(p).all() for p in module.generator.parameters())


@pytest.mark.parametrize("gan_type", ["vanilla", "lsgan", "ragan", "wgan_gp", "hinge"])
def test_every_gan_type_trains(gan_type, tmp_path):
    metrics, _ = train(
        _cfg(tmp_path, ["stages=null", f"module.objective.gan_type={gan_type}", "debug=fast_dev_run"], tiny_train=False)
    )
    assert np.isfinite(metrics["train/loss_g"]) and np.isfinite(metrics["train/loss_d"])
    if gan_type == "wgan_gp":
        assert "train/d_gp" in metrics


def test_experiment_sftgan_fast_dev_run(tmp_path):
    """The paper's recipe at full network size, from a (generated) SRGAN checkpoint and a random VGG."""
    torch.save(random_state_dict("SRGAN_bicx4_noBN_DIV2K", seed=1), tmp_path / "srgan.pth")
    cfg = compose(
        config_name="train",
        overrides=[
            "experiment=sftgan",
            "debug=fast_dev_run",
            "data=demo",
            "prior=labels",
            f"init_from_srgan={tmp_path / 'srgan.pth'}",
            "module.objective.perceptual.random_weights=true",
            "module.objective.perceptual.layer=8",
            f"paths.output_dir={tmp_path}",
            *[o for o in TINY if o.startswith("data.")],
            "model.discriminator.input_size=32",
        ],
    )
    metrics, objects = train(cfg)
    assert objects["module"].objective.perceptual is not None and "train/g_percep" in metrics
    assert {g["name"]: g["freeze_until"] for g in objects["module"].groups} == {"conditioning": 0, "trunk": 20000}


def test_experiment_srresnet_pretrain_trains_g_alone(tmp_path):
    metrics, objects = train(_cfg(tmp_path, ["experiment=srresnet_pretrain"]))
    assert objects["generator"].config.conditioning == "none"
    assert "train/loss_d" not in metrics and np.isfinite(metrics["train/g_pix"])
    assert objects["trainer"].global_step == 2  # G steps only


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_mixed_precision_on_cpu(precision, tmp_path):
    metrics, _ = train(_cfg(tmp_path, [f"trainer.precision={precision}"]))
    assert np.isfinite(metrics["train/loss_g"]) and np.isfinite(metrics["val/psnr_y"])


def _losses(run_dir):
    rows = []
    for path in sorted(run_dir.rglob("metrics.csv")):  # a resumed run logs to a new version folder
        with open(path) as f:
            rows += [r for r in csv.DictReader(f) if r.get("train/loss_g")]
    return [(float(r["train/iteration"]), float(r["train/loss_g"]), float(r["train/loss_d"])) for r in rows]


BACKBONES = {
    "sftnet": [],
    # the other backbones and scales, with the EMA their exports are made from
    "rrdb_x2": ["model=sft_rrdb", "scale=x2", "model.generator.num_grow_ch=4", "module.ema_decay=0.999"],
    "compact_x3": [
        "model=sft_compact",
        "scale=x3",
        "data.crop_size=48",
        "model.discriminator.input_size=48",
        "module.ema_decay=0.999",
    ],
}


@pytest.mark.parametrize("backbone", list(BACKBONES))
def test_resume_continues_the_same_run(tmp_path, backbone):
    common = [
        "trainer.limit_train_batches=1.0",
        "data.epoch_length=4",
        "trainer.log_every_n_steps=1",
        "data.num_workers=0",
        *BACKBONES[backbone],
    ]
    full_dir, part_dir = tmp_path / "full", tmp_path / "part"
    _, full = train(_cfg(full_dir, [*common, "trainer.max_steps=8"]))
    train(_cfg(part_dir, [*common, "trainer.max_steps=4"]))
    last = part_dir / "checkpoints" / "last.ckpt"
    _, resumed = train(_cfg(part_dir, [*common, "trainer.max_steps=8", f"+ckpt_path={last}"]))
    for (k, a), b in zip(full["module"].state_dict().items(), resumed["module"].state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    assert _losses(full_dir) == _losses(part_dir)


MID_EPOCH = [
    "trainer.limit_train_batches=1.0",
    "data.epoch_length=16",  # 8 iterations (16 optimizer steps) per epoch
    "trainer.log_every_n_steps=1",
    "data.num_workers=0",
]


def _assert_same_run(full_dir, full, part_dir, resumed):
    for (k, a), b in zip(full["module"].state_dict().items(), resumed["module"].state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)
    assert _losses(full_dir) == _losses(part_dir)  # the loss curve too, step by step


@pytest.mark.parametrize(
    "degradation",
    [[], ["degradation=realesrgan", "data.degradation.pool_size=6"]],
    ids=["bicubic", "realesrgan"],
)
def test_a_mid_epoch_resume_point_continues_the_run_exactly(tmp_path, degradation):
    """callbacks.resume_point saves every k steps, mid-epoch included; the loader's position is in it, and every
    sample's randomness follows from (seed, epoch, position): the resumed run is the uninterrupted one. With
    Real-ESRGAN's degradations too: each sample's degradation follows from its draw, and the training-pair pool
    (3 batches of 2) is in the checkpoint."""
    full_dir, part_dir = tmp_path / "full", tmp_path / "part"
    _, full = train(_cfg(full_dir, [*MID_EPOCH, *degradation, "trainer.max_steps=24"]))
    train(
        _cfg(
            part_dir,
            [*MID_EPOCH, *degradation, "trainer.max_steps=10", "callbacks.resume_point.every_n_train_steps=10"],
        )
    )
    point = part_dir / "checkpoints" / "resume.ckpt"
    saved = torch.load(point, weights_only=True)
    state = saved["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
    assert state["epoch"] == 0 and state["batches"] == 5  # 10 steps = 5 iterations into the 8 of epoch 0
    if degradation:  # the pool is full after 3 batches: 6 samples held in the checkpoint
        assert saved["SFTGANDataModule"]["pool"]["filled"] == 6
    _, resumed = train(_cfg(part_dir, [*MID_EPOCH, *degradation, "trainer.max_steps=24", f"+ckpt_path={point}"]))
    _assert_same_run(full_dir, full, part_dir, resumed)


def test_a_streamed_run_resumed_mid_epoch_equals_the_uninterrupted_one(tmp_path):
    """data.store_format=litdata: LitData's loader state is in the resume point; with two workers and its own
    shuffle, the resumed run trains on the same batches as the uninterrupted one."""
    streamed = [
        "trainer.limit_train_batches=1.0",
        "trainer.log_every_n_steps=1",
        "data.store_format=litdata",
        "data.epoch_length=null",  # a stream's epoch is one pass: 6 scenes, 3 iterations (6 steps)
        "data.num_workers=2",
        "data.persistent_workers=false",
    ]
    full_dir, part_dir = tmp_path / "full", tmp_path / "part"
    _, full = train(_cfg(full_dir, [*streamed, "trainer.max_steps=18"]))
    train(_cfg(part_dir, [*streamed, "trainer.max_steps=8", "callbacks.resume_point.every_n_train_steps=8"]))
    point = part_dir / "checkpoints" / "resume.ckpt"
    state = torch.load(point, weights_only=True)["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]
    assert state["current_epoch"] == 2 and state["num_samples_yielded"] == 2  # one batch into LitData's epoch 2
    _, resumed = train(_cfg(part_dir, [*streamed, "trainer.max_steps=18", f"+ckpt_path={point}"]))
    _assert_same_run(full_dir, full, part_dir, resumed)


def test_sigterm_saves_a_checkpoint_that_resumes_exactly(tmp_path):
    full_dir, part_dir = tmp_path / "full", tmp_path / "part"
    _, full = train(_cfg(full_dir, [*MID_EPOCH, "trainer.max_steps=24"]))
    kill = ["+callbacks.kill._target_=helpers.SigtermAt", "+callbacks.kill.step=14"]  # a cluster preempting the job
    with pytest.raises(SystemExit):  # Lightning's SIGTERMException, after the batch in progress
        train(_cfg(part_dir, [*MID_EPOCH, "trainer.max_steps=24", *kill]))
    point = part_dir / "checkpoints" / "preempted.ckpt"
    assert torch.load(point, weights_only=True)["global_step"] == 14
    _, resumed = train(_cfg(part_dir, [*MID_EPOCH, "trainer.max_steps=24", f"+ckpt_path={point}"]))
    _assert_same_run(full_dir, full, part_dir, resumed)


def test_export_is_the_ema_generator_and_loads_with_load_generator(tmp_path):
    _, objects = train(_cfg(tmp_path, ["module.ema_decay=0.999"]))
    g = load_generator(objects["export"], channels_last=False)
    ema = objects["module"].ema.module
    for (k, a), b in zip(ema.state_dict().items(), g.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)
    ckpt = load_generator(
        tmp_path / "checkpoints" / "last.ckpt", channels_last=False
    )  # Lightning checkpoint, EMA preferred
    torch.testing.assert_close(ckpt.conv0.weight, ema.conv0.weight)


@pytest.mark.parametrize("conditioning", ["sft", "concat", "none"])
def test_param_groups_take_the_layers_the_generator_reports(conditioning):
    from sftgan_lit.models import ACDDiscriminator, SFTGenerator

    g = SFTGenerator(
        num_features=8,
        num_blocks=2,
        cond_channels=4,
        cond_hidden_channels=8,
        sft_hidden_channels=4,
        conditioning=conditioning,
        num_cond_blocks=1,
    )
    groups = [{"name": "conditioning", "part": "conditioning", "lr_mult": 5.0}, {"name": "trunk", "part": "trunk"}]
    module = SFTGANModule(
        g,
        ACDDiscriminator(base_channels=4, input_size=32),
        SFTGANObjective(w_pix=1, w_percep=0),
        LabelPrior(),
        param_groups=groups,
        ema_decay=None,
        lpips_net=None,
    )
    reported = {id(p) for m in g.conditioning_modules() for p in m.parameters()}
    by_name = {gr["name"]: {id(p) for p in gr["params"]} for gr in module.groups}
    assert by_name.get("conditioning", set()) == reported
    assert by_name["trunk"] == {id(p) for p in g.parameters()} - reported
    with pytest.raises(ValueError, match="part='regex'"):
        SFTGANModule(
            g,
            ACDDiscriminator(base_channels=4, input_size=32),
            SFTGANObjective(w_pix=1, w_percep=0),
            LabelPrior(),
            param_groups=[{"name": "x", "part": "regex"}],
            ema_decay=None,
            lpips_net=None,
        )


def test_resume_refuses_a_checkpoint_that_carries_code(tmp_path):
    """Resuming goes through the same weights_only load as every other checkpoint read: the payload never runs."""
    from sftgan_lit.state_dict import CheckpointError

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (marker.touch, ())

    bad = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Payload()}, bad)
    with pytest.raises(CheckpointError, match="evil.ckpt: refused to load"):
        train(_cfg(tmp_path / "run", [f"+ckpt_path={bad}"]))
    assert not marker.exists()


def test_resume_with_another_model_config_says_which_network_differs(tmp_path):
    common = ["trainer.limit_train_batches=1.0", "data.epoch_length=4", "data.num_workers=0"]
    train(_cfg(tmp_path / "a", [*common, "trainer.max_steps=2"]))
    last = tmp_path / "a" / "checkpoints" / "last.ckpt"
    cfg = _cfg(
        tmp_path / "b", [*common, "trainer.max_steps=4", "model.generator.num_features=12", f"+ckpt_path={last}"]
    )
    with pytest.raises(ValueError, match=r"other networks: generator: \d+ mis-shaped.*conv0\.weight") as info:
        train(cfg)
    assert "discriminator" not in str(info.value) and "\n" not in str(info.value)


def test_category_loss_is_the_mean_over_counted_samples_without_a_host_sync():
    from sftgan_lit.losses.objective import category_loss

    logits = torch.randn(6, 8, requires_grad=True)
    category = torch.tensor([0, 3, 5, 0, 7, 1])
    counted = category != 0
    expected = torch.nn.functional.cross_entropy(logits[counted], category[counted])
    torch.testing.assert_close(category_loss(logits, category), expected)
    none = category_loss(logits, torch.zeros(6, dtype=torch.long))  # all background: 0, and still a graph
    none.backward()
    assert none.item() == 0.0 and logits.grad.abs().max() == 0


def test_ema_counts_updates_across_a_reload():
    from sftgan_lit.lit.ema import EMA

    net = torch.nn.Linear(2, 2)
    ema = EMA(net, 0.999)
    for _ in range(3):
        ema.update(net)
    state = ema.state_dict()
    assert int(state["num_updates"]) == 3
    other = EMA(net, 0.999)
    other.update(net)  # its own count (1) is replaced by the loaded one
    other.load_state_dict(state)
    other.update(net)
    assert int(other.num_updates) == 4 and other.updates.value == 4


def test_a_run_that_trains_nothing_exports_nothing_and_says_so(tmp_path, caplog):
    """max_steps=0 once exported the untrained weights as generator.pth, which checkpoint=latest then picked."""
    with caplog.at_level("WARNING", logger="sftgan_lit.train"):
        _, objects = train(_cfg(tmp_path, ["trainer.max_steps=0"]))
    assert "export" not in objects and not (tmp_path / "generator.pth").exists()
    assert "no optimizer step was taken (trainer.max_steps=0): nothing is exported" in caplog.text
