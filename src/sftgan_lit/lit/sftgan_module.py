"""``SFTGANModule``: the paper's training loop with manual optimisation, alternating G and D updates.

Each ``training_step`` is one iteration: a generator update (perceptual + GAN + category through D +
optional pixel term; skipped during ``d_init_iters`` and on iterations not divisible by
``d_steps_per_g``), then a discriminator update on the HR and the detached SR (real/fake + category
on both, background ignored, + gradient penalty for ``wgan_gp``). Each update runs inside
``toggled_optimizer`` so it only touches its own network's parameters.

Learning-rate groups and freezing come from ``param_groups`` (regexes on parameter names): the
original recipe trains SFT and condition layers at 5x the base rate from the start and the rest of the
generator only after 20k iterations. Schedulers are stepped once per iteration, by hand. An EMA copy of
the generator is validated and saved. Non-finite losses or gradients skip the update (counted and
logged, agreed across DDP ranks); ``max_nonfinite`` in a row stop the run with the step and the terms.
"""

from __future__ import annotations

import logging
import random
import re
import warnings
from collections.abc import Callable, Mapping, Sequence

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..losses import GANLoss, PerceptualLoss, gradient_penalty, pixel_loss
from ..metrics import PSNRY, SSIMY, lpips_metric
from .ema import EMA

log = logging.getLogger(__name__)

IGNORE = -100
# The original recipe: SFT and condition layers (and concat/film's fused convs) vs the rest.
CONDITIONING_PATTERN = r"^CondNet\.|\.sft\d\.|^sft_branch\.\d+\.SFT_"


def _numpy_state_to_tensors(state: tuple) -> dict:
    # plain tensors and ints, so that checkpoints load with torch.load(weights_only=True)
    name, keys, pos, has_gauss, cached = state
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached": float(cached)}  # fmt: skip


def _numpy_state_from_tensors(d: dict) -> tuple:
    return d["name"], d["keys"].numpy().astype(np.uint32), d["pos"], d["has_gauss"], d["cached"]


class NonFiniteLossError(RuntimeError):
    """Training produced non-finite losses for ``max_nonfinite`` consecutive updates."""


