"""The SR papers' test sets: where each lives under ``benchmark_root``, how its files are laid out, and how it is
scored (``eval.py benchmark=set5,set14 benchmark_root=/data/sr``).

Every set follows the papers' protocol: the HR is cut to a multiple of the scale (modcrop), the LR is the set's
own bicubic LR folder when it has one, else MATLAB-bicubic x1/scale of the cut HR rounded to 8 bits
(``imresize``), and ``scale`` pixels of border are cropped before PSNR-Y / SSIM-Y (and the no-reference
metrics, PIRM's shave). A set is one entry of ``SETS``; a folder layout is one entry of ``LAYOUTS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError
from ..data.io import scan_images


@dataclass(frozen=True)
class Layout:
    """How one distribution stores a set: the HR folder, its LR folders (``{scale}`` filled in), which HR files are
    images of the set (``hr_suffix``: a stem ending, e.g. ``_HR``), and the LR's names (``InputReader.lr_names``)."""

    name: str
    hr: str
    lr: tuple[str, ...] = ()
    lr_names: tuple[str, ...] = ("{stem}",)
    hr_suffix: str = ""


LAYOUTS = (
    Layout("BasicSR (GTmod12 / LRbicx4)", "GTmod12", ("LRbicx{scale}",)),
    Layout(
        "HR / LR_bicubic/X4",
        "HR",
        ("LR_bicubic/X{scale}", "LR_bicubic/x{scale}", "LR/X{scale}", "LR"),
        ("{stem}", "{stem}x{scale}"),
    ),
    Layout("DIV2K", "DIV2K_valid_HR", ("DIV2K_valid_LR_bicubic/X{scale}",), ("{stem}x{scale}",)),
    Layout("SelfExSR (image_SRF_4/*_HR, *_LR)", "image_SRF_{scale}", ("image_SRF_{scale}",), ("{base}_LR",), "_HR"),
    Layout("images in the set's folder", "."),
)


@dataclass(frozen=True)
class BenchmarkSet:
    """A test set: its name on the command line, the folder names it ships under, and whether its images have
    categories (``by_category``: OST300's, from class subfolders or a ``labels/`` folder of label maps)."""

    name: str
    folders: tuple[str, ...]
    by_category: bool = False


SETS = {
    s.name: s
    for s in (
        BenchmarkSet("set5", ("Set5", "set5")),
        BenchmarkSet("set14", ("Set14", "set14")),
        BenchmarkSet("bsd100", ("BSD100", "BSDS100", "B100", "bsd100")),
        BenchmarkSet("urban100", ("Urban100", "urban100")),
        BenchmarkSet("general100", ("General100", "general100")),
        BenchmarkSet("div2k_val", ("DIV2K_valid", "DIV2K_val", "DIV2K", "div2k_val")),
        BenchmarkSet("ost300", ("OST300", "OutdoorSceneTest300", "ost300"), by_category=True),
    )
}


@dataclass
class ResolvedSet:
    """A set found on disk: its HR files, LR folder (None: made from the HR), LR names, and categories."""

    spec: BenchmarkSet
    root: Path
    layout: Layout
    files: list[Path]
    lr_folder: Path | None
    labels: Path | None
    categories: dict[Path, str]


def set_names(value) -> list[str]:
    """``benchmark`` as set names; an unknown one is a ``ConfigError`` listing ``SETS``."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    names = [str(n).strip().lower() for n in items if str(n).strip()]
    unknown = [n for n in names if n not in SETS]
    if unknown or not names:
        raise ConfigError(
            f"benchmark={value}: unknown set {', '.join(unknown) or '(none)'}; choose from {', '.join(SETS)}"
        )
    return names


def find_set(spec: BenchmarkSet, root: Path, scale: int) -> ResolvedSet:
    """Set ``spec`` under ``root``: the first of its folder names that exists and the first layout whose HR folder is
    there; a ``FileNotFoundError`` naming what was looked for otherwise (the other sets go on)."""
    folder = next((root / f for f in spec.folders if (root / f).is_dir()), None)
    if folder is None:
        raise FileNotFoundError(f"no folder {' or '.join(spec.folders)} under {root}")
    for layout in LAYOUTS:
        hr_dir = folder / layout.hr.format(scale=scale)
        if not hr_dir.is_dir():
            continue
        categories: dict[Path, str] = {}
        if spec.by_category and layout.hr == "." and not scan_images(hr_dir)[0]:
            for sub in sorted(p for p in hr_dir.iterdir() if p.is_dir() and p.name not in ("labels", "LR")):
                categories |= {f: sub.name for f in scan_images(sub)[0]}
            files = sorted(categories)
        else:
            files = [f for f in scan_images(hr_dir)[0] if f.stem.endswith(layout.hr_suffix)]
        if not files:
            continue
        lr = next(
            (folder / p.format(scale=scale) for p in layout.lr if (folder / p.format(scale=scale)).is_dir()), None
        )
        labels = folder / "labels" if spec.by_category and (folder / "labels").is_dir() else None
        return ResolvedSet(spec, folder, layout, files, lr, labels, categories)
    raise FileNotFoundError(
        f"{folder}: no HR images in any known layout ({'; '.join(f'{x.name}: {x.hr}/' for x in LAYOUTS)})"
    )
