"""``SegmenterModule``: train the network that produces SFTGAN's categorical prior (``experiment=segmenter``).

Automatic optimisation. The segmenter sees what it will be asked at SR time, the LR of each HR crop
(``imresize`` x1/4 in the datamodule, bicubic x4 inside the segmenter), and is scored against the HR
label map: cross-entropy with the void label (255) ignored and optional class weights; validation and
test log mean IoU, per-class IoU, pixel accuracy and the expected calibration error (ECE, 15 bins),
because SFTGAN consumes the probabilities, not the argmax.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassCalibrationError, MulticlassJaccardIndex

from ..categories import VOID_LABEL
from ..models import Segmenter, export_segmenter
from ..priors import Prior
from ..tensors import trusted


class SegmenterModule(L.LightningModule):
    """Args:
    segmenter: a ``models.Segmenter`` (``LRASPPSegmenter``, ``OutdoorSceneSeg``).
    prior: the prior whose classes the labels are (names and colours are recorded in the export).
    optimizer: ``_partial_`` optimizer factory (``params=`` is given here).
    scheduler: optional ``_partial_`` scheduler factory, stepped every optimiser step; a ``total_steps``
        left at None is the run's length (``trainer.estimated_stepping_batches``).
    class_weights: optional per-class weights of the cross-entropy.
    label_smoothing: cross-entropy label smoothing (softens over-confident probabilities).
    ece_bins: bins of the calibration error.
    """

    def __init__(
        self,
        segmenter: Segmenter,
        prior: Prior,
        optimizer,
        scheduler=None,
        class_weights: Sequence[float] | None = None,
        label_smoothing: float = 0.0,
        ece_bins: int = 15,
    ) -> None:
        super().__init__()
        # the factories are code, not hyperparameters: checkpoints stay loadable with weights_only=True
        self.save_hyperparameters(ignore=["segmenter", "prior", "optimizer", "scheduler"])
        self.hparams["class_names"] = list(prior.class_names)
        self.prior = prior
        class_names = prior.class_names
        self.segmenter = segmenter
        self.optimizer, self.scheduler = optimizer, scheduler
        c = int(segmenter.num_classes)
        if len(class_names) != c:
            raise ValueError(
                f"the segmenter predicts {c} classes but the prior has {len(class_names)} ({', '.join(map(str, class_names))}); "
                "set model.segmenter.num_classes=${prior.num_classes} (the default) or choose the matching prior"
            )
        if class_weights is not None and len(class_weights) != c:
            raise ValueError(f"module.class_weights has {len(class_weights)} entries; the prior has {c} classes")
        self.register_buffer(
            "class_weight", None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        )
        self.class_names = [str(n) for n in class_names]

        def metrics() -> MetricCollection:
            return MetricCollection(
                {
                    "iou": MulticlassJaccardIndex(c, average="none", ignore_index=VOID_LABEL),
                    "acc": MulticlassAccuracy(c, average="micro", ignore_index=VOID_LABEL),
                    "ece": MulticlassCalibrationError(c, n_bins=ece_bins, norm="l1", ignore_index=VOID_LABEL),
                }
            )

        self.metrics = nn.ModuleDict({"val": metrics(), "test": metrics()})
        # pixels of each class in the targets: classes absent from a split are left out of its mean IoU
        self.register_buffer("seen", torch.zeros(2, c), persistent=False)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """LR RGB (N, 3, h, w) in [0, 1] -> class probabilities (N, C, 4h, 4w)."""
        return self.segmenter(lr)

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            logits.float(),
            labels.long(),
            weight=self.class_weight,
            ignore_index=VOID_LABEL,
            label_smoothing=self.hparams.label_smoothing,
        )

    @trusted
    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.loss(self.segmenter.logits(batch["lr"]), batch["labels"])
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["lr"].shape[0])
        return loss

    def _eval_step(self, batch: dict, stage: str) -> None:
        logits = self.segmenter.logits(batch["lr"]).float()
        labels = batch["labels"].long()
        self.log(f"{stage}/loss", self.loss(logits, labels), batch_size=labels.shape[0], sync_dist=True)
        self.metrics[stage].update(torch.softmax(logits, 1), labels)
        valid = labels[labels != VOID_LABEL]
        self.seen[0 if stage == "val" else 1] += torch.bincount(valid.flatten(), minlength=self.seen.shape[1]).float()

    @trusted
    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    @trusted
    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _log_epoch(self, stage: str) -> None:
        values = self.metrics[stage].compute()
        self.metrics[stage].reset()
        row = 0 if stage == "val" else 1
        seen = self.trainer.strategy.reduce(self.seen[row].clone(), reduce_op="sum") > 0
        self.seen[row].zero_()
        iou = values["iou"]
        self.log(f"{stage}/miou", iou[seen].mean() if seen.any() else torch.tensor(0.0), prog_bar=stage == "val")
        self.log(f"{stage}/acc", values["acc"])
        self.log(f"{stage}/ece", values["ece"])
        for i, name in enumerate(self.class_names):
            if seen[i]:
                self.log(f"{stage}/iou/{name}", iou[i])

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    def configure_optimizers(self):
        opt = self.optimizer(params=self.segmenter.parameters())
        if self.scheduler is None:
            return opt
        extra = {}
        if "total_steps" in getattr(self.scheduler, "keywords", {}) and self.scheduler.keywords["total_steps"] is None:
            # a schedule over the whole run (OneCycleLR) left at null: the run's length, from the trainer
            extra["total_steps"] = int(self.trainer.estimated_stepping_batches)
        scheduler = self.scheduler(optimizer=opt, **extra)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    #: the file name ``train()`` exports to unless ``export_name`` says otherwise
    export_name = "segmenter.pth"

    def export(self, path: str | Path) -> Path:
        """Write the trained segmenter to ``path``, a prior checkpoint (``prior=learned prior.weights=PATH``)
        recording its architecture, classes and colours."""
        export_segmenter(self.segmenter, path, self.prior.class_names, self.prior.colors)
        return Path(path)
