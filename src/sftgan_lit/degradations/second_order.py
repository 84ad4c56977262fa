"""``degradation=realesrgan``: Real-ESRGAN's second-order degradation model (Wang et al., ICCVW 2021), the
LR that real photos carry: two rounds of blur, resize, noise and JPEG, then a final resize with a sinc filter
and a JPEG in random order, rounded to 8 bits.

The defaults are those of Real-ESRGAN's ``options/train_realesrnet_x4plus.yml`` (v0.3.0) and of the values its
``RealESRGANDataset`` / ``RealESRNetModel`` hard-code (kernel sizes 7-21, sinc cut-offs, rotation range, the
0.5 order of the last two steps); each is a key here (``conf/degradation/realesrgan.yaml``; the docs' table
maps them to Real-ESRGAN's names). One difference, on purpose: Real-ESRGAN draws the resize and the order once
per batch, because its batched tensors must share a size, and mixes batches in a training-pair pool to win back
diversity; here every sample draws all of its own parameters in the data worker (``draw``), so a sample's LR
depends on its draw alone (exact resume; the streaming store gives the same samples), and the pool
(``pool_size``) is kept for the recipe's mixing across batches.

On the device (``__call__``) the first blur runs batched (every HR crop has one size); the rest runs image by
image, since each image has its own sizes from there on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..config import is_int, merged, require
from .base import KEY, Degradation
from .bicubic import bicubic_lr
from .filters import RESIZE_MODES, filter2d, resize, usm_sharp
from .jpeg import jpeg
from .kernels import KERNEL_TYPES, circular_lowpass_kernel, pad_kernel, pulse, random_mixed_kernel
from .noise import gaussian_noise, poisson_noise

PI = math.pi
KERNEL_SIZES = (7, 9, 11, 13, 15, 17, 19, 21)  # Real-ESRGAN's kernel_range: 2 * v + 1 for v in 3 .. 10


def _values(*v):
    return field(default_factory=lambda: list(v))


@dataclass
class BlurSchema:
    """One stage's blur kernel, drawn per sample: a sinc with ``sinc_prob``, else one of ``kernel_list``."""

    prob: float = 1.0  # Real-ESRGAN always blurs in the first stage; second_blur_prob in the second
    kernel_sizes: list[int] = _values(*KERNEL_SIZES)  # odd; drawn uniformly
    kernel_list: list[str] = _values(*KERNEL_TYPES)
    kernel_prob: list[float] = _values(0.45, 0.25, 0.12, 0.03, 0.12, 0.03)
    sigma: list[float] = _values(0.2, 3.0)  # blur_sigma: both axes' standard deviation, HR pixels
    rotation: list[float] = _values(-PI, PI)  # radians (anisotropic kernels)
    betag_range: list[float] = _values(0.5, 4.0)  # generalised Gaussian shape
    betap_range: list[float] = _values(1.0, 2.0)  # plateau shape
    sinc_prob: float = 0.1
    sinc_cutoff: list[float] = _values(PI / 3, PI)  # radians, kernels smaller than sinc_large_size
    sinc_cutoff_large: list[float] = _values(PI / 5, PI)  # radians, kernels of sinc_large_size and more
    sinc_large_size: int = 13


@dataclass
class StageSchema:
    """One round of the degradation: blur, resize, noise, JPEG."""

    blur: BlurSchema = field(default_factory=BlurSchema)
    resize_prob: list[float] = _values(0.2, 0.7, 0.1)  # up, down, keep
    resize_range: list[float] = _values(0.15, 1.5)  # down: uniform in [low, 1]; up: uniform in [1, high]
    resize_modes: list[str] = _values(*RESIZE_MODES)  # drawn uniformly
    gaussian_noise_prob: float = 0.5  # else Poisson noise
    noise_range: list[float] = _values(1.0, 30.0)  # Gaussian sigma, 8-bit levels
    poisson_scale_range: list[float] = _values(0.05, 3.0)
    gray_noise_prob: float = 0.4
    jpeg_range: list[float] = _values(30.0, 95.0)  # JPEG quality, drawn uniformly


