"""SFTGAN as a spandrel architecture: ``install()`` registers it, then spandrel's own loader reads SFTGAN files::

    import spandrel
    from sftgan_lit.inference.spandrel_support import install

    install()                                   # or install(segmenter="segmentation_OST_bic.pth")
    model = spandrel.ModelLoader().load_from_file("SFTGAN_noBN_OST_bg.pth")
    sr = model(lr)                              # (1, 3, h, w) in [0, 1] -> (1, 3, 4h, 4w) in [0, 1]

Recognised: the released generator layouts (``SFTGAN_noBN_OST_bg.pth``, ``SFTGAN_torch.pth``), this
package's generator exports of every backbone (SFT-Net, SFT-RRDBNet, SFT-Compact), and its pipeline exports (``generator.*`` + ``segmenter.*`` tensors, in
``.pth`` or ``.safetensors``). spandrel hands an architecture only the tensors, so everything is read
from them: the generator's configuration, and the segmenter's (OutdoorSceneSeg's width and depth, or
LR-ASPP).

**Which prior the descriptor runs** (the call takes one image, the generator needs a prior):
- a pipeline file: its own segmenter;
- a generator-only file: the segmenter given to ``install(segmenter=PATH)`` when there is one, else the
  uniform prior (every class equally likely: the generator then behaves as if it had no semantic
  information; its textures are not class-specific). The descriptor's ``tags`` say which.

Descriptor: purpose ``SR``, scale from the generator (x1 to x4), 3 channels in and out, any size of at least
2x2 (``SizeRequirements(minimum=2)``), fp16 and bf16 supported. Tiling is ``DISCOURAGED`` when a
segmenter makes the prior (a tile sees less context, so its prior can differ) and ``SUPPORTED`` for the
uniform prior.
"""

from __future__ import annotations

import os

from ..models import architecture_of, generator_from_state_dict
from ..models.estimator import infer_estimator
from ..models.registry import infer_segmenter, recognise
from ..pipeline import SFTGANPipeline
from ..priors.channels import Channel
from ..state_dict import CheckpointError

ARCH_ID = "SFTGAN"
_settings: dict = {"segmenter": None}


def _split(state_dict) -> tuple[dict, dict, dict]:
    """The generator's, the segmenter's and the rest (estimator, continuous channels) of a generator-only or a
    pipeline state dict; the rest keeps its prefixes."""
    if any(k.startswith("generator.") for k in state_dict):
        gen = {k[len("generator.") :]: v for k, v in state_dict.items() if k.startswith("generator.")}
        seg = {k[len("segmenter.") :]: v for k, v in state_dict.items() if k.startswith("segmenter.")}
        rest = {k: v for k, v in state_dict.items() if k.startswith(("estimator.", "continuous."))}
        return gen, seg, rest
    return dict(state_dict), {}, {}


def detect(state_dict) -> bool:
    """A prior-conditioned generator of a registered architecture (SFT-Net, SFT-RRDBNet, SFT-Compact): a
    condition network (``CondNet``) beside tensors that architecture's ``infer`` recognises. Plain RRDBNet
    and SRVGGNetCompact files (no condition net) stay spandrel's own ESRGAN / Real-ESRGAN Compact."""
    gen, _, _ = _split(state_dict)
    if "CondNet.0.weight" not in gen:
        return False
    try:
        recognise(gen, "spandrel state dict")
    except CheckpointError:
        return False
    return True