class SFTGANModule(L.LightningModule):
    """Args:
    generator, discriminator: the plain networks (``SFTGenerator``, ``ACDDiscriminator``).
    perceptual: a ``PerceptualLoss`` (or None: no perceptual term).
    w_pix, pixel_type, w_percep, w_gan, gan_type, w_cls, w_cls_g, w_gp: loss weights and types;
        ``w_cls_g=None`` uses ``w_gan`` for the generator's category term, as the original did.
    optimizer_g, optimizer_d: ``functools.partial`` optimisers (Hydra ``_partial_: true``), built here.
    scheduler: a partial LR scheduler applied to both optimisers (stepped once per iteration), or None.
    param_groups: generator groups ``[{name, pattern, lr_mult, freeze_until}]``, first match wins.
    d_steps_per_g: D updates per G update; d_init_iters: D-only warm-up iterations.
    clip_grad_norm: max gradient norm for both networks, or None.
    ema_decay: decay of the generator's EMA (None: no EMA; validation uses the raw generator).
    max_nonfinite: consecutive non-finite updates after which training stops.
    use_discriminator: False trains G alone (SRResNet pretraining: pixel loss, no GAN terms).
    crop_border: border removed by the Y metrics (the SR scale).
    lpips_net: LPIPS backbone for ``val/lpips`` when its weights are on disk (None: off).
    class_names: category names for per-category validation metrics.
    """

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        perceptual: PerceptualLoss | None = None,
        w_pix: float = 0.0,
        pixel_type: str = "l1",
        w_percep: float = 1.0,
        w_gan: float = 5e-3,
        gan_type: str = "vanilla",
        w_cls: float = 1.0,
        w_cls_g: float | None = None,
        w_gp: float = 10.0,
        optimizer_g: Callable | None = None,
        optimizer_d: Callable | None = None,
        scheduler: Callable | None = None,
        param_groups: Sequence[Mapping] = (),
        d_steps_per_g: int = 1,
        d_init_iters: int = 0,
        clip_grad_norm: float | None = None,
        ema_decay: float | None = 0.999,
        max_nonfinite: int = 10,
        use_discriminator: bool = True,
        crop_border: int = 4,
        lpips_net: str | None = "alex",
        class_names: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        # plain strings (Hydra passes the schema's enums): hparams go into checkpoints read with weights_only=True
        pixel_type, gan_type = str(getattr(pixel_type, "value", pixel_type)), str(getattr(gan_type, "value", gan_type))
        class_names = [str(c) for c in class_names]
        # modules and partials stay out of hparams: checkpoints must load with weights_only=True
        self.save_hyperparameters(ignore=["generator", "discriminator", "perceptual", "optimizer_g", "optimizer_d", "scheduler"])
        self.generator = generator
        self.discriminator = discriminator
        self.perceptual = perceptual if (perceptual is not None and perceptual.available and w_percep) else None
        self.gan = GANLoss(gan_type)
        self.ema = EMA(generator, ema_decay) if ema_decay is not None else None
        self.optimizer_g = optimizer_g or (lambda params: torch.optim.Adam(params, lr=1e-4, betas=(0.9, 0.999)))
        self.optimizer_d = optimizer_d or (lambda params: torch.optim.Adam(params, lr=1e-4, betas=(0.9, 0.999)))
        self.scheduler = scheduler
        if not use_discriminator and (w_gan or (w_cls_g if w_cls_g is not None else w_gan)):
            raise ValueError("use_discriminator=false needs w_gan=0 and w_cls_g=0 (the GAN terms need a trained D)")
        if d_steps_per_g < 1:
            raise ValueError(f"d_steps_per_g must be >= 1, got {d_steps_per_g}")
        self.groups = self._resolve_groups(param_groups)
        num_classes = len(class_names) or 8
        self.class_names = tuple(class_names) or tuple(str(i) for i in range(num_classes))
        self.val_psnr = PSNRY(crop_border, num_classes)
        self.val_ssim = SSIMY(crop_border, num_classes)
        self.val_lpips = None
        if lpips_net:
            self.val_lpips, message = lpips_metric(lpips_net)
            log.info("%s", message)
        # iterations (G+D pairs) done, and non-finite updates; in the state dict so resume continues them
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))
        self.register_buffer("nonfinite_total", torch.zeros((), dtype=torch.long))
        self._nonfinite_streak = 0

    # ------------------------------------------------------------------ optimisers
    def _resolve_groups(self, specs: Sequence[Mapping]) -> list[dict]:
        """Assign every generator parameter to the first group whose pattern matches its name."""
        specs = list(specs) or [{"name": "all", "pattern": ".*", "lr_mult": 1.0, "freeze_until": 0}]
        groups = [{"name": s.get("name", f"group{i}"), "regex": re.compile(s["pattern"]), "lr_mult": float(s.get("lr_mult", 1.0)),
                   "freeze_until": int(s.get("freeze_until", 0)), "params": [], "names": []} for i, s in enumerate(specs)]  # fmt: skip
        for name, p in self.generator.named_parameters():
            group = next((g for g in groups if g["regex"].search(name)), None)
            if group is None:
                raise ValueError(f"generator parameter {name!r} matches no module.param_groups pattern; add a catch-all '.*' group")
            group["params"].append(p)
            group["names"].append(name)
        empty = [g["name"] for g in groups if not g["params"]]
        if empty:
            log.warning("param groups %s match no generator parameter (e.g. conditioning=none)", empty)
        return [g for g in groups if g["params"]]

    def configure_optimizers(self):
        opt_g = self.optimizer_g([{"params": g["params"], "name": g["name"]} for g in self.groups])
        for pg, g in zip(opt_g.param_groups, self.groups):
            pg["lr"] = pg["lr"] * g["lr_mult"]
            pg["initial_lr"] = pg["lr"]
        opt_d = self.optimizer_d(self.discriminator.parameters())
        if self.scheduler is None:
            return [opt_g, opt_d]
        return [opt_g, opt_d], [self.scheduler(opt_g), self.scheduler(opt_d)]

    # ------------------------------------------------------------------ losses
    def _cls(self, logits: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        target = torch.where(category == 0, IGNORE, category)  # background is not a category (original: ignore_index=0)
        if (target == IGNORE).all():
            return logits.sum() * 0.0
        return F.cross_entropy(logits.float(), target, ignore_index=IGNORE)

    def generator_losses(self, batch: dict, sr: torch.Tensor) -> dict[str, torch.Tensor]:
        hp = self.hparams
        terms: dict[str, torch.Tensor] = {}
        if hp.w_pix:
            terms["pix"] = hp.w_pix * pixel_loss(sr, batch["hr"], hp.pixel_type)
        if self.perceptual is not None:
            terms["percep"] = hp.w_percep * self.perceptual(sr, batch["hr"])
        if hp.w_gan or hp.w_cls_g:
            fake_logit, fake_cls = self.discriminator(sr)
            real_logit = self.discriminator(batch["hr"])[0].detach() if hp.gan_type == "ragan" else None
            if hp.w_gan:
                terms["gan"] = hp.w_gan * self.gan.generator(real_logit, fake_logit.float())
            w_cls_g = hp.w_gan if hp.w_cls_g is None else hp.w_cls_g
            if w_cls_g:
                terms["cls"] = w_cls_g * self._cls(fake_cls, batch["category"])
        return terms

    def discriminator_losses(self, batch: dict, sr: torch.Tensor) -> dict[str, torch.Tensor]:
        hp = self.hparams
        real_logit, real_cls = self.discriminator(batch["hr"])
        fake_logit, fake_cls = self.discriminator(sr)
        terms = {"gan": self.gan.discriminator(real_logit.float(), fake_logit.float())}
        if hp.w_cls:
            terms["cls"] = hp.w_cls * (self._cls(real_cls, batch["category"]) + self._cls(fake_cls, batch["category"]))
        if hp.gan_type == "wgan_gp" and hp.w_gp:
            terms["gp"] = hp.w_gp * gradient_penalty(self.discriminator, batch["hr"], sr)
        return terms

    # ------------------------------------------------------------------ one update
    def _all_finite(self, tensors) -> bool:
        local = all(bool(torch.isfinite(t).all()) for t in tensors if t is not None)
        # every rank must take the same decision, or DDP's collectives would hang
        return bool(self.trainer.strategy.reduce_boolean_decision(local, all=True))

    def _update(self, opt, params: list[nn.Parameter], terms: dict[str, torch.Tensor], frozen: Sequence[nn.Parameter] = ()) -> bool:
        """Backward + step unless the loss or the gradients are non-finite; returns whether it stepped."""
        loss = sum(terms.values())
        opt.zero_grad(set_to_none=True)
        if not self._all_finite([loss]):
            return self._skip(terms)
        self.manual_backward(loss)
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        if scaler is None and not self._all_finite([p.grad for p in params]):
            return self._skip(terms)  # (with a GradScaler, the scaler skips inf/NaN gradients itself)
        for p in frozen:
            p.grad = None  # Adam leaves parameters without gradients untouched: frozen, moments included
        if self.hparams.clip_grad_norm:
            self.clip_gradients(opt, gradient_clip_val=self.hparams.clip_grad_norm, gradient_clip_algorithm="norm")
        opt.step()
        self._nonfinite_streak = 0
        return True

    def _skip(self, terms: dict[str, torch.Tensor]) -> bool:
        self._nonfinite_streak += 1
        self.nonfinite_total += 1
        detail = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in terms.items())
        log.warning("non-finite update skipped at iteration %d (%d in a row): %s", int(self.iteration), self._nonfinite_streak, detail)
        if self._nonfinite_streak >= self.hparams.max_nonfinite:
            raise NonFiniteLossError(
                f"{self._nonfinite_streak} consecutive non-finite updates; last at iteration {int(self.iteration)} "
                f"(global step {self.trainer.global_step}) with loss terms {detail}. Lower the learning rate, "
                "set optim.clip_grad_norm, or check the data"
            )
        return False

    def training_step(self, batch: dict, batch_idx: int) -> None:
        hp = self.hparams
        opts = self.optimizers()
        opt_g, opt_d = opts
        it = int(self.iteration)
        n = batch["hr"].shape[0]
        logs: dict[str, torch.Tensor] = {}
        g_turn = it >= hp.d_init_iters and it % hp.d_steps_per_g == 0
        if g_turn:
            with self.toggled_optimizer(opt_g):
                sr = self.generator(batch["lr"], batch["prior"])
                terms = self.generator_losses(batch, sr)
                frozen = [p for g in self.groups if it < g["freeze_until"] for p in g["params"]]
                if self._update(opt_g, list(self.generator.parameters()), terms, frozen) and self.ema is not None:
                    self.ema.update(self.generator)
            logs.update({f"train/g_{k}": v.detach() for k, v in terms.items()})
            logs["train/loss_g"] = sum(terms.values()).detach()
            sr = sr.detach()
        else:
            with torch.no_grad():
                sr = self.generator(batch["lr"], batch["prior"])
        if hp.use_discriminator:
            with self.toggled_optimizer(opt_d):
                terms = self.discriminator_losses(batch, sr)
                self._update(opt_d, list(self.discriminator.parameters()), terms)
            logs.update({f"train/d_{k}": v.detach() for k, v in terms.items()})
            logs["train/loss_d"] = sum(terms.values()).detach()
        self.iteration += 1
        with warnings.catch_warnings():
            # Schedules count iterations and step every iteration; an optimiser that has not stepped yet (D
            # without a GAN loss, G during d_init_iters) makes torch warn, but nothing is skipped that should not be.
            warnings.filterwarnings("ignore", r"Detected call of `lr_scheduler\.step\(\)` before `optimizer\.step\(\)`", UserWarning)
            for sched in self._schedulers():
                sched.step()
        logs["train/lr_g"] = torch.tensor(opt_g.param_groups[-1]["lr"])
        logs["train/nonfinite_skipped"] = self.nonfinite_total.float()
        self.log_dict(logs, prog_bar=False, batch_size=n)
        self.log("train/iteration", self.iteration.float(), batch_size=n)

    def _schedulers(self) -> list:
        scheds = self.lr_schedulers()
        if scheds is None:
            return []
        return list(scheds) if isinstance(scheds, list | tuple) else [scheds]

    # ------------------------------------------------------------------ validation
    @property
    def eval_generator(self) -> nn.Module:
        """The generator that validation, export and inference use: the EMA copy when there is one."""
        return self.ema.module if self.ema is not None else self.generator

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        sr = self.eval_generator(batch["lr"], batch["prior"]).float().clamp(0, 1)
        self.val_psnr.update(sr, batch["hr"].float(), batch["category"])
        self.val_ssim.update(sr, batch["hr"].float(), batch["category"])
        if self.val_lpips is not None:
            self.val_lpips.update(sr, batch["hr"].float())

    def on_validation_epoch_end(self) -> None:
        for key, metric in (("psnr_y", self.val_psnr), ("ssim_y", self.val_ssim)):
            with metric.sync_context(should_sync=True):
                overall = float(metric.mean())
                per_class = metric.compute_per_class().tolist()
            self.log(f"val/{key}", overall, prog_bar=True, sync_dist=False)
            if key == "psnr_y":
                for name, value in zip(self.class_names, per_class):
                    if np.isfinite(value):
                        self.log(f"val/psnr_y/{name}", value, sync_dist=False)
            metric.reset()
        if self.val_lpips is not None:
            self.log("val/lpips", self.val_lpips.compute(), sync_dist=False)
            self.val_lpips.reset()

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        bad = [n for n, p in self.generator.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise RuntimeError(f"refusing to write a checkpoint: generator parameters {bad[:5]} are non-finite")
        checkpoint["rng_states"] = {
            "torch": torch.get_rng_state(),
            "numpy": _numpy_state_to_tensors(np.random.get_state()),
            "python": random.getstate(),
            **({"cuda": torch.cuda.get_rng_state_all()} if torch.cuda.is_available() else {}),
        }

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Applied when the resumed epoch starts, not now: Lightning draws random numbers between
        # restoring and starting the epoch, which an uninterrupted run does not.
        self._pending_rng = checkpoint.get("rng_states")

    def on_train_epoch_start(self) -> None:
        states, self._pending_rng = getattr(self, "_pending_rng", None), None
        if states:
            torch.set_rng_state(states["torch"])
            np.random.set_state(_numpy_state_from_tensors(states["numpy"]))
            random.setstate(states["python"])
            if "cuda" in states and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(states["cuda"])
