"""Priors: categorical class probabilities, with continuous channels stacked after them; one concept for training, preparation and inference (see ``base.Prior``)."""

from .base import Prior, SegmentOptions, UniformPrior
from .channels import CHANNELS, Channel, parse_channels
from .edits import EditedPrior, PriorEdits, class_mask_from_image, parse_remap
from .labels import LabelPrior
from .maps import ChannelMap, CoarseLogitsPrior, DenseProbs, LabelPriorMap, PriorMap, StackedPriorMap, UniformPriorMap
from .segmenter import SegmenterPrior, segment_image
from .validation import PriorError, validate_probs

__all__ = [
    "CHANNELS",
    "Channel",
    "ChannelMap",
    "StackedPriorMap",
    "parse_channels",
    "CoarseLogitsPrior",
    "DenseProbs",
    "EditedPrior",
    "LabelPrior",
    "LabelPriorMap",
    "Prior",
    "PriorEdits",
    "PriorError",
    "PriorMap",
    "SegmentOptions",
    "SegmenterPrior",
    "UniformPrior",
    "UniformPriorMap",
    "class_mask_from_image",
    "parse_remap",
    "segment_image",
    "validate_probs",
]
