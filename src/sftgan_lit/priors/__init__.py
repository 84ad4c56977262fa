"""Categorical priors: classes, colours and where per-pixel class probabilities come from."""

from .base import VOID_LABEL, Prior, PriorError, UniformPrior, validate_probs
from .labels import LabelPrior
from .segmenter import SegmenterPrior

__all__ = ["VOID_LABEL", "LabelPrior", "Prior", "PriorError", "SegmenterPrior", "UniformPrior", "validate_probs"]
