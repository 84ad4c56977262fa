"""Degradation models: how an LR is made from an HR for training, from MATLAB bicubic (the paper's) to
Real-ESRGAN's second-order model of real photos, and the primitives they are made of.

Kernels (numpy, as BasicSR's ``basicsr/data/degradations.py`` names them): ``bivariate_gaussian``,
``bivariate_generalized_gaussian``, ``bivariate_plateau``, ``circular_lowpass_kernel``. On the device
(torch, batched): ``filter2d``, ``usm_sharp``, ``gaussian_noise``, ``poisson_noise``, ``jpeg``. Models:
``Bicubic``, ``SecondOrder`` (``degradation=realesrgan``), ``Mapped`` (``degradation=mapped``: strengths known per pixel), by name in ``DEGRADATIONS``.
"""

from .base import Degradation
from .bicubic import Bicubic, BicubicSchema, bicubic_lr
from .filters import RESIZE_MODES, filter2d, reflect_pad, resize, usm_sharp
from .jpeg import jpeg, quantization_tables
from .kernels import (
    KERNEL_TYPES,
    bivariate_gaussian,
    bivariate_generalized_gaussian,
    bivariate_plateau,
    circular_lowpass_kernel,
    mesh_grid,
    random_mixed_kernel,
    sigma_matrix2,
)
from .mapped import Mapped, MappedSchema, noise_field
from .noise import gaussian_noise, poisson_noise
from .registry import DEGRADATIONS, check_degradation, make_degradation
from .second_order import BlurSchema, FinalSchema, RealESRGANSchema, SecondOrder, StageSchema

__all__ = [
    "DEGRADATIONS",
    "KERNEL_TYPES",
    "RESIZE_MODES",
    "Bicubic",
    "BicubicSchema",
    "BlurSchema",
    "Degradation",
    "FinalSchema",
    "Mapped",
    "MappedSchema",
    "RealESRGANSchema",
    "SecondOrder",
    "StageSchema",
    "bicubic_lr",
    "bivariate_gaussian",
    "bivariate_generalized_gaussian",
    "bivariate_plateau",
    "check_degradation",
    "circular_lowpass_kernel",
    "filter2d",
    "gaussian_noise",
    "jpeg",
    "make_degradation",
    "mesh_grid",
    "noise_field",
    "poisson_noise",
    "quantization_tables",
    "random_mixed_kernel",
    "reflect_pad",
    "resize",
    "sigma_matrix2",
    "usm_sharp",
]
