"""The nodes: thin ComfyUI adapters over ``sftgan_lit.inference.comfyui`` (which does the work without ComfyUI).

ComfyUI's modules (``folder_paths``, ``comfy.model_management``, ``comfy.utils``) are used when the pack runs
inside ComfyUI; outside it (tests, scripts) the nodes run on the CPU in fp32 with no model folders.
"""

from __future__ import annotations

import logging
import os

import torch

from sftgan_lit.extras import MissingExtraError
from sftgan_lit.inference import comfyui as core
from sftgan_lit.inference import spandrel_support

log = logging.getLogger("comfyui_sftgan")

FOLDER = "sftgan"  # ComfyUI/models/sftgan: segmenters, estimators, pipelines (generators also in upscale_models)
UPSCALE_FOLDER = "upscale_models"
NONE = "none"
CATEGORY = "image/upscaling/SFTGAN"

try:  # register SFTGAN with spandrel: the stock upscale-model nodes then load this package's files
    spandrel_support.install()
except MissingExtraError as err:  # spandrel missing: the stock nodes cannot load SFTGAN files; these nodes still can
    log.warning("SFTGAN not registered with spandrel: %s", err)


def _folder_paths():
    try:
        import folder_paths
    except ImportError:
        return None
    if FOLDER not in getattr(folder_paths, "folder_names_and_paths", {}):
        folder_paths.add_model_folder_path(FOLDER, os.path.join(folder_paths.models_dir, FOLDER))
    return folder_paths


def _comfy():
    """ComfyUI's model management and utils modules, or (None, None) outside ComfyUI."""
    try:
        import comfy.model_management as management
        import comfy.utils as utils
    except ImportError:
        return None, None
    return management, utils


def _files(folder: str) -> list[str]:
    paths = _folder_paths()
    if paths is None:
        return []
    try:
        return list(paths.get_filename_list(folder))
    except KeyError:
        return []


def _resolve(name: str, folders: tuple[str, ...], what: str) -> str:
    """The file ``name`` of ComfyUI's model folders; a name found in two folders (two different files) is refused."""
    paths = _folder_paths()
    if paths is None:
        if os.path.isfile(name):  # outside ComfyUI: a path
            return name
        raise core.NodeInputError(f"{what}={name}: file not found (outside ComfyUI give a path)")
    found = []
    for folder in folders:
        try:
            path = paths.get_full_path(folder, name)
        except KeyError:
            path = None
        if path and os.path.realpath(path) not in [os.path.realpath(p) for p in found]:
            found.append(path)
    if not found:
        raise core.NodeInputError(f"{what}={name}: not in ComfyUI's models/{' or models/'.join(folders)}")
    if len(found) > 1:
        raise core.NodeInputError(f"{what}={name}: two different files have this name: {', '.join(found)}; rename one")
    return found[0]


def _device_and_precision(precision: str) -> tuple[torch.device, str]:
    management, _ = _comfy()
    if management is None:
        device = torch.device("cpu")
        return device, "fp32" if precision == "auto" else precision
    device = management.get_torch_device()
    if precision == "auto":
        if management.should_use_bf16(device):
            precision = "bf16"
        elif management.should_use_fp16(device):
            precision = "fp16"
        else:
            precision = "fp32"
    return device, precision


def _progress():
    """``progress(done, total)``: ComfyUI's progress bar and interrupt check between batches of tiles."""
    management, utils = _comfy()
    bar = {}

    def progress(done: int, total: int) -> None:
        if management is not None:
            management.throw_exception_if_processing_interrupted()
        if utils is not None:
            if "bar" not in bar:
                bar["bar"] = utils.ProgressBar(total)
            bar["bar"].update_absolute(done, total)

    return progress


class LoadSFTGAN:
    """A pipeline file (``sftgan-export``), or a generator with a segmenter (and an estimator) from ``models/sftgan``."""

    @classmethod
    def INPUT_TYPES(cls):
        models = sorted(set(_files(UPSCALE_FOLDER)) | set(_files(FOLDER)))
        extras = [NONE, *_files(FOLDER)]
        return {
            "required": {
                "model_name": (models, {"tooltip": "a pipeline export or an SFTGAN generator"}),
                "segmenter_name": (extras, {"tooltip": "for a generator file: its prior's segmenter (none: uniform)"}),
            },
            "optional": {
                "estimator_name": (extras, {"tooltip": "for a generator with continuous channels: the estimator"}),
            },
        }

    RETURN_TYPES = ("SFTGAN_MODEL",)
    RETURN_NAMES = ("sftgan_model",)
    FUNCTION = "load"
    CATEGORY = CATEGORY

    def load(self, model_name, segmenter_name=NONE, estimator_name=NONE):
        path = _resolve(model_name, (FOLDER, UPSCALE_FOLDER), "model_name")
        segmenter = _resolve(segmenter_name, (FOLDER,), "segmenter_name") if segmenter_name != NONE else None
        estimator = (
            _resolve(estimator_name, (FOLDER,), "estimator_name") if estimator_name not in (None, NONE) else None
        )
        model = core.load_model(path, segmenter, estimator)
        log.info("%s: %s", model_name, core.describe(model))
        return (model,)


