"""``SFTGANPipeline``: the prior and the generator as one module with one input, for tools that take a
single image (chaiNNer, spandrel, ONNX runtimes).

``forward(lr)``: LR RGB ``(N, 3, h, w)`` in [0, 1] -> SR ``(N, 3, s*h, s*w)`` (raw, unclamped, like the
generator). The prior is a segmenter run on the LR (the released OutdoorSceneSeg or a trained LR-ASPP,
whole image) or a fixed uniform prior; optional fixed edits (``override`` one class everywhere,
``remap`` classes) act on its probabilities as a constant class-to-class matrix, so the module stays
one traceable graph. A generator that also reads continuous channels (``priors.channels``: a noise level...)
gets them from a degradation estimator on the LR (``estimator``), or as fixed values (``continuous``: the
channel's default, or a value set at export such as ``noise_sigma=10``), or both (the fixed ones win).
Exported as one file (``export_pipeline``: ``.safetensors`` or ``.pth``) that
records everything needed to rebuild it (``load_pipeline``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .models import ConditionedGenerator, DegradationEstimator, load_estimator, load_generator, read_segmenter
from .models.checkpoints import (
    CONFIG_KEY,
    ESTIMATOR_KEY,
    RECORD_KEY,
    SEGMENTER_KEY,
    generator_record,
    segmenter_record,
    write_export,
)
from .priors.channels import from_record, stack_problem
from .priors.edits import parse_remap
from .state_dict import CheckpointError, cpu_state, load_checkpoint_file
from .tensors import check_image

PIPELINE_KEY = "sftgan_lit_pipeline"


class UniformPrior(nn.Module):
    """Every class equally likely everywhere: ``(N, 3, h, w)`` -> ``(N, C, s*h, s*w)`` of ``1 / C``.

    Built from the input (times zero) so the output size follows the input's in traced and exported
    graphs, with ops whose output shapes are statically inferable."""

    def __init__(self, num_classes: int, scale: int) -> None:
        super().__init__()
        self.num_classes, self.scale = num_classes, scale

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        one = lr[:, :1] * 0 + 1.0 / self.num_classes
        return nn.functional.interpolate(torch.cat([one] * self.num_classes, 1), scale_factor=self.scale)


def edit_matrix(
    class_names: Sequence[str], override: str | None = None, remap: Mapping | str | None = None
) -> torch.Tensor | None:
    """The fixed edits as a ``(C, C)`` matrix ``M`` with ``edited[d] = sum_c M[d, c] * probs[c]``: ``remap``
    moves each source class's probability to its target, then ``override`` gives all of it to one class.
    None when there is no edit. Unknown classes fail naming the prior's classes."""
    c = len(class_names)
    mapping = parse_remap(remap, class_names)
    if override is None and not mapping:
        return None
    m = torch.zeros(c, c)
    for src in range(c):
        m[mapping.get(src, src), src] = 1.0
    if override is not None:
        if override not in class_names:
            raise ValueError(f"override={override}: not a class ({', '.join(class_names)})")
        m = torch.zeros(c, c)
        m[list(class_names).index(override)] = 1.0
    return m