def _architecture():
    import spandrel

    class SFTGANArch(spandrel.Architecture[SFTGANPipeline]):
        def __init__(self) -> None:
            super().__init__(id=ARCH_ID, name="SFTGAN", detect=detect)

        def load(self, state_dict) -> spandrel.ImageModelDescriptor[SFTGANPipeline]:
            gen_sd, seg_sd, rest = _split(state_dict)
            generator = generator_from_state_dict(gen_sd, source="SFTGAN state dict").eval()
            estimator, fixed = None, {}
            if "continuous.fixed" in rest:  # a pipeline whose generator also reads continuous channels
                generator, fixed = _continuous_generator(generator, gen_sd, rest)
                est_sd = {k[len("estimator.") :]: v for k, v in rest.items() if k.startswith("estimator.")}
                estimator = infer_estimator(est_sd) if est_sd else None
                if estimator is not None:
                    estimator.channels = generator.record["continuous"]
            scale = generator.config.scale
            arch = architecture_of(generator)
            if seg_sd:
                segmenter, prior = infer_segmenter(seg_sd, scale, "SFTGAN pipeline segmenter"), "pipeline segmenter"
            elif _settings["segmenter"] is not None:
                from ..models import load_segmenter

                segmenter, prior = load_segmenter(_settings["segmenter"]), "segmenter given to install()"
            else:
                segmenter, prior = None, "uniform prior"
            names = _class_names(generator.config.num_classes)
            pipeline = SFTGANPipeline(generator, segmenter, names[0], names[1], estimator=estimator, continuous=fixed)
            pipeline = pipeline.eval()
            return spandrel.ImageModelDescriptor(
                pipeline,
                pipeline.state_dict(),  # the descriptor reloads it into the module: the pipeline's own keys
                architecture=self,
                purpose="SR",
                tags=[arch.name, *arch.tags(generator.config), prior],
                supports_half=True,
                supports_bfloat16=True,
                scale=scale,
                input_channels=generator.config.in_channels,
                output_channels=generator.config.out_channels,
                size_requirements=spandrel.SizeRequirements(minimum=2),
                tiling=spandrel.ModelTiling.DISCOURAGED if segmenter is not None else spandrel.ModelTiling.SUPPORTED,
            )

    return SFTGANArch()


def _continuous_generator(generator, gen_sd: dict, rest: dict):
    """The generator rebuilt with its condition net's last ``K`` inputs as continuous channels (``K``: the
    pipeline's ``continuous.fixed``), and the fixed channels' values. The tensors keep no channel names or
    units: the channels are ``channel0..`` with the normalised range [0, 1], which leaves the values as stored."""
    fixed, mask = rest["continuous.fixed"].float(), rest["continuous.fixed_mask"].float()
    k = fixed.numel()
    cfg = {**generator.config_dict(), "num_classes": generator.config.num_classes - k, "num_continuous": k}
    rebuilt = generator_from_state_dict(gen_sd, cfg, "SFTGAN state dict", architecture_of(generator).name).eval()
    channels = [Channel(f"channel{i}", "normalised", 0.0, 1.0, float(fixed[i])) for i in range(k)]
    rebuilt.record = {"continuous": [c.record() for c in channels]}
    return rebuilt, {c.name: float(fixed[i]) for i, c in enumerate(channels) if mask[i] > 0}


def _class_names(num_classes: int) -> tuple[list[str], list[list[int]]]:
    """The released 8 outdoor classes for 8-class models; otherwise numbered classes (names only label logs)."""
    from ..categories import NUM_OUTDOOR_CLASSES, OUTDOOR_CLASSES, OUTDOOR_COLORS

    if num_classes == NUM_OUTDOOR_CLASSES:
        return list(OUTDOOR_CLASSES), [list(c) for c in OUTDOOR_COLORS]
    return [f"class{i}" for i in range(num_classes)], [
        [(37 * i) % 256, (91 * i) % 256, (53 * i) % 256] for i in range(num_classes)
    ]


def install(segmenter: str | os.PathLike | None = None, registry=None) -> None:
    """Register the SFTGAN architecture with spandrel (``spandrel.MAIN_REGISTRY`` unless ``registry``), once;
    ``segmenter``: the prior for generator-only files (a segmenter file ``load_segmenter`` reads), None:
    the uniform prior. Calling it again changes the segmenter."""
    from ..extras import require

    spandrel = require("spandrel", "spandrel_support.install()")

    if segmenter is not None and not os.path.isfile(segmenter):
        raise FileNotFoundError(f"install(segmenter={segmenter}): file not found")
    _settings["segmenter"] = segmenter
    registry = registry or spandrel.MAIN_REGISTRY
    if registry.get(ARCH_ID) is None:
        # Checked before every architecture already there: spandrel's own ESRGAN and Compact detectors would
        # claim an SFT-RRDBNet / SFT-Compact file (their keys plus the conditioning ones) and fail to load it.
        # Ours claims only files with a condition net that the registry recognises.
        others = tuple(a.architecture.id for a in registry.architectures("detection"))
        registry.add(spandrel.ArchSupport.from_architecture(_architecture(), before=others))