class SFTGANPrior:
    """The prior the upscale node feeds the generator: the model's (its segmenter on the whole image) or
    uniform, with regions painted by a MASK and a class, an IMAGE painted in the class colours, an override
    (the whole image one class) or a class remap. Chain several to layer masks."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "sftgan_model": ("SFTGAN_MODEL",),
                "source": (["model", "uniform"], {"default": "model"}),
            },
            "optional": {
                "prior": ("SFTGAN_PRIOR", {"tooltip": "an earlier prior to paint over (its source is kept)"}),
                "mask": ("MASK", {"tooltip": "LR or output size; >= 0.5: mask_class"}),
                "mask_class": ("STRING", {"default": "", "tooltip": "a class of the model, e.g. building"}),
                "painted": ("IMAGE", {"tooltip": "painted in the class colours, white keeps; LR or output size"}),
                "override": ("STRING", {"default": "", "tooltip": "one class for the whole image"}),
                "remap": ("STRING", {"default": "", "tooltip": "source:target,... class names"}),
            },
        }

    RETURN_TYPES = ("SFTGAN_PRIOR",)
    RETURN_NAMES = ("prior",)
    FUNCTION = "make"
    CATEGORY = CATEGORY

    def make(
        self, sftgan_model, source="model", prior=None, mask=None, mask_class="", painted=None, override="", remap=""
    ):
        made = core.make_prior(
            sftgan_model, source, prior, mask, mask_class or None, painted, override or None, remap or None
        )
        return (made,)


class SFTGANUpscale:
    """IMAGE -> IMAGE as ``predict.py``: the prior from the whole image, then the generator in tiles whose
    overlap is its receptive field (equal to a whole-image pass)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "sftgan_model": ("SFTGAN_MODEL",),
                "image": ("IMAGE",),
            },
            "optional": {
                "prior": ("SFTGAN_PRIOR",),
                "noise_level": (
                    "FLOAT",
                    {
                        "default": -1.0,
                        "min": -1.0,
                        "max": 50.0,
                        "step": 0.5,
                        "tooltip": "8-bit levels for a model with a noise channel; -1: the file's or estimated",
                    },
                ),
                "noise_map": ("MASK", {"tooltip": "per-pixel noise level: black 0, white 50 levels"}),
                "tile": (
                    "INT",
                    {"default": 256, "min": 0, "max": 4096, "step": 8, "tooltip": "LR pixels; 0: whole image"},
                ),
                "precision": (["auto", "fp32", "bf16", "fp16"], {"default": "auto"}),
                "fidelity_model": ("SFTGAN_MODEL", {"tooltip": "the fidelity end for strength < 1"}),
                "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.05}),
            },
        }

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    FUNCTION = "upscale"
    CATEGORY = CATEGORY

    def upscale(
        self,
        sftgan_model,
        image,
        prior=None,
        noise_level=-1.0,
        noise_map=None,
        tile=256,
        precision="auto",
        fidelity_model=None,
        strength=1.0,
    ):
        device, precision = _device_and_precision(precision)
        out = core.upscale(
            sftgan_model,
            image,
            prior,
            noise_level=None if noise_level is None or noise_level < 0 else float(noise_level),
            noise_map=noise_map,
            tile=int(tile),
            precision=precision,
            device=device,
            progress=_progress(),
            fidelity=fidelity_model,
            strength=float(strength),
        )
        return (out,)


NODE_CLASS_MAPPINGS = {
    "LoadSFTGAN": LoadSFTGAN,
    "SFTGANPrior": SFTGANPrior,
    "SFTGANUpscale": SFTGANUpscale,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "LoadSFTGAN": "Load SFTGAN",
    "SFTGANPrior": "SFTGAN prior",
    "SFTGANUpscale": "SFTGAN upscale",
}