def _second_stage() -> StageSchema:
    return StageSchema(
        blur=BlurSchema(prob=0.8, sigma=[0.2, 1.5]),
        resize_prob=[0.3, 0.4, 0.3],
        resize_range=[0.3, 1.2],
        noise_range=[1.0, 25.0],
        poisson_scale_range=[0.05, 2.5],
    )


@dataclass
class FinalSchema:
    """The last step: resize to the LR size with a sinc filter, and a JPEG, in random order."""

    sinc_prob: float = 0.8  # final_sinc_prob
    kernel_sizes: list[int] = _values(*KERNEL_SIZES)
    sinc_cutoff: list[float] = _values(PI / 3, PI)
    resize_modes: list[str] = _values(*RESIZE_MODES)
    jpeg_first_prob: float = 0.5  # JPEG before [resize + sinc] (else after)


@dataclass
class RealESRGANSchema:
    """``degradation=realesrgan`` (``data.degradation``): Real-ESRGAN's second-order degradation model."""

    kind: str = "realesrgan"
    first: StageSchema = field(default_factory=StageSchema)
    second: StageSchema = field(default_factory=_second_stage)
    final: FinalSchema = field(default_factory=FinalSchema)
    gt_usm: bool = True  # the pixel/perceptual target and the LR's source are the USM-sharpened HR (training)
    usm_weight: float = 0.5
    usm_radius: int = 50  # Gaussian taps (made odd)
    usm_threshold: float = 10.0  # 8-bit levels
    pool_size: int = 180  # queue_size: samples in the training-pair pool (0: none); a multiple of data.batch_size
    clean_prob: float = 0.0  # a sample's LR is the clean MATLAB-bicubic one instead (not in Real-ESRGAN: 0)


def _probability(key: str, value) -> None:
    require(isinstance(value, int | float) and 0 <= value <= 1, key, value, "a probability in [0, 1]")


def _distribution(key: str, values, length: int | None = None) -> None:
    ok = (
        len(values) > 0
        and (length is None or len(values) == length)
        and all(isinstance(v, int | float) and 0 <= v <= 1 for v in values)
        and abs(sum(values) - 1) < 1e-6
    )
    n = f"{length} " if length else ""
    require(ok, key, list(values), f"{n}probabilities in [0, 1] that sum to 1")


def _range(key: str, values, low: float, high: float, what: str, open_low: bool = False) -> None:
    ok = (
        len(values) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values)
        and (values[0] > low if open_low else values[0] >= low)
        and values[1] <= high
        and values[0] <= values[1]
    )
    require(ok, key, list(values), f"[low, high] with {what}")


def _kernel_sizes(key: str, values) -> None:
    ok = len(values) > 0 and all(is_int(v) and v >= 1 and v % 2 == 1 for v in values)
    require(ok, key, list(values), "a non-empty list of odd kernel sizes")


def _modes(key: str, values) -> None:
    ok = len(values) > 0 and all(v in RESIZE_MODES for v in values)
    require(ok, key, list(values), f"a non-empty list of {', '.join(RESIZE_MODES)}")