class SFTGANPipeline(nn.Module):
    """Prior + generator with one input; see the module docstring.

    Args:
        generator: an ``ConditionedGenerator``.
        segmenter: a prior segmenter (``forward(lr) -> probs`` at the generator's scale); None: uniform prior.
        class_names: the prior's classes, one per generator class.
        colors: their RGB colours, ``[r, g, b]`` in 0-255.
        override: a fixed edit: every pixel this class (recorded in the exported metadata).
        remap: a fixed edit: ``{source: target}`` class names (recorded in the exported metadata).
        estimator: a ``DegradationEstimator`` for the generator's continuous channels (None: fixed values).
        continuous: fixed values of continuous channels by name, in their units (the rest: the estimator's, else
            each channel's default); recorded in the exported metadata.
    """

    def __init__(
        self,
        generator: ConditionedGenerator,
        segmenter: nn.Module | None = None,
        class_names: Sequence[str] | None = None,
        colors: Sequence[Sequence[int]] | None = None,
        override: str | None = None,
        remap: Mapping | str | None = None,
        estimator: DegradationEstimator | None = None,
        continuous: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        cfg = generator.config
        self.generator = generator
        self.scale, self.num_classes = cfg.scale, cfg.num_classes
        self.class_names = list(class_names or generator.record.get("class_names") or [])
        self.colors = [list(c) for c in (colors or generator.record.get("colors") or [])]
        if generator.uses_prior and len(self.class_names) != cfg.num_classes:
            raise ValueError(
                f"the generator takes {cfg.num_classes} classes; give class_names for them "
                f"(got {self.class_names or 'none'})"
            )
        if segmenter is not None:
            if getattr(segmenter, "num_classes", None) != cfg.num_classes or segmenter.scale != cfg.scale:
                raise ValueError(
                    f"the segmenter ({segmenter.num_classes} classes, x{segmenter.scale}) does not fit the generator "
                    f"({cfg.num_classes} classes, x{cfg.scale})"
                )
        self.segmenter = segmenter  # its tensors are the file's segmenter.* keys
        self.uniform = UniformPrior(max(cfg.num_classes, 1), cfg.scale)
        if not generator.uses_prior and (override is not None or remap):
            raise ValueError("this generator takes no prior (conditioning=none): override / remap have no effect")
        self.override = override
        self.remap = parse_remap_names(remap, self.class_names) if remap else {}
        matrix = edit_matrix(self.class_names, override, remap) if generator.uses_prior else None
        self.register_buffer("edits", matrix if matrix is not None else torch.zeros(0), persistent=False)
        self.channels = from_record(generator.record.get("continuous")) if cfg.num_continuous else ()
        if len(self.channels) != cfg.num_continuous:
            raise ValueError(f"the generator reads {cfg.num_continuous} continuous channels but records none")
        given = {str(k): float(v) for k, v in (continuous or {}).items()}
        unknown = sorted(set(given) - {c.name for c in self.channels})
        if unknown:
            raise ValueError(
                f"continuous {', '.join(unknown)}: not a channel of this generator "
                f"({', '.join(c.name for c in self.channels) or 'none'})"
            )
        for c in self.channels:
            problem = c.problem(torch.tensor([given[c.name]])) if c.name in given else None
            if problem:
                raise ValueError(f"continuous {c.name}={given[c.name]:g}: {problem}")
        if estimator is not None:
            if not self.channels:
                raise ValueError("an estimator was given, but the generator reads no continuous channels")
            problem = stack_problem(self.channels, from_record(getattr(estimator, "channels", None) or ()))
            if problem:
                raise ValueError(f"the estimator does not predict the generator's channels: {problem}")
        self.estimator = estimator  # its tensors are the file's estimator.* keys
        self.continuous = given
        values = [c.normalise(torch.tensor(given.get(c.name, c.default))) for c in self.channels]
        self.register_buffer("fixed", torch.stack(values) if values else torch.zeros(0), persistent=False)
        mask = [1.0 if (c.name in given or estimator is None) else 0.0 for c in self.channels]
        self.register_buffer("fixed_mask", torch.tensor(mask), persistent=False)

    @property
    def prior_type(self) -> str:
        return "uniform" if self.segmenter is None else f"segmenter ({type(self.segmenter).__name__})"

    def prior_probs(self, lr: torch.Tensor) -> torch.Tensor:
        """The prior the generator gets: ``(N, C, s*h, s*w)`` class probabilities, edits applied."""
        probs = self.segmenter(lr) if self.segmenter is not None else self.uniform(lr)
        if self.edits.numel():
            # a 1x1 convolution with the class-to-class matrix (batch-size agnostic in exported graphs)
            probs = nn.functional.conv2d(probs, self.edits.to(probs.dtype)[:, :, None, None])
        return probs

    def continuous_maps(self, lr: torch.Tensor) -> torch.Tensor:
        """The continuous channels the generator gets, normalised: ``(N, K, s*h, s*w)``."""
        fixed = (lr[:, :1] * 0 + 1) * self.fixed.to(lr.dtype)[None, :, None, None]  # sized from the input
        if self.estimator is not None:
            m = self.fixed_mask.to(lr.dtype)[None, :, None, None]
            fixed = self.estimator(lr) * (1 - m) + fixed * m
        return nn.functional.interpolate(fixed, scale_factor=self.scale)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        check_image(lr, "lr (the pipeline's input)")
        if not self.generator.uses_prior:
            return self.generator(lr, None)
        prior = self.prior_probs(lr)
        if self.channels:
            prior = torch.cat([prior, self.continuous_maps(lr)], dim=1)
        return self.generator(lr, prior)

    def as_prior(self, uniform: bool = False):
        """This pipeline's prior as a ``priors.Prior`` for the tiled path (``inference``): its segmenter (or the
        uniform prior; ``uniform``: the uniform prior whatever the file holds), class names and colours, continuous
        channels and estimator. ``image_map`` of it, with
        ``prior_edits()`` and ``continuous`` as maps, gives the prior ``forward`` feeds the generator."""
        from .priors import SegmenterPrior
        from .priors import UniformPrior as NoInformation

        names = self.class_names or [f"class{i}" for i in range(max(self.num_classes, 1))]
        colors = self.colors or [[(37 * i) % 256, (91 * i) % 256, (53 * i) % 256] for i in range(len(names))]
        kwargs = {
            "num_classes": len(names),
            "class_names": names,
            "colors": colors,
            "continuous": [c.record() for c in self.channels] or None,
        }
        if self.segmenter is not None and not uniform:
            prior = SegmenterPrior.of_model(self.segmenter, "pipeline", **kwargs)
        else:
            prior = NoInformation("pipeline", **kwargs)
        if self.estimator is not None:
            prior.use_estimator(self.estimator, "the pipeline's estimator")
        return prior

    def prior_edits(self):
        """The recorded fixed edits (``override`` / ``remap``) as ``priors.PriorEdits`` by class index."""
        from .priors import PriorEdits

        return PriorEdits.by_name(self.class_names, self.colors, self.override, None, self.remap or None)

    def metadata(self) -> dict:
        """What the pipeline is, as recorded in its exports."""
        return {
            "prior": "uniform" if self.segmenter is None else "segmenter",
            "prior_type": self.prior_type,
            "override": self.override,
            "remap": self.remap,
            "class_names": self.class_names,
            "colors": self.colors,
            "continuous_values": dict(self.continuous),
            "estimator": self.estimator is not None,
        }


def parse_remap_names(remap, class_names: Sequence[str]) -> dict[str, str]:
    """``remap`` (mapping or ``a:b,c:d``) as ``{source name: target name}``, checked against ``class_names``."""
    return {class_names[s]: class_names[d] for s, d in parse_remap(remap, class_names).items()}


def export_pipeline(pipeline: SFTGANPipeline, path: str | os.PathLike, training: Mapping | None = None) -> None:
    """One file with the generator (``generator.*``), the segmenter when there is one (``segmenter.*``) and
    what rebuilds them: ``.safetensors`` (no pickle; the record in its header) or ``.pth``."""
    g = pipeline.generator
    record = generator_record(
        g,
        pipeline.class_names or None,
        pipeline.colors or None,
        training or g.record.get("training"),
        [c.record() for c in pipeline.channels],
    )
    record.update(kind="pipeline", **pipeline.metadata())
    tensors = {f"generator.{k}": v for k, v in cpu_state(g).items()}
    entries = {CONFIG_KEY: g.config_dict(), RECORD_KEY: record, PIPELINE_KEY: pipeline.metadata()}
    if pipeline.segmenter is not None:
        tensors.update({f"segmenter.{k}": v for k, v in cpu_state(pipeline.segmenter).items()})
        entries[SEGMENTER_KEY] = segmenter_record(pipeline.segmenter, pipeline.class_names, pipeline.colors)
    if pipeline.channels:  # what a reader of the tensors alone (spandrel) needs to run the channels
        tensors["continuous.fixed"] = pipeline.fixed.clone()
        tensors["continuous.fixed_mask"] = pipeline.fixed_mask.clone()
    if pipeline.estimator is not None:
        est = pipeline.estimator
        tensors.update({f"estimator.{k}": v for k, v in cpu_state(est).items()})
        entries[ESTIMATOR_KEY] = {"config": est.config_dict(), "continuous": [c.record() for c in pipeline.channels]}
    write_export(tensors, path, entries)


def load_pipeline(
    path: str | os.PathLike,
    segmenter: str | os.PathLike | nn.Module | None = None,
    override: str | None = None,
    remap: Mapping | str | None = None,
    estimator: str | os.PathLike | nn.Module | None = None,
    continuous: Mapping[str, float] | None = None,
) -> SFTGANPipeline:
    """A pipeline from a file, eval mode.

    A pipeline export is rebuilt as recorded (segmenter or uniform prior, fixed edits). A file holding only
    a generator (the released ``SFTGAN_noBN_OST_bg.pth`` / ``SFTGAN_torch.pth``, an export of this package)
    gets ``segmenter`` (a segmenter file or module) as its prior, or the uniform prior when None; the
    class names come from the generator's record, the segmenter's, or the 8 outdoor classes for the
    released 8-class layouts. ``override`` / ``remap`` add fixed edits to a generator-only file.

    Args:
        path: a pipeline export (``.safetensors`` / ``.pth``) or a generator file.
        segmenter: the prior for a generator-only file: a segmenter file or module (None: uniform prior).
        override: a class name: every pixel's prior is that class.
        remap: ``{source: target}`` or ``"source:target,..."`` class remapping.
        estimator: for a generator-only file with continuous channels: a ``DegradationEstimator`` file or module.
        continuous: for a generator-only file: fixed values of continuous channels, ``{name: value}``.

    Returns:
        The ``SFTGANPipeline`` in eval mode: ``(N, 3, h, w)`` RGB in [0, 1] -> ``(N, 3, scale*h, scale*w)``.
    """
    from .categories import NUM_OUTDOOR_CLASSES, OUTDOOR_CLASSES, OUTDOOR_COLORS

    obj = load_checkpoint_file(path)
    generator = load_generator(path, channels_last=False)
    meta = obj.get(PIPELINE_KEY)
    seg_module, seg_spec = None, None
    if meta is not None:
        if not isinstance(meta, Mapping) or meta.get("prior") not in ("uniform", "segmenter"):
            raise CheckpointError(f"{path}: malformed '{PIPELINE_KEY}' record (prior must be uniform or segmenter)")
        if segmenter is not None or override is not None or remap or estimator is not None or continuous:
            raise ValueError(f"{path} is a pipeline: its prior and edits are recorded; use load_pipeline(path) alone")
        continuous = meta.get("continuous_values") or {}
        if meta.get("estimator"):
            if ESTIMATOR_KEY not in obj:
                raise CheckpointError(f"{path}: records an estimator but holds no estimator record")
            estimator = path
        if meta["prior"] == "segmenter":
            if SEGMENTER_KEY not in obj:
                raise CheckpointError(f"{path}: records a segmenter prior but holds no segmenter record")
            seg_module, seg_spec = read_segmenter(path)
        elif any(k.startswith("segmenter.") for k in obj["params"]):
            raise CheckpointError(f"{path}: records a uniform prior but holds segmenter tensors")
        override, remap = meta.get("override"), meta.get("remap")
        names, colors = meta.get("class_names"), meta.get("colors")
    else:
        if isinstance(segmenter, nn.Module):
            seg_module = segmenter.eval()
        elif segmenter is not None:
            seg_module, seg_spec = read_segmenter(segmenter)
        names, colors = generator.record.get("class_names"), generator.record.get("colors")
        if not names and seg_spec:
            names, colors = seg_spec.get("class_names"), seg_spec.get("colors")
        if not names and generator.config.num_classes == NUM_OUTDOOR_CLASSES:
            names, colors = list(OUTDOOR_CLASSES), [list(c) for c in OUTDOOR_COLORS]
    if estimator is not None and not isinstance(estimator, nn.Module):
        estimator = load_estimator(estimator)[0]
    try:
        pipeline = SFTGANPipeline(generator, seg_module, names, colors, override, remap, estimator, continuous)
    except ValueError as err:
        raise CheckpointError(f"{path}: {err}") from err
    return pipeline.eval()
