"""Training without host syncs per update (fused optimisers skip non-finite steps on the device), torch.compile
of the training networks (same losses as eager; no graph breaks) and of predict's generator."""

from __future__ import annotations

from functools import partial

import lightning as L
import pytest
import torch
from test_training import NaNAt, _fit
from torch.utils._python_dispatch import TorchDispatchMode

from sftgan_lit.lit import SFTGANModule
from sftgan_lit.lit.sftgan_module import NonFiniteLossError
from sftgan_lit.losses import SFTGANObjective
from sftgan_lit.models import ACDDiscriminator, SFTGenerator
from sftgan_lit.priors import LabelPrior

FUSED = partial(torch.optim.Adam, lr=1e-4, betas=(0.9, 0.999), fused=True)


class HostReads(TorchDispatchMode):
    """Counts reads of a tensor's value into Python (``.item()``, ``float()``, ``bool()``, ``if tensor``): on a GPU
    each waits for the device's queue. On the CPU they are the same calls, so the count is the one a GPU would see."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


class ReadsPerIteration(L.Callback):
    """Host reads inside each training step (the updates; Lightning's logging comes after the step)."""

    def __init__(self) -> None:
        self.counts: list[int] = []

    def on_train_batch_start(self, *args) -> None:
        self.mode = HostReads()
        self.mode.__enter__()

    def on_train_batch_end(self, *args) -> None:
        self.mode.__exit__(None, None, None)
        self.counts.append(self.mode.count)


def tiny_module(bad_calls=(), fused=True, ema=0.999, **kw) -> SFTGANModule:
    torch.manual_seed(0)
    g = SFTGenerator(num_features=8, num_blocks=1, cond_channels=4, cond_hidden_channels=8, sft_hidden_channels=4)
    d = ACDDiscriminator(base_channels=4, input_size=32)
    objective = SFTGANObjective(w_pix=1.0, w_percep=0, w_gan=5e-3)
    opts = {"optimizer_g": FUSED, "optimizer_d": FUSED} if fused else {}
    g = NaNAt(g, set(bad_calls)) if bad_calls else g  # (its call counter would make a compiled G recompile each call)
    return SFTGANModule(g, d, objective, LabelPrior(), ema_decay=ema, lpips_net=None, **opts, **kw)


def fit(module, tmp_path, iterations, log_every=4, callbacks=()):
    """``iterations`` G + D iterations on the tiny demo data (``test_training``'s set-up)."""
    return _fit(
        module,
        tmp_path,
        2 * iterations,
        log_every_n_steps=log_every,
        callbacks=list(callbacks),
        enable_model_summary=False,
    )


def test_with_fused_optimisers_an_update_reads_nothing_back_from_the_device(tmp_path):
    reads = ReadsPerIteration()
    fit(tiny_module(fused=True), tmp_path, iterations=8, callbacks=[reads])
    # the host counters are read once, in the first iteration; the skip counters every 4th (log_every_n_steps)
    assert reads.counts[1:] == [0] * 7, reads.counts
    before = ReadsPerIteration()
    fit(tiny_module(fused=False), tmp_path, iterations=3, callbacks=[before])
    assert all(n >= 2 for n in before.counts), before.counts  # the host path: one flag per G and per D update


def test_a_device_side_skip_is_counted_and_leaves_weights_and_their_average_finite(tmp_path):
    module = tiny_module(bad_calls={2})
    fit(module, tmp_path, iterations=4)
    # the NaN SR of iteration 1 spoils its G update and, through sr.detach(), its D update: both skipped
    assert int(module.nonfinite_total) == 2 and int(module.iteration) == 4
    assert all(torch.isfinite(p).all() for p in [*module.parameters(), *module.ema.parameters()])


def test_consecutive_device_side_skips_stop_the_run_at_the_next_read(tmp_path):
    module = tiny_module(bad_calls={"all"}, max_nonfinite=3)
    with pytest.raises(
        NonFiniteLossError, match=r"consecutive non-finite updates by iteration 4 .* every 4 iterations"
    ):
        fit(module, tmp_path, iterations=20)
    assert all(torch.isfinite(p).all() for p in module.generator.parameters())


class Losses(L.Callback):
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def on_train_batch_end(self, trainer, *args) -> None:
        keys = ("train/g_pix", "train/g_gan", "train/d_gan", "train/d_cls")
        self.rows.append({k: float(trainer.callback_metrics[k]) for k in keys if k in trainer.callback_metrics})


def test_compiled_training_gives_the_eager_losses_for_ten_iterations(tmp_path):
    runs = {}
    for compiled in (False, True):
        losses = Losses()
        # aot_eager: dynamo's capture and AOTAutograd's joint graph, without the C++ code generation that takes
        # minutes on two cores (bench_training.py runs inductor)
        module = tiny_module(compile=compiled, compile_backend="aot_eager")
        fit(module, tmp_path / str(compiled), iterations=10, log_every=1, callbacks=[losses])
        runs[compiled] = losses.rows
    assert len(runs[True]) == 10 and set(runs[True][0]) >= {"train/g_pix", "train/d_gan"}
    for eager, compiled in zip(runs[False], runs[True]):
        for key in eager:
            assert compiled[key] == pytest.approx(eager[key], rel=1e-4), key


def test_the_training_networks_compile_without_graph_breaks():
    from sftgan_lit.losses import PerceptualLoss
    from sftgan_lit.models import SFTCompact, SFTRRDBNet

    lr, prior = torch.rand(2, 3, 8, 8), torch.softmax(torch.randn(2, 8, 32, 32), 1)
    nets = {
        "SFT-Net": (SFTGenerator(num_features=8, num_blocks=1, cond_channels=4, cond_hidden_channels=8), (lr, prior)),
        "SFT-RRDBNet": (SFTRRDBNet(num_features=8, num_blocks=1, num_grow_ch=4), (lr, prior)),
        "SFT-Compact": (SFTCompact(num_features=8, num_blocks=2), (lr, prior)),
        "discriminator": (ACDDiscriminator(base_channels=4, input_size=32), (torch.rand(2, 3, 32, 32),)),
        "perceptual": (PerceptualLoss(random_weights=True), (torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32))),
    }
    breaks = {}
    for name, (net, inputs) in nets.items():
        torch._dynamo.reset()
        explanation = torch._dynamo.explain(net)(*inputs)
        if explanation.graph_break_count:
            breaks[name] = [str(r.reason) for r in explanation.break_reasons]
    assert not breaks, breaks


def test_predict_with_compile_equals_eager(tmp_path, tiny_ckpt, monkeypatch):
    import numpy as np
    from PIL import Image

    from sftgan_lit.inference.engines import CompiledRunner
    from sftgan_lit.inference.predict import predict

    from helpers import predict_cfg

    monkeypatch.setattr(CompiledRunner, "backend", "aot_eager")
    (tmp_path / "in").mkdir()
    rng = np.random.default_rng(0)
    # 12-px tiles of a 20x28 LR: windows of several shapes (interior, edges, corner)
    Image.fromarray((rng.random((20, 28, 3)) * 255).astype(np.uint8)).save(tmp_path / "in" / "a.png")
    outs = {}
    for compiled in ("false", "true"):
        cfg = predict_cfg(tmp_path / compiled, tiny_ckpt, f"images={tmp_path / 'in'}", "prior=uniform", "tile=12")
        cfg.compile = compiled == "true"
        report, _ = predict(cfg)
        assert report.ok
        outs[compiled] = [np.asarray(Image.open(p), np.int16) for p in sorted(report.written)]
    for eager, compiled in zip(outs["false"], outs["true"]):
        assert np.abs(eager - compiled).max() <= 1