def _check_blur(b, key: str) -> None:
    _probability(f"{key}.prob", b.prob)
    _kernel_sizes(f"{key}.kernel_sizes", b.kernel_sizes)
    bad = [k for k in b.kernel_list if k not in KERNEL_TYPES]
    require(
        not bad and len(b.kernel_list) > 0, f"{key}.kernel_list", list(b.kernel_list), f"of {', '.join(KERNEL_TYPES)}"
    )
    _distribution(f"{key}.kernel_prob", b.kernel_prob, len(b.kernel_list))
    _range(f"{key}.sigma", b.sigma, 0, math.inf, "0 < low <= high (pixels)", open_low=True)
    _range(f"{key}.rotation", b.rotation, -math.inf, math.inf, "low <= high (radians)")
    _range(f"{key}.betag_range", b.betag_range, 0, math.inf, "0 < low <= 1 <= high", open_low=True)
    _range(f"{key}.betap_range", b.betap_range, 0, math.inf, "0 < low <= 1 <= high", open_low=True)
    for name in ("betag_range", "betap_range"):  # drawn below or above 1 with equal odds
        lo, hi = getattr(b, name)
        require(lo <= 1 <= hi, f"{key}.{name}", [lo, hi], "0 < low <= 1 <= high")
    _probability(f"{key}.sinc_prob", b.sinc_prob)
    for name in ("sinc_cutoff", "sinc_cutoff_large"):
        _range(f"{key}.{name}", getattr(b, name), 0, PI, "0 < low <= high <= pi (radians)", open_low=True)
    require(
        is_int(b.sinc_large_size) and b.sinc_large_size >= 1,
        f"{key}.sinc_large_size",
        b.sinc_large_size,
        "an integer >= 1",
    )


def _check_stage(s, key: str) -> None:
    _check_blur(s.blur, f"{key}.blur")
    _distribution(f"{key}.resize_prob", s.resize_prob, 3)
    _range(f"{key}.resize_range", s.resize_range, 0, math.inf, "0 < low <= 1 <= high", open_low=True)
    require(
        s.resize_range[0] <= 1 <= s.resize_range[1], f"{key}.resize_range", list(s.resize_range), "0 < low <= 1 <= high"
    )
    _modes(f"{key}.resize_modes", s.resize_modes)
    _probability(f"{key}.gaussian_noise_prob", s.gaussian_noise_prob)
    _range(f"{key}.noise_range", s.noise_range, 0, math.inf, "0 <= low <= high (8-bit levels)")
    _range(f"{key}.poisson_scale_range", s.poisson_scale_range, 0, math.inf, "0 <= low <= high")
    _probability(f"{key}.gray_noise_prob", s.gray_noise_prob)
    _range(f"{key}.jpeg_range", s.jpeg_range, 1, 100, "1 <= low <= high <= 100 (JPEG quality)")


def _draw_blur(rng: np.random.Generator, b) -> tuple[bool, np.ndarray]:
    """(whether this stage blurs, its kernel padded to the stage's largest size)."""
    pad = max(b.kernel_sizes)
    if rng.uniform() >= b.prob:
        return False, pulse(pad)
    size = int(b.kernel_sizes[rng.integers(len(b.kernel_sizes))])
    if rng.uniform() < b.sinc_prob:
        cutoff = rng.uniform(*(b.sinc_cutoff if size < b.sinc_large_size else b.sinc_cutoff_large))
        return True, circular_lowpass_kernel(float(cutoff), size, pad_to=pad)
    kernel = random_mixed_kernel(
        rng, b.kernel_list, b.kernel_prob, size, b.sigma, b.rotation, b.betag_range, b.betap_range
    )
    return True, pad_kernel(kernel, pad)


def _draw_stage(rng: np.random.Generator, s, i: int) -> dict:
    way = int(rng.choice(3, p=np.asarray(s.resize_prob, dtype=np.float64)))  # up, down, keep
    scale = (rng.uniform(1, s.resize_range[1]), rng.uniform(s.resize_range[0], 1), 1.0)[way]
    return {
        f"resize{i}": float(scale),
        f"mode{i}": str(s.resize_modes[rng.integers(len(s.resize_modes))]),
        f"gaussian{i}": bool(rng.uniform() < s.gaussian_noise_prob),
        f"sigma{i}": float(rng.uniform(*s.noise_range)),
        f"poisson{i}": float(rng.uniform(*s.poisson_scale_range)),
        f"gray{i}": bool(rng.uniform() < s.gray_noise_prob),
        f"quality{i}": float(rng.uniform(*s.jpeg_range)),
    }


