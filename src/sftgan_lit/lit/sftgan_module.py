"""``SFTGANModule``: the paper's training loop with manual optimisation, alternating G and D updates.

Each ``training_step`` is one iteration: a generator update (the objective's generator terms; skipped
during ``d_init_iters`` and on iterations not divisible by ``d_steps_per_g``), then a discriminator
update on the HR and the detached SR (the objective's discriminator terms). What the terms are is the
``losses.SFTGANObjective``'s business; this module decides when to step what. Each update runs inside
``toggled_optimizer`` so it only touches its own network's parameters.

Learning-rate groups and freezing come from ``param_groups``: the original recipe trains the layers
that carry the prior (what ``generator.conditioning_modules()`` reports) at 5x the base rate from the
start and the rest of the generator only after 20k iterations. Schedulers are stepped once per
iteration, by hand, before the iteration's updates as the original did (the iteration at a milestone
already runs at the new rate). An EMA copy of the generator is validated, saved and exported.
Non-finite losses or gradients skip the update (counted and logged, agreed across DDP ranks);
``max_nonfinite`` in a row stop the run with the step and the terms. With an optimiser that can skip a step on
the device (a ``fused`` Adam / AdamW / SGD: GradScaler's found-inf path) the decision stays on the device: no
host sync per update; skips are counted there and read every ``log_every_n_steps`` iterations (and at the end),
so the only host syncs are the logging ones. Other optimisers (or fp16 with a GradScaler) read one flag per update.

``compile``: ``torch.compile`` of the generator, the discriminator and the perceptual network in place (state
dicts, checkpoints and exports unchanged), with ``compile_mode`` / ``compile_backend``; the EMA copy that
validates stays eager, so whole-image validation of any size does not recompile.
"""

from __future__ import annotations

import logging
import random
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn

from ..choices import COMPILE_MODES
from ..losses import SFTGANObjective
from ..metrics import PSNRY, SSIMY, lpips_metric
from ..models import ConditionedGenerator, export_generator
from ..priors import Prior
from ..tensors import trusted
from .counters import HostCounter
from .ema import EMA

log = logging.getLogger(__name__)

# Which generator parameters a param group selects: the layers that carry the prior (as the network
# reports them), the others, or all.
PARTS = ("conditioning", "trunk", "all")


def _numpy_state_to_tensors(state: tuple) -> dict:
    # plain tensors and ints, so that checkpoints load with torch.load(weights_only=True)
    name, keys, pos, has_gauss, cached = state
    return {
        "name": name,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }


def _numpy_state_from_tensors(d: dict) -> tuple:
    return d["name"], d["keys"].numpy().astype(np.uint32), d["pos"], d["has_gauss"], d["cached"]


class NonFiniteLossError(RuntimeError):
    """Training produced non-finite losses for ``max_nonfinite`` consecutive updates."""


