"""``EstimatorModule``: train the ``DegradationEstimator`` that reads a prior's continuous channels from the LR
(``experiment=degradation_estimator``).

Automatic optimisation. The datamodule makes each LR with a degradation that knows its strengths per pixel
(``degradation=mapped``) and stacks them after the classes of ``batch['prior']`` (normalised, at HR size); the
target is that part averaged over each LR pixel's ``scale x scale`` block (the maps are constant there, so this
is exact). The loss is the L1 distance in normalised units; validation logs the mean absolute error of each
channel in its own unit (``val/mae/noise_sigma`` in 8-bit levels) and their normalised mean ``val/mae``.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F

from ..models import DegradationEstimator, export_estimator
from ..priors import Prior
from ..tensors import trusted


class EstimatorModule(L.LightningModule):
    """Args:
    estimator: a ``models.DegradationEstimator`` predicting the prior's continuous channels, in order.
    prior: a prior with continuous channels (``prior=[labels,degradation]``); its classes are not used.
    optimizer: ``_partial_`` optimizer factory (``params=`` is given here).
    scheduler: optional ``_partial_`` scheduler factory, stepped every optimiser step.
    """

    #: the file name ``train()`` exports to unless ``export_name`` says otherwise
    export_name = "estimator.pth"

    def __init__(self, estimator: DegradationEstimator, prior: Prior, optimizer, scheduler=None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["estimator", "prior", "optimizer", "scheduler"])
        k = estimator.config.num_continuous
        if not prior.continuous or len(prior.continuous) != k:
            raise ValueError(
                f"the estimator predicts {k} channels but prior={prior.name} has {len(prior.continuous)} continuous "
                "channels; use prior=[labels,degradation] (model.estimator.num_continuous follows the prior)"
            )
        self.estimator = estimator
        self.prior = prior
        self.optimizer, self.scheduler = optimizer, scheduler
        self.register_buffer("val_sum", torch.zeros(k + 1), persistent=False)  # per-channel |error| sums, count

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """LR ``(N, 3, h, w)`` in [0, 1] -> normalised channels ``(N, K, h, w)`` in [0, 1]."""
        return self.estimator(lr)

    def target(self, batch: dict) -> torch.Tensor:
        """The batch's true channels on the LR grid, normalised: ``(N, K, h, w)``."""
        maps = batch["prior"][:, self.prior.num_classes :]
        s = maps.shape[-1] // batch["lr"].shape[-1]
        return F.avg_pool2d(maps.float(), s) if s > 1 else maps.float()

    @trusted
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = F.l1_loss(self.estimator(batch["lr"]).float(), self.target(batch))
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["lr"].shape[0])
        return loss

    @trusted
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        err = (self.estimator(batch["lr"]).float() - self.target(batch)).abs()
        self.val_sum[:-1] += err.sum(dim=(0, 2, 3))
        self.val_sum[-1] += err[:, 0].numel()

    def on_validation_epoch_end(self) -> None:
        sums = self.trainer.strategy.reduce(self.val_sum.clone(), reduce_op="sum")
        self.val_sum.zero_()
        if sums[-1] == 0:
            return
        mae = sums[:-1] / sums[-1]
        self.log("val/mae", mae.mean(), prog_bar=True)
        for i, c in enumerate(self.prior.continuous):
            self.log(f"val/mae/{c.name}", mae[i] * (c.high - c.low))

    def configure_optimizers(self):
        opt = self.optimizer(params=self.estimator.parameters())
        if self.scheduler is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": {"scheduler": self.scheduler(optimizer=opt), "interval": "step"}}

    def export(self, path: str | Path) -> Path:
        """Write the estimator to ``path`` with the channels it predicts (``prior.estimator=PATH`` reads it)."""
        export_estimator(self.estimator, path, [c.record() for c in self.prior.continuous])
        return Path(path)
