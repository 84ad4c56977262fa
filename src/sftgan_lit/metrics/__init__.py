"""The metrics papers report for SR: full-reference fidelity (PSNR-Y, SSIM-Y: ``fidelity``), learned
perceptual distances (LPIPS, DISTS: ``perceptual``), no-reference naturalness (NIQE: ``niqe``; PI with the
Ma et al. model: ``perceptual_index``). Every network or model file is read from disk, never downloaded:
a metric whose file is absent is omitted, named, with where it was looked for."""

from .fidelity import PSNRY, SSIMY, psnr_y, rgb_to_y, ssim_y, y_8bit
from .niqe import NIQE, find_niqe_params, niqe, read_niqe_params
from .perceptual import DISTS, LPIPS, backbone_file, dists_scorer, lpips_backbone_path, lpips_metric, lpips_scorer
from .perceptual_index import MaScorer, perceptual_index
from .suite import LOWER_IS_BETTER, OPTIONAL, MetricSuite, build_suite

__all__ = [
    "LOWER_IS_BETTER",
    "OPTIONAL",
    "MetricSuite",
    "build_suite",
    "DISTS",
    "LPIPS",
    "NIQE",
    "PSNRY",
    "SSIMY",
    "MaScorer",
    "backbone_file",
    "dists_scorer",
    "find_niqe_params",
    "lpips_backbone_path",
    "lpips_metric",
    "lpips_scorer",
    "niqe",
    "perceptual_index",
    "psnr_y",
    "read_niqe_params",
    "rgb_to_y",
    "ssim_y",
    "y_8bit",
]
