"""Callbacks: validation image grids for any logger, and a DDP weight-consistency check."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import lightning as L
import torch
from torchvision.utils import make_grid, save_image

from ..categories import colorize
from ..imresize import imresize

log = logging.getLogger(__name__)


class ValidationImages(L.Callback):
    """Every ``every_n_val`` validation runs, a grid for the first ``num_images`` validation images.

    Columns: LR (nearest-upsampled), bicubic (MATLAB x4), SR (the validated generator), HR, and the
    prior as a colour map (argmax, the prior's colours). Sent to TensorBoard (``add_image``), W&B
    (``log_image``) and, for every logger, saved as PNG under ``<log dir>/images/``.
    """

    def __init__(self, num_images: int = 4, every_n_val: int = 1, colors=None) -> None:
        self.num_images = num_images
        self.every_n_val = every_n_val
        self.colors = colors
        self._runs = 0
        self._rows: list[torch.Tensor] = []

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._rows = []

    @torch.no_grad()
    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if trainer.sanity_checking or self._runs % self.every_n_val or len(self._rows) >= self.num_images:
            return
        k = self.num_images - len(self._rows)
        lr, hr, prior = batch["lr"][:k].float(), batch["hr"][:k].float(), batch["prior"][:k].float()
        sr = pl_module.eval_generator(batch["lr"][:k], batch["prior"][:k]).float().clamp(0, 1)
        s = hr.shape[-1] // lr.shape[-1]
        near = torch.nn.functional.interpolate(lr, scale_factor=s, mode="nearest")
        bic = imresize(lr, s).clamp(0, 1)
        # the configured colours, else those of the prior the module trains with
        colors = self.colors or pl_module.prior.colors
        seg = colorize(prior.argmax(1), tuple(map(tuple, colors)))
        for i in range(lr.shape[0]):
            self._rows += [torch.stack([near[i], bic[i], sr[i], hr[i], seg[i].to(hr.device)])]

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        log_dir = trainer.log_dir  # a collective under DDP: every rank must ask, in the same order
        runs, self._runs = self._runs, self._runs + 1
        if runs % self.every_n_val or not self._rows or trainer.global_rank != 0:
            return
        # whole validation images may differ in size: each row is padded (white) to the largest
        h = max(r.shape[-2] for r in self._rows)
        w = max(r.shape[-1] for r in self._rows)
        rows = [torch.nn.functional.pad(r, (0, w - r.shape[-1], 0, h - r.shape[-2]), value=1.0) for r in self._rows]
        grid = make_grid(torch.cat(rows).cpu(), nrow=5, padding=2, pad_value=1.0)
        key = "val/images"
        step = trainer.global_step
        for logger in trainer.loggers:
            name = type(logger).__name__
            if name == "TensorBoardLogger":
                logger.experiment.add_image(key, grid, global_step=step)
            elif name == "WandbLogger":
                logger.log_image(key=key, images=[grid], caption=["LR | bicubic | SR | HR | prior"], step=step)
        out = Path(log_dir or trainer.default_root_dir) / "images" / f"val_step{step:07d}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid, out)


class WeightSyncCheck(L.Callback):
    """At the end of training, check that every DDP rank holds the same G and D weights.

    Each rank reduces its parameters to a float64 fingerprint (sum, sum of squares, and a weighted sum
    per tensor); rank 0 gathers them, writes ``weight_sync.json`` in the log folder and fails the run if
    any rank differs by more than ``atol`` (a rank that diverged would silently train a different model).
    """

    def __init__(self, atol: float = 0.0) -> None:
        self.atol = atol

    @staticmethod
    def fingerprint(module: torch.nn.Module) -> torch.Tensor:
        vals = []
        for p in module.parameters():
            x = p.detach().double().flatten()
            ramp = torch.linspace(0.5, 1.5, x.numel(), dtype=torch.float64, device=x.device)
            vals += [x.sum(), (x * x).sum(), (x * ramp).sum()]
        return torch.stack(vals)

    def on_train_end(self, trainer, pl_module) -> None:
        log_dir = trainer.log_dir  # a collective under DDP: asked on every rank
        fp = torch.cat([self.fingerprint(pl_module.generator), self.fingerprint(pl_module.discriminator)])
        gathered = pl_module.all_gather(fp)
        if gathered.dim() == 1:
            gathered = gathered[None]
        diff = float((gathered - gathered[0]).abs().max())
        report = {"world_size": trainer.world_size, "max_abs_diff": diff, "atol": self.atol}
        if trainer.global_rank == 0:
            out = Path(log_dir or trainer.default_root_dir) / "weight_sync.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report))
            log.info("weights across %d ranks: max abs difference %.3g", trainer.world_size, diff)
        if diff > self.atol:
            raise RuntimeError(f"DDP ranks hold different weights after training (max abs difference {diff:.3g})")


class PreemptionCheckpoint(L.Callback):
    """On SIGTERM (a cluster preempting the job, ``kill``, ``docker stop``), save ``<dirpath>/preempted.ckpt``
    before the process exits. Lightning stops at the end of the batch in progress, every rank at the same one;
    the checkpoint holds the loader's position in the epoch (``data.sampling``), so
    ``python train.py ... +ckpt_path=<dirpath>/preempted.ckpt`` continues exactly where the run stopped."""

    def __init__(self, dirpath: str | Path) -> None:
        self.dirpath = Path(dirpath)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        from lightning.pytorch.utilities.exceptions import SIGTERMException

        if not isinstance(exception, SIGTERMException) or not trainer.training:
            return
        path = self.dirpath / "preempted.ckpt"
        trainer.save_checkpoint(path)
        if trainer.is_global_zero:
            log.warning(
                "SIGTERM at step %d: saved %s; resume with +ckpt_path=%s", trainer.global_step, path, path.resolve()
            )