class SFTGANModule(L.LightningModule):
    """Args:
    generator, discriminator: the plain networks (``ConditionedGenerator``, ``ACDDiscriminator``).
    objective: the loss terms and weights (``losses.SFTGANObjective``).
    prior: the prior the data feeds (its class names and colours name the per-category metrics and
        the validation images); the generator must be conditioned on as many classes.
    optimizer_g, optimizer_d: ``functools.partial`` optimisers (Hydra ``_partial_: true``), built here.
    scheduler: a partial LR scheduler applied to both optimisers (stepped once per iteration), or None.
    param_groups: generator groups ``[{name, part, lr_mult, freeze_until}]``, ``part`` one of
        ``conditioning`` / ``trunk`` / ``all``; a parameter joins the first group whose part holds it.
    d_steps_per_g: D updates per G update; d_init_iters: D-only warm-up iterations.
    clip_grad_norm: max gradient norm for both networks, or None.
    ema_decay: decay of the generator's EMA (None: no EMA; validation uses the raw generator).
    max_nonfinite: consecutive non-finite updates after which training stops.
    use_discriminator: False trains G alone (SRResNet pretraining: pixel loss, no GAN terms).
    lpips_net: LPIPS backbone for ``val/lpips`` when its weights are on disk (None: off).
    compile: ``torch.compile`` the generator, discriminator and perceptual network for training.
    compile_mode: ``default``, ``reduce-overhead`` (CUDA graphs) or ``max-autotune``.
    compile_backend: ``inductor`` (the default), ``aot_eager`` (no code generation: checks the capture), ...
    channels_last: the networks' weights and each batch's images in channels-last memory format for training.
    """

    def __init__(
        self,
        generator: ConditionedGenerator,
        discriminator: nn.Module,
        objective: SFTGANObjective,
        prior: Prior,
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
        lpips_net: str | None = "alex",
        compile: bool = False,
        compile_mode: str = "default",
        compile_backend: str = "inductor",
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        # modules, the prior and partials stay out of hparams: checkpoints must load with weights_only=True
        self.save_hyperparameters(
            ignore=["generator", "discriminator", "objective", "prior", "optimizer_g", "optimizer_d", "scheduler"]
        )
        self.hparams["loss"] = objective.describe()
        self.hparams["class_names"] = list(prior.class_names)
        self.generator = generator
        self.discriminator = discriminator
        self.objective = objective
        self.prior = prior
        problem = prior.generator_problem(generator)
        if problem:
            raise ValueError(f"the generator does not fit the prior: {problem}; build it with train.build_models")
        self.ema = EMA(generator, ema_decay) if ema_decay is not None else None
        self.optimizer_g = optimizer_g or (lambda params: torch.optim.Adam(params, lr=1e-4, betas=(0.9, 0.999)))
        self.optimizer_d = optimizer_d or (lambda params: torch.optim.Adam(params, lr=1e-4, betas=(0.9, 0.999)))
        self.scheduler = scheduler
        if not use_discriminator and objective.needs_discriminator:
            raise ValueError(
                "module.use_discriminator=false needs module.objective.w_gan=0 and module.objective.w_cls_g=0 (the GAN terms need a trained D)"
            )
        if compile_mode not in COMPILE_MODES:
            raise ValueError(f"module.compile_mode={compile_mode}: one of {', '.join(COMPILE_MODES)}")
        if d_steps_per_g < 1:
            raise ValueError(f"d_steps_per_g must be >= 1, got {d_steps_per_g}")
        self.groups = self._resolve_groups(param_groups)
        self.class_names = prior.class_names
        crop_border = generator.scale  # the SR literature crops the scale's worth of border
        self.val_psnr = PSNRY(crop_border, prior.num_classes)
        self.val_ssim = SSIMY(crop_border, prior.num_classes)
        self.val_lpips = None
        if lpips_net:
            self.val_lpips, message = lpips_metric(lpips_net)
            log.info("%s", message)
        # iterations (G+D pairs) done, and non-finite updates; in the state dict so resume continues them
        self.iterations = HostCounter(self, "iteration")  # read every step: kept on the host, no device sync
        self.register_buffer("nonfinite_total", torch.zeros((), dtype=torch.long))
        self._nonfinite_streak = 0
        # the device-side skips (sync-free path): current and longest run of skipped updates since the last check
        self.register_buffer("_skip_streak", torch.zeros(()), persistent=False)
        self.register_buffer("_skip_worst", torch.zeros(()), persistent=False)
        self._skips_reported = 0
        self._pending_rng: dict | None = None  # RNG states of a resumed checkpoint, applied when its epoch starts

    # ------------------------------------------------------------------ optimisers
    def _resolve_groups(self, specs: Sequence[Mapping]) -> list[dict]:
        """Assign every generator parameter to the first group whose ``part`` holds it."""
        specs = list(specs) or [{"name": "all", "part": "all"}]
        conditioning = {id(p) for m in self.generator.conditioning_modules() for p in m.parameters()}
        groups = []
        for i, spec in enumerate(specs):
            part = spec.get("part")
            if part not in PARTS:
                raise ValueError(f"module.param_groups[{i}].part={part!r} is not one of {', '.join(PARTS)}")
            groups.append(
                {
                    "name": spec.get("name", f"group{i}"),
                    "part": part,
                    "lr_mult": float(spec.get("lr_mult", 1.0)),
                    "freeze_until": int(spec.get("freeze_until", 0)),
                    "params": [],
                    "names": [],
                }
            )
        holds = {
            "conditioning": lambda p: id(p) in conditioning,
            "trunk": lambda p: id(p) not in conditioning,
            "all": lambda p: True,
        }
        for name, p in self.generator.named_parameters():
            group = next((g for g in groups if holds[g["part"]](p)), None)
            if group is None:
                raise ValueError(
                    f"generator parameter {name!r} is in no module.param_groups part; add a group with part: all"
                )
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

    def configure_model(self) -> None:
        nets = [self.generator, self.discriminator, self.objective.perceptual]
        if self.hparams.channels_last:
            for net in (n for n in nets if n is not None):
                net.to(memory_format=torch.channels_last)
        if not self.hparams.compile:
            return
        for net in (n for n in nets if n is not None):
            net.compile(mode=self.hparams.compile_mode, backend=self.hparams.compile_backend)
        log.info(
            "torch.compile (mode %s, backend %s): generator, discriminator%s",
            self.hparams.compile_mode,
            self.hparams.compile_backend,
            ", perceptual network" if self.objective.perceptual is not None else "",
        )

    # ------------------------------------------------------------------ one update
    def _skips_on_device(self, opt) -> bool:
        """Whether ``opt`` skips a step on the device (``found_inf``, as under GradScaler) and no scaler is in use."""
        inner = getattr(opt, "optimizer", opt)
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        return bool(getattr(inner, "_step_supports_amp_scaling", False)) and scaler is None

    def _all_finite(self, loss: torch.Tensor, grads: Sequence[torch.Tensor | None] = ()) -> bool:
        """Whether the loss and the gradients are finite: one flag on the device and one host sync (a sync, or
        two kernels, per tensor stall a GPU's queue: +64% per fp32 iteration on an H100). The gradients'
        total norm (fused multi-tensor kernels) is finite exactly when every gradient is (or it overflows)."""
        flag = torch.isfinite(loss).all()
        grads = [g for g in grads if g is not None]
        if grads:
            flag = flag & torch.isfinite(torch.nn.utils.get_total_norm(grads)).to(flag.device)
        # every rank must take the same decision, or DDP's collectives would hang
        return bool(self.trainer.strategy.reduce_boolean_decision(bool(flag), all=True))

    def _update(
        self, opt, params: list[nn.Parameter], terms: dict[str, torch.Tensor], frozen: Sequence[nn.Parameter] = ()
    ) -> torch.Tensor:
        """Backward + step unless the loss or the gradients are non-finite; returns whether it was skipped, as a
        0-d float tensor on the device (1: skipped), which the EMA update reads without a sync.

        The loss and the gradients are checked together after the backward (a non-finite loss gives non-finite
        gradients, which are never applied): on the device for an optimiser that can skip there
        (``_skips_on_device``), else with one host sync per update."""
        loss = sum(terms.values())
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self._skips_on_device(opt):
            return self._device_step(opt, params, loss, frozen)
        scaler = getattr(self.trainer.precision_plugin, "scaler", None)
        # (with a GradScaler, the scaler skips inf/NaN gradients itself: only the loss is checked)
        if not self._all_finite(loss, [] if scaler is not None else [p.grad for p in params]):
            opt.zero_grad(set_to_none=True)
            self._skip(terms)
            return loss.detach().new_ones(()).float()
        self._step(opt, frozen)
        self._nonfinite_streak = 0
        return loss.detach().new_zeros(()).float()

    def _step(self, opt, frozen: Sequence[nn.Parameter]) -> None:
        for p in frozen:
            p.grad = None  # Adam leaves parameters without gradients untouched: frozen, moments included
        if self.hparams.clip_grad_norm:
            self.clip_gradients(opt, gradient_clip_val=self.hparams.clip_grad_norm, gradient_clip_algorithm="norm")
        opt.step()

    def _device_step(self, opt, params: list[nn.Parameter], loss: torch.Tensor, frozen) -> torch.Tensor:
        """The step with the non-finite decision left on the device: the optimiser's ``found_inf`` skips it there."""
        bad = ~torch.isfinite(loss.detach())
        grads = [p.grad for p in params if p.grad is not None]
        if grads:
            bad = bad | ~torch.isfinite(torch.nn.utils.get_total_norm(grads)).to(bad.device)
        # every rank takes the same decision (a max over ranks: an all-reduce, no host read)
        found = self.trainer.strategy.reduce(bad.float(), reduce_op="max")
        inner = getattr(opt, "optimizer", opt)
        inner.found_inf, inner.grad_scale = found, None
        try:
            self._step(opt, frozen)
        finally:
            inner.found_inf = None
        self.nonfinite_total += found.long()
        self._skip_streak.mul_(found).add_(found)  # +1 on a skip, 0 after a step
        torch.maximum(self._skip_worst, self._skip_streak, out=self._skip_worst)
        return found

    def _check_device_skips(self, force: bool = False) -> None:
        """Read the device's skip counters (one host sync): log new skips, stop after ``max_nonfinite`` in a row.
        Every ``log_every_n_steps`` iterations, and at the end of training (``force``)."""
        every = max(1, int(getattr(self.trainer, "log_every_n_steps", 50) or 50))
        if not force and self.iterations.value % every:
            return
        total, worst = (int(v) for v in torch.stack([self.nonfinite_total.float(), self._skip_worst]).tolist())
        if total > self._skips_reported:
            log.warning(
                "%d non-finite updates skipped by iteration %d (%d in total)",
                total - self._skips_reported,
                self.iterations.value,
                total,
            )
            self._skips_reported = total
        self._skip_worst.copy_(self._skip_streak)
        if worst >= self.hparams.max_nonfinite:
            raise NonFiniteLossError(
                f"{worst} consecutive non-finite updates by iteration {self.iterations.value} (global step "
                f"{self.trainer.global_step}; skips are read every {every} iterations). Lower the learning rate, "
                "set module.clip_grad_norm, or check the data"
            )

    def _skip(self, terms: dict[str, torch.Tensor]) -> bool:
        self._nonfinite_streak += 1
        self.nonfinite_total += 1
        detail = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in terms.items())
        log.warning(
            "non-finite update skipped at iteration %d (%d in a row): %s",
            self.iterations.value,
            self._nonfinite_streak,
            detail,
        )
        if self._nonfinite_streak >= self.hparams.max_nonfinite:
            raise NonFiniteLossError(
                f"{self._nonfinite_streak} consecutive non-finite updates; last at iteration {self.iterations.value} "
                f"(global step {self.trainer.global_step}) with loss terms {detail}. Lower the learning rate, "
                "set module.clip_grad_norm, or check the data"
            )
        return False

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        if self.hparams.channels_last and self.training:
            for key in ("lr", "hr", "prior"):
                if isinstance(batch.get(key), torch.Tensor) and batch[key].dim() == 4:
                    batch[key] = batch[key].contiguous(memory_format=torch.channels_last)
        return batch

    @trusted
    def training_step(self, batch: dict, batch_idx: int) -> None:
        hp = self.hparams
        opts = self.optimizers()
        opt_g, opt_d = opts
        it = self.iterations.value
        n = batch["hr"].shape[0]
        logs: dict[str, torch.Tensor] = {}
        with warnings.catch_warnings():
            # Schedules count iterations and are stepped before each one, as the original's
            # update_learning_rate() was: torch warns that no optimiser has stepped yet, but nothing is skipped.
            warnings.filterwarnings(
                "ignore", r"Detected call of `lr_scheduler\.step\(\)` before `optimizer\.step\(\)`", UserWarning
            )
            for sched in self._schedulers():
                sched.step()
        g_turn = it >= hp.d_init_iters and it % hp.d_steps_per_g == 0
        if g_turn:
            with self.toggled_optimizer(opt_g):
                sr = self.generator(batch["lr"], batch["prior"])
                terms = self.objective.generator_terms(batch, sr, self.discriminator)
                frozen = [p for g in self.groups if it < g["freeze_until"] for p in g["params"]]
                skipped = self._update(opt_g, list(self.generator.parameters()), terms, frozen)
                if self.ema is not None:
                    self.ema.update(self.generator, skipped)
            logs.update({f"train/g_{k}": v.detach() for k, v in terms.items()})
            logs["train/loss_g"] = sum(terms.values()).detach()
            sr = sr.detach()
        else:
            with torch.no_grad():
                sr = self.generator(batch["lr"], batch["prior"])
        if hp.use_discriminator:
            with self.toggled_optimizer(opt_d):
                terms = self.objective.discriminator_terms(batch, sr, self.discriminator)
                self._update(opt_d, list(self.discriminator.parameters()), terms)
            logs.update({f"train/d_{k}": v.detach() for k, v in terms.items()})
            logs["train/loss_d"] = sum(terms.values()).detach()
        self.iterations.set(it + 1)
        # host values as CPU tensors: a Python number would be copied to the device (a sync) every step
        logs["train/lr_g"] = torch.tensor(opt_g.param_groups[-1]["lr"])
        logs["train/nonfinite_skipped"] = self.nonfinite_total.float()
        logs["train/iteration"] = torch.tensor(float(it + 1))
        self.log_dict(logs, prog_bar=False, batch_size=n)
        if self._skips_on_device(opt_g) or self._skips_on_device(opt_d):
            self._check_device_skips()

    def on_train_end(self) -> None:
        if self._skips_on_device(self.optimizers()[0]) or self._skips_on_device(self.optimizers()[1]):
            self._check_device_skips(force=True)

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

    @trusted
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

    #: the file name ``train()`` exports to unless ``export_name`` says otherwise
    export_name = "generator.pth"

    def export(self, path: str | Path) -> Path:
        """Write the validated generator (EMA when there is one) to ``path`` in the original key layout with
        its constructor arguments (``models.load_generator`` reads it)."""
        training = {
            "optimizer_steps": int(self.global_step),  # G and D steps each count
            "ema": self.ema is not None,
            "loss": {k: v for k, v in self.objective.describe().items() if isinstance(v, int | float | str)},
            "prior": self.prior.name,
        }
        export_generator(
            self.eval_generator,
            path,
            self.prior.class_names,
            self.prior.colors,
            training,
            [c.record() for c in self.prior.continuous],
        )
        log.info("generator (EMA: %s) exported to %s", self.ema is not None, path)
        return Path(path)

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
        states, self._pending_rng = self._pending_rng, None
        if states:
            torch.set_rng_state(states["torch"])
            np.random.set_state(_numpy_state_from_tensors(states["numpy"]))
            random.setstate(states["python"])
            if "cuda" in states and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(states["cuda"])