def _check(cfg: RealESRGANSchema, key: str) -> None:
    """Every value of ``cfg`` in range, or a ``ConfigError`` naming ``<key>.<field>``."""
    _check_stage(cfg.first, f"{key}.first")
    _check_stage(cfg.second, f"{key}.second")
    f = cfg.final
    _probability(f"{key}.final.sinc_prob", f.sinc_prob)
    _kernel_sizes(f"{key}.final.kernel_sizes", f.kernel_sizes)
    _range(f"{key}.final.sinc_cutoff", f.sinc_cutoff, 0, PI, "0 < low <= high <= pi (radians)", open_low=True)
    _modes(f"{key}.final.resize_modes", f.resize_modes)
    _probability(f"{key}.final.jpeg_first_prob", f.jpeg_first_prob)
    require(isinstance(cfg.gt_usm, bool), f"{key}.gt_usm", cfg.gt_usm, "true or false")
    require(
        isinstance(cfg.usm_weight, int | float) and cfg.usm_weight >= 0, f"{key}.usm_weight", cfg.usm_weight, ">= 0"
    )
    require(is_int(cfg.usm_radius) and cfg.usm_radius >= 1, f"{key}.usm_radius", cfg.usm_radius, "an integer >= 1")
    require(
        isinstance(cfg.usm_threshold, int | float) and cfg.usm_threshold >= 0,
        f"{key}.usm_threshold",
        cfg.usm_threshold,
        ">= 0 (8-bit levels)",
    )
    require(
        is_int(cfg.pool_size) and cfg.pool_size >= 0,
        f"{key}.pool_size",
        cfg.pool_size,
        "an integer >= 0 (0: no pool)",
    )
    _probability(f"{key}.clean_prob", cfg.clean_prob)


