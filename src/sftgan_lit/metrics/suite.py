"""Which metrics one evaluation computes: PSNR-Y and SSIM-Y always; LPIPS, DISTS, NIQE and PI when their files are
on disk (``auto``) or because they were asked for (a list: one that cannot run is a failure, named).

Papers' direction of each: PSNR / SSIM higher is better; LPIPS / DISTS / NIQE / PI lower is better.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .fidelity import psnr_y, ssim_y
from .niqe import BLOCK as NIQE_BLOCK
from .niqe import NIQE
from .perceptual import dists_scorer, lpips_scorer
from .perceptual_index import MaScorer, perceptual_index

OPTIONAL = ("lpips", "dists", "niqe", "pi")  # what ``metrics=[...]`` may name (PSNR-Y / SSIM-Y always run)
LOWER_IS_BETTER = {"lpips", "dists", "niqe", "pi"}
NO_REFERENCE = {"niqe", "pi"}  # scored on the SR alone


@dataclass
class MetricSuite:
    """Per-image scorers ``{name: score(sr, hr, crop_border) -> (N,)}`` in report order, a line per optional
    metric (what runs, or why not), and the requested metrics that cannot run (``{name: why}``)."""

    scorers: dict[str, Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]]
    notes: list[str] = field(default_factory=list)
    missing: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.scorers)

    def too_small(self, size: tuple[int, int], crop_border: int) -> str | None:
        """Why an ``(H, W)`` image cannot be scored by every metric (SSIM's 11x11 window, NIQE's 96x96 block, after
        the border is cropped), or None."""
        need = {"SSIM": 11} | ({"NIQE": NIQE_BLOCK} if "niqe" in self.scorers else {})
        name, side = max(need.items(), key=lambda kv: kv[1])
        smallest = side + 2 * crop_border
        if min(size) < smallest:
            return f"{size[1]}x{size[0]} is too small to score: {name} needs {smallest}x{smallest} with a {crop_border} px border"
        return None

    def score(self, sr: torch.Tensor, hr: torch.Tensor, crop_border: int) -> dict[str, float]:
        """One image's scores: ``sr`` and ``hr`` ``(1, 3, H, W)`` RGB in [0, 1]."""
        out: dict[str, float] = {}
        for name, scorer in self.scorers.items():
            out[name] = float(scorer(sr, hr, crop_border)[0])
        if "pi" in out:  # scored from the two it is made of
            out["pi"] = float(perceptual_index(torch.tensor(out["pi"]), torch.tensor(out["niqe"])))
        return out


def _crop(x: torch.Tensor, border: int) -> torch.Tensor:
    return x[..., border:-border, border:-border] if border else x


def build_suite(
    requested: str | list[str] = "auto",
    lpips_net: str | None = "alex",
    lpips_weights: str | os.PathLike | None = None,
    dists_weights: str | os.PathLike | None = None,
    niqe_params: str | os.PathLike | None = None,
    ma_model: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
) -> MetricSuite:
    """The metrics of one evaluation.

    Args:
        requested: ``auto`` (each optional metric whose files are found) or a list of ``OPTIONAL`` names (one that
            cannot run lands in ``missing``).
        lpips_net: LPIPS's backbone (``alex``, ``vgg``, ``squeeze``; None: no LPIPS under ``auto``).
        lpips_weights / dists_weights: the backbones' files (None: torchvision's cache).
        niqe_params: NIQE's pristine model (None: the usual places, ``niqe.niqe_param_candidates``).
        ma_model: Ma et al.'s model for PI (pyiqa's NRQM).
        device: where LPIPS / DISTS run.

    Returns:
        The ``MetricSuite``.
    """
    explicit = requested != "auto"
    wanted = list(requested) if explicit else [m for m in OPTIONAL if m != "lpips" or lpips_net]
    unknown = sorted(set(wanted) - set(OPTIONAL))
    if unknown:
        raise ValueError(f"metrics: unknown {', '.join(unknown)}; choose from {', '.join(OPTIONAL)} (or auto)")
    scorers: dict = {
        "psnr_y": lambda sr, hr, b: psnr_y(sr, hr, b),
        "ssim_y": lambda sr, hr, b: ssim_y(sr, hr, b),
    }
    suite = MetricSuite(scorers)

    def learned(name, made, message):
        suite.notes.append(message)
        if made is None:
            suite.missing[name] = message
            return
        made = made.to(device)
        scorers[name] = lambda sr, hr, b: made(_crop(sr, b).to(device), _crop(hr, b).to(device)).cpu().double()

    if "lpips" in wanted:
        learned("lpips", *lpips_scorer(lpips_net or "alex", lpips_weights))
    if "dists" in wanted:
        learned("dists", *dists_scorer(dists_weights))
    niqe = None
    if "niqe" in wanted or "pi" in wanted:
        niqe, message = NIQE.from_file(niqe_params)
        if "niqe" in wanted or niqe is None:
            suite.notes.append(message)
        if niqe is None:
            suite.missing.update({m: message for m in ("niqe", "pi") if m in wanted})
            if "pi" in wanted:
                suite.notes.append("PI omitted: it is made of Ma et al.'s score and NIQE, and NIQE cannot run")
        elif "niqe" in wanted:
            scorers["niqe"] = lambda sr, hr, b: niqe(sr, b)
    if "pi" in wanted and niqe is not None:
        ma, message = MaScorer.from_file(ma_model)
        suite.notes.append(message)
        if ma is None:
            suite.missing["pi"] = message
        else:
            scorers.setdefault("niqe", lambda sr, hr, b: niqe(sr, b))
            scorers["pi"] = lambda sr, hr, b: ma(sr, b)  # Ma's score; ``score`` combines it with NIQE
    if not explicit:
        suite.missing.clear()  # auto: what is absent is omitted, named in the notes
    return suite
