"""Seconds per training iteration (one G + one D update), side by side in one run: the same iteration as a bare
PyTorch loop, as ``SFTGANModule`` under Lightning, as ``SFTGANModule`` with ``compile=true``
(``torch.compile``, inductor) and with ``channels_last=true``, each in fp32 (TF32 matmuls on CUDA) and bf16-mixed.

Full-size networks (SFT-Net 1.83M, ACD discriminator 10.8M, VGG19 to conv5_4 for the perceptual
term, random weights: speed does not depend on them), HR 96, vanilla GAN + category terms, EMA, fused Adam
(the recipe's optimiser settings) in both loops. Batches are fixed tensors, so data loading is not part of
any figure. Configurations are timed in alternating rounds and the median per-iteration time of each is
compared; the first ``--warmup`` iterations of every round are left out (they compile, for the compiled runs).
Also checked: the compiled run's losses against the eager run's over the same iterations.

    .venv/bin/python benchmarks/bench_training.py [--batch 16] [--iters 6] [--rounds 2] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time
from functools import partial

import lightning as L
import torch
from results import Results
from torch.utils.data import DataLoader, Dataset

from sftgan_lit.lit import SFTGANModule
from sftgan_lit.lit.ema import EMA
from sftgan_lit.losses import GANLoss, PerceptualLoss, SFTGANObjective
from sftgan_lit.models import ACDDiscriminator, sftgan_pytorch
from sftgan_lit.priors import LabelPrior


class FixedBatches(Dataset):
    def __init__(self, batch: dict, n: int) -> None:
        self.batch, self.n = batch, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return self.batch


def make_batch(n: int = 16, size: int = 96) -> dict:
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(n, 3, size, size, generator=g)
    from sftgan_lit import imresize

    prior = torch.softmax(torch.randn(n, 8, size, size, generator=g), 1)
    return {
        "hr": hr,
        "lr": imresize(hr, 0.25).clamp(0, 1),
        "prior": prior,
        "category": torch.randint(1, 8, (n,), generator=g),
    }


def networks(d_input: int = 96):
    torch.manual_seed(0)
    return sftgan_pytorch(), ACDDiscriminator(input_size=d_input), PerceptualLoss(random_weights=True)


class IterationTimer(L.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_start(self, *args) -> None:
        self._t = time.perf_counter()

    def on_train_batch_end(self, *args) -> None:
        self.times.append(time.perf_counter() - self._t)


FUSED = partial(torch.optim.Adam, lr=1e-4, betas=(0.9, 0.999), fused=True)


class LossRecorder(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, *args) -> None:
        self.losses.append(float(trainer.callback_metrics.get("train/loss_g", float("nan"))))


def lightning_iterations(
    batch: dict, iters: int, device: str, precision: str, compiled: bool = False, channels_last: bool = False
) -> tuple[list[float], list[float]]:
    g, d, percep = networks()
    objective = SFTGANObjective(w_pix=0.0, w_percep=1.0, w_gan=5e-3, perceptual=lambda: percep)
    module = SFTGANModule(
        g,
        d,
        objective,
        LabelPrior(),
        optimizer_g=FUSED,
        optimizer_d=FUSED,
        ema_decay=0.999,
        lpips_net=None,
        compile=compiled,
        channels_last=channels_last,
    )
    timer, losses = IterationTimer(), LossRecorder()
    trainer = L.Trainer(
        max_steps=2 * iters,
        accelerator=device,
        devices=1,
        precision=precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        log_every_n_steps=1,
        callbacks=[timer, losses],
    )
    loader = DataLoader(FixedBatches(batch, iters), batch_size=None, num_workers=0)
    trainer.fit(module, train_dataloaders=loader)
    return timer.times, losses.losses


def plain_iterations(batch: dict, iters: int, device: str, precision: str, d_input: int = 96) -> list[float]:
    g, d, percep = networks(d_input)
    g, d, percep = g.to(device), d.to(device), percep.to(device)
    ema = EMA(g, 0.999)
    gan = GANLoss("vanilla")
    opt_g, opt_d = FUSED(g.parameters()), FUSED(d.parameters())
    b = {k: v.to(device) for k, v in batch.items()}
    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    scaler = torch.amp.GradScaler(device) if precision == "16-mixed" else None

    def ce(logits, cat):
        return torch.nn.functional.cross_entropy(logits.float(), torch.where(cat == 0, -100, cat), ignore_index=-100)

    def autocast():
        return torch.autocast(device, dtype=dtype) if dtype else torch.autocast(device, enabled=False)

    times = []
    for _ in range(iters):
        t = time.perf_counter()
        d.requires_grad_(False)
        with autocast():
            sr = g(b["lr"], b["prior"])
            fake_logit, fake_cls = d(sr)
            loss_g = (
                percep(sr, b["hr"])
                + 5e-3 * gan.generator(None, fake_logit.float())
                + 5e-3 * ce(fake_cls, b["category"])
            )
        opt_g.zero_grad(set_to_none=True)
        (scaler.scale(loss_g) if scaler else loss_g).backward()
        scaler.step(opt_g) if scaler else opt_g.step()
        ema.update(g)
        d.requires_grad_(True)
        g.requires_grad_(False)
        with autocast():
            real_logit, real_cls = d(b["hr"])
            fake_logit, fake_cls = d(sr.detach())
            loss_d = (
                gan.discriminator(real_logit.float(), fake_logit.float())
                + ce(real_cls, b["category"])
                + ce(fake_cls, b["category"])
            )
        opt_d.zero_grad(set_to_none=True)
        (scaler.scale(loss_d) if scaler else loss_d).backward()
        scaler.step(opt_d) if scaler else opt_d.step()
        if scaler:
            scaler.update()
        g.requires_grad_(True)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return times


LOOPS = ("bare loop, eager", "Lightning, eager", "Lightning, compiled", "Lightning, eager, channels_last")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--iters", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precisions", default="32-true,bf16-mixed")
    args = parser.parse_args()
    torch.set_float32_matmul_precision("high")  # TF32 matmuls on CUDA; nothing changes on the CPU
    batch = make_batch(args.batch)
    results = Results("training")
    rows = results.table(
        ["loop", "precision", "s/it", "vs bare loop, same precision", "timed iterations"],
        f"batch {args.batch}, HR 96, full-size G + D + VGG19 conv5_4, fused Adam, medians",
    )
    best = None
    for precision in args.precisions.split(","):
        times: dict[str, list[float]] = {loop: [] for loop in LOOPS}
        losses: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            times[LOOPS[0]] += plain_iterations(batch, args.iters, args.device, precision)[args.warmup :]
            for loop, compiled, cl in ((LOOPS[1], False, False), (LOOPS[2], True, False), (LOOPS[3], False, True)):
                t, lost = lightning_iterations(batch, args.iters, args.device, precision, compiled, cl)
                times[loop] += t[args.warmup :]
                losses.setdefault(loop, lost)
        bare = statistics.median(times[LOOPS[0]])
        for loop in LOOPS:
            m = statistics.median(times[loop])
            rows.append([loop, precision, f"{m:.3f}", f"{100 * (m / bare - 1):+.1f}%", len(times[loop])])
            if best is None or m < best[0]:
                best = (m, loop, precision)
        eager, compiled = losses[LOOPS[1]], losses[LOOPS[2]]
        worst = max(abs(a - b) / max(abs(a), 1e-12) for a, b in zip(eager, compiled))
        results.note(
            f"{precision}: compiled vs eager generator loss over {len(eager)} iterations: max relative difference {worst:.1e}"
        )
    results.note(f"fastest: {best[1]}, {best[2]}: {best[0]:.3f} s x 600k iterations = {best[0] * 6e5 / 3600:.0f} h")
    results.save(args.device, suffix="-cuda" if args.device.startswith("cuda") else "")


if __name__ == "__main__":
    main()