class SecondOrder(Degradation):
    """Real-ESRGAN's second-order degradation (the module docstring); the arguments are ``RealESRGANSchema``'s."""

    name = "realesrgan"
    schema = RealESRGANSchema

    def __init__(
        self,
        scale: int,
        kind: str = "realesrgan",
        first=None,
        second=None,
        final=None,
        gt_usm: bool = True,
        usm_weight: float = 0.5,
        usm_radius: int = 50,
        usm_threshold: float = 10.0,
        pool_size: int = 180,
        clean_prob: float = 0.0,
    ) -> None:
        super().__init__(scale)
        given = {"first": first, "second": second, "final": final}
        cfg = merged(
            RealESRGANSchema(),
            {
                **{k: v for k, v in given.items() if v is not None},
                "gt_usm": gt_usm,
                "usm_weight": usm_weight,
                "usm_radius": usm_radius,
                "usm_threshold": usm_threshold,
                "pool_size": pool_size,
                "clean_prob": clean_prob,
            },
            KEY,
        )
        _check(cfg, KEY)
        self.cfg = cfg
        self.pool_size = int(pool_size)

    # ------------------------------------------------------------------ in the workers
    def draw(self, rng: np.random.Generator) -> dict:
        """One sample's parameters, drawn from ``rng`` (the sample's own generator, in its data worker).

        Returns:
            ``{"kernel1", "kernel2", "sinc"}``: float32 ``(K, K)`` kernels of the two rounds and the last step (a
            pulse where none is drawn), and ``"steps"``: plain numbers (each round's resize factor and mode, noise
            kind, strength and greyness, JPEG quality; the last step's mode and order; the noise seed; ``clean``).
        """
        c = self.cfg
        blur1, k1 = _draw_blur(rng, c.first.blur)
        blur2, k2 = _draw_blur(rng, c.second.blur)
        f = c.final
        sinc = rng.uniform() < f.sinc_prob
        pad = max(f.kernel_sizes)
        if sinc:
            size = int(f.kernel_sizes[rng.integers(len(f.kernel_sizes))])
            k3 = circular_lowpass_kernel(float(rng.uniform(*f.sinc_cutoff)), size, pad_to=pad)
        else:
            k3 = pulse(pad)
        steps = {
            "blur1": blur1,
            "blur2": blur2,
            "sinc": bool(sinc),
            **_draw_stage(rng, c.first, 1),
            **_draw_stage(rng, c.second, 2),
            "final_mode": str(f.resize_modes[rng.integers(len(f.resize_modes))]),
            "jpeg_first": bool(rng.uniform() < f.jpeg_first_prob),
            "seed": int(rng.integers(2**62)),  # the sample's noise
            "clean": bool(rng.uniform() < c.clean_prob),
        }
        as_tensor = lambda k: torch.from_numpy(k.astype(np.float32))
        return {"kernel1": as_tensor(k1), "kernel2": as_tensor(k2), "sinc": as_tensor(k3), "steps": steps}

    # ------------------------------------------------------------------ on the device
    def __call__(self, hr: torch.Tensor, params: dict, training: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Degrade a batch on its device.

        Args:
            hr: ``(N, 3, H, W)`` RGB in [0, 1], H and W multiples of the scale.
            params: ``draw``'s parameters of the N samples, collated (kernels stacked ``(N, K, K)``, ``steps`` a list).
            training: sharpen the target and degrade the sharpened HR (``gt_usm``) only in training.

        Returns:
            The LR ``(N, 3, H/s, W/s)`` in [0, 1] on the 8-bit grid, and the USM-sharpened HR (the pixel and
            perceptual terms' target) or None.
        """
        c = self.cfg
        target = None
        source = hr
        if training and c.gt_usm:
            target = usm_sharp(hr, c.usm_weight, c.usm_radius, c.usm_threshold)
            source = target  # Real-ESRGAN degrades the sharpened ground truth
        h, w = hr.shape[-2:]
        s = self.scale
        steps = params["steps"]
        blurred = filter2d(source, params["kernel1"])  # one size: batched
        out = []
        for i, st in enumerate(steps):
            if st["clean"]:  # replaced by its bicubic LR below
                out.append(source.new_zeros((1, 3, h // s, w // s)))
                continue
            x = blurred[i : i + 1] if st["blur1"] else source[i : i + 1]
            g = torch.Generator(device=hr.device).manual_seed(st["seed"])
            x = self._stage(x, st, 1, None, g, compress=True)
            if st["blur2"]:
                x = filter2d(x, params["kernel2"][i : i + 1])
            size = (max(1, int(h / s * st["resize2"])), max(1, int(w / s * st["resize2"])))
            x = self._stage(x, st, 2, size, g, compress=False)
            if st["jpeg_first"]:
                x = jpeg(x, st["quality2"])
            out.append(resize(x, (h // s, w // s), st["final_mode"]))
        # every image has the LR size from here: the sinc filter (a pulse where none was drawn: the identity)
        # and the JPEG of the images whose JPEG comes last run batched
        x = filter2d(torch.cat(out), params["sinc"])
        last = [i for i, st in enumerate(steps) if not st["jpeg_first"]]
        if last:
            quality = torch.tensor([steps[i]["quality2"] for i in last], device=x.device)
            x[last] = jpeg(x[last], quality)
        clean = [i for i, st in enumerate(steps) if st["clean"]]
        if clean:
            x[clean] = bicubic_lr(source[clean], s)
        return (x.clamp(0, 1) * 255).round() / 255, target

    @staticmethod
    def _stage(x: torch.Tensor, st: dict, i: int, size, g: torch.Generator, compress: bool) -> torch.Tensor:
        """Round ``i``'s resize (to ``size``, or by its drawn factor), noise and, with ``compress``, JPEG."""
        x = resize(x, size, st[f"mode{i}"], scale=st[f"resize{i}"])
        if st[f"gaussian{i}"]:
            noise = gaussian_noise(x, st[f"sigma{i}"], st[f"gray{i}"], g)
        else:
            noise = poisson_noise(x, st[f"poisson{i}"], st[f"gray{i}"], g)
        x = (x + noise).clamp(0, 1)
        return jpeg(x, st[f"quality{i}"]) if compress else x

    def describe(self) -> str:
        return f"{self.name} (Real-ESRGAN second order; gt_usm={self.cfg.gt_usm}, pool_size={self.pool_size})"
