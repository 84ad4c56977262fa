"""Lightning glue: thin modules and callbacks over the plain networks in ``sftgan_lit.models``."""

from .callbacks import PreemptionCheckpoint, ValidationImages, WeightSyncCheck
from .ema import EMA
from .estimator_module import EstimatorModule
from .segmenter_module import SegmenterModule
from .sftgan_module import NonFiniteLossError, SFTGANModule

__all__ = [
    "EMA",
    "EstimatorModule",
    "NonFiniteLossError",
    "PreemptionCheckpoint",
    "SFTGANModule",
    "SegmenterModule",
    "ValidationImages",
    "WeightSyncCheck",
]
